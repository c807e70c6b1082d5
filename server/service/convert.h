// Conversion between anerd.v1 protos and the engine's native types: convert.cc (daemon info,
// kernels, tensors, probes) and convert_sessions.cc (training specs, artifacts, sessions, their
// events) are the only files that see both.
// Conversions from client messages validate as they go and return INVALID_ARGUMENT naming the
// offending field.
#ifndef ANERD_SERVER_SERVICE_CONVERT_H_
#define ANERD_SERVER_SERVICE_CONVERT_H_

#include <vector>

#include "absl/status/statusor.h"
#include "anerd/v1/anerd.pb.h"
#include "server/backend/backend.h"
#include "server/engine/engine.h"

namespace anerd::service {

void ToProto(const engine::DaemonInfo& info, v1::GetInfoResponse* out);
void ToProto(const engine::KernelInfo& info, v1::KernelInfo* out);
void ToProto(const backend::NamedTensor& tensor, v1::Tensor* out);

absl::StatusOr<backend::CompileOptions> FromProto(const v1::CompileOptions& options);
// Checks dtype, shape (rank <= 5, dims > 0, no overflow) and that data holds exactly the elements
// the shape needs; `budget_bytes` is decremented and must not go negative (the request limit).
absl::StatusOr<backend::NamedTensor> FromProto(const v1::Tensor& tensor, int64_t* budget_bytes);

// ---- Probes ----
// Validates the probe name, grid and limits (INVALID_ARGUMENT naming the field, e.g. "probe",
// "grid[1].channels", "repeat").
absl::StatusOr<engine::ProbeRunRequest> FromProto(const v1::RunProbeRequest& request);
void ToProto(const probes::ProbeRow& row, v1::ProbeRow* out);
void ToProto(const probes::Fingerprint& fingerprint, v1::MachineFingerprint* out);
void ToProto(const engine::ProbeStart& start, v1::ProbeStarted* out);
// The summary of a stored result (id, time, fingerprint, findings, spills).
void ToProto(const probes::ProbeResult& result, v1::ProbeSummary* out);
void ToProto(const probes::ProbeResult& result, v1::ProbeResult* out);
void ToProto(const engine::RuleProbeOutcome& outcome, v1::ProbeAneRulesResponse* out);

// Sessions. FromProto starts from the engine's defaults and overrides what the request sets;
// INVALID_ARGUMENT names the offending field.
absl::StatusOr<training::TrainSpec> FromProto(const v1::TrainingSpec& spec);
void ToProto(const training::TrainSpec& spec, v1::TrainingSpec* out);
// `with_owner`: also the owner (for admin callers only, authz.h).
void ToProto(const sessions::SessionSnapshot& session, bool with_owner, v1::SessionInfo* out);
void ToProto(const sessions::SessionEventRecord& event, v1::SessionEvent* out);
void ToProto(const sessions::EvalRecord& eval, v1::EvalEvent* out);
void ToProto(const sessions::SampleRecord& sample, v1::SampleEvent* out);

// Artifacts: the record as `caller_client` sees it (its own name for it; the owner list only
// when `with_owners`, i.e. for admins).
void ToProto(const artifacts::ArtifactRecord& record, const std::string& caller_client,
             bool with_owners, v1::ArtifactInfo* out);

// Generation (convert_generate.cc). The request's model and tokenizer fields are copied as the
// client named them (the service resolves artifacts and checks paths); unset sampling fields take
// run.c's defaults (temperature 1, top_p 0.9), an unset seed one from the clock, max_tokens 0 is
// kDefaultGenerateTokens; a full context slides (GenerationSpec::slide_context), so max_tokens,
// not the model's seq, bounds the output. INVALID_ARGUMENT names a field it refuses.
inline constexpr int kDefaultGenerateTokens = 128;
absl::StatusOr<engine::GenerateCall> FromProto(const v1::GenerateRequest& request);
void ToProto(const generation::TokenEvent& token, v1::GeneratedToken* out);
void ToProto(const engine::GenerateResult& result, v1::GenerateSummary* out);

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_CONVERT_H_
