// The anerd.v1.Anerd gRPC service (callback API). Each handler parses its request into native
// types, hands the work to the engine (which queues it on a device executor) and finishes the
// reactor from the engine's completion callback; status is converted once
// (common/rpc/grpc_status.h). Handlers never run compiles or evaluations themselves.
//
// Per-client quotas (client_quotas.h) and ownership (authz.h: who sees which session, kernel and
// probe result; remote callers name no daemon-side paths) are checked here, where the caller's
// identity is known.
//
// Thread-safety: gRPC calls handlers concurrently; the service's only mutable state is the quota
// bookkeeping (internally synchronised). The engine must outlive the service.
#ifndef ANERD_SERVER_SERVICE_ANERD_SERVICE_H_
#define ANERD_SERVER_SERVICE_ANERD_SERVICE_H_

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "anerd/v1/anerd.grpc.pb.h"
#include "server/artifacts/tokenize_dataset.h"
#include "server/engine/engine.h"
#include "server/service/authz.h"
#include "server/service/client_quotas.h"
#include "server/service/upload_spool.h"

namespace anerd::service {

// Largest single chunk of weight bytes a client may send in one message.
inline constexpr size_t kMaxWeightChunkBytes = 4 << 20;

struct ServiceOptions {
  QuotaLimits quotas;      // all 0 = unlimited
  PeerUidLookup peer_uid;  // Unix-socket peer -> uid, for client identities (may be empty)
  TokenLookup token;       // authorization header -> token name and admin flag (may be empty)
  // Where CompileKernel uploads are spooled (upload_spool.h); "" = <engine state dir>/uploads.
  std::string upload_dir;
  // --max-upload-bytes-in-flight: declared weight bytes of all unfinished uploads; 0 = unlimited.
  uint64_t upload_bytes_in_flight = uint64_t{4} << 30;
  // The daemon's non-default flags (name, value) for GetInfo (not shown to non-admin remotes).
  std::vector<std::pair<std::string, std::string>> effective_config;
  // --max-artifact-bytes: the largest artifact an UploadArtifact may declare.
  uint64_t max_artifact_bytes = uint64_t{8} << 30;
};

// CompileKernel is served raw (bytes in, bytes out; anerd_service.cc parses them), so that a
// message protobuf refuses can be answered naming the offending field.
class AnerdService final
    : public v1::Anerd::WithRawCallbackMethod_CompileKernel<v1::Anerd::CallbackService> {
 public:
  explicit AnerdService(engine::Engine* engine, ServiceOptions options = {});

  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context,
                                    const v1::GetInfoRequest* request,
                                    v1::GetInfoResponse* response) override;
  // Reads serialized v1::CompileKernelRequest messages; writes a serialized
  // v1::CompileKernelResponse.
  grpc::ServerReadReactor<grpc::ByteBuffer>* CompileKernel(grpc::CallbackServerContext* context,
                                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* EvalKernel(grpc::CallbackServerContext* context,
                                       const v1::EvalKernelRequest* request,
                                       v1::EvalKernelResponse* response) override;
  grpc::ServerUnaryReactor* ListKernels(grpc::CallbackServerContext* context,
                                        const v1::ListKernelsRequest* request,
                                        v1::ListKernelsResponse* response) override;
  grpc::ServerUnaryReactor* GetKernel(grpc::CallbackServerContext* context,
                                      const v1::GetKernelRequest* request,
                                      v1::KernelInfo* response) override;
  grpc::ServerUnaryReactor* DeleteKernel(grpc::CallbackServerContext* context,
                                         const v1::DeleteKernelRequest* request,
                                         v1::DeleteKernelResponse* response) override;

  // Probes (probe_rpcs.cc).
  grpc::ServerWriteReactor<v1::RunProbeResponse>* RunProbe(
      grpc::CallbackServerContext* context, const v1::RunProbeRequest* request) override;
  grpc::ServerUnaryReactor* ListProbeResults(grpc::CallbackServerContext* context,
                                             const v1::ListProbeResultsRequest* request,
                                             v1::ListProbeResultsResponse* response) override;
  grpc::ServerUnaryReactor* ProbeAneRules(grpc::CallbackServerContext* context,
                                          const v1::ProbeAneRulesRequest* request,
                                          v1::ProbeAneRulesResponse* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* context,
                                     const v1::EvaluateRequest* request,
                                     v1::EvaluateResponse* response) override;
  grpc::ServerUnaryReactor* GetProbeResult(grpc::CallbackServerContext* context,
                                           const v1::GetProbeResultRequest* request,
                                           v1::ProbeResult* response) override;

  // Training sessions (session_rpcs.cc).
  grpc::ServerUnaryReactor* StartTraining(grpc::CallbackServerContext* context,
                                          const v1::StartTrainingRequest* request,
                                          v1::SessionInfo* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* context,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const v1::GetSessionRequest* request,
                                       v1::SessionInfo* response) override;
  // trace_rpcs.cc
  grpc::ServerUnaryReactor* GetSessionTrace(grpc::CallbackServerContext* context,
                                            const v1::GetSessionTraceRequest* request,
                                            v1::SessionTrace* response) override;
  grpc::ServerUnaryReactor* StopSession(grpc::CallbackServerContext* context,
                                        const v1::StopSessionRequest* request,
                                        v1::SessionInfo* response) override;
  grpc::ServerUnaryReactor* ResumeSession(grpc::CallbackServerContext* context,
                                          const v1::ResumeSessionRequest* request,
                                          v1::SessionInfo* response) override;
  grpc::ServerUnaryReactor* DeleteSession(grpc::CallbackServerContext* context,
                                          const v1::DeleteSessionRequest* request,
                                          v1::DeleteSessionResponse* response) override;
  grpc::ServerWriteReactor<v1::ExportModelChunk>* ExportModel(
      grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) override;
  grpc::ServerWriteReactor<v1::SessionEvent>* WatchSession(
      grpc::CallbackServerContext* context, const v1::WatchSessionRequest* request) override;

  // Artifacts (artifact_rpcs.cc).
  grpc::ServerReadReactor<v1::UploadArtifactRequest>* UploadArtifact(
      grpc::CallbackServerContext* context, v1::ArtifactInfo* response) override;
  grpc::ServerUnaryReactor* ListArtifacts(grpc::CallbackServerContext* context,
                                          const v1::ListArtifactsRequest* request,
                                          v1::ListArtifactsResponse* response) override;
  grpc::ServerUnaryReactor* GetArtifact(grpc::CallbackServerContext* context,
                                        const v1::GetArtifactRequest* request,
                                        v1::ArtifactInfo* response) override;
  grpc::ServerUnaryReactor* DeleteArtifact(grpc::CallbackServerContext* context,
                                           const v1::DeleteArtifactRequest* request,
                                           v1::DeleteArtifactResponse* response) override;
  grpc::ServerWriteReactor<v1::DownloadArtifactChunk>* DownloadArtifact(
      grpc::CallbackServerContext* context, const v1::DownloadArtifactRequest* request) override;
  // tokenize_rpc.cc.
  grpc::ServerWriteReactor<v1::TokenizeDatasetProgress>* TokenizeDataset(
      grpc::CallbackServerContext* context, const v1::TokenizeDatasetRequest* request) override;

  // Text generation (generate_rpcs.cc).
  grpc::ServerWriteReactor<v1::GenerateEvent>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;

  // Weight bytes reserved by uploads that have not been compiled yet (tests, metrics).
  uint64_t upload_bytes_in_flight() const { return spool_->bytes_in_flight(); }

 private:
  Caller CallerOf(const grpc::CallbackServerContext* context) const {
    return CallerFor(*context, options_.peer_uid, options_.token);
  }
  // The session when `caller` may see it; sessions::SessionNotFound(id) otherwise.
  absl::StatusOr<sessions::SessionSnapshot> VisibleSession(const Caller& caller,
                                                           const std::string& id);
  // OK when `caller` may see kernel `id`; the store's NOT_FOUND for a missing id otherwise.
  absl::Status CheckKernelVisible(const Caller& caller, const std::string& id);
  // The artifact when `caller` may see it; artifacts::ArtifactNotFound(id) otherwise.
  absl::StatusOr<artifacts::ArtifactRecord> VisibleArtifact(const Caller& caller,
                                                            const std::string& id);
  // Replaces the spec's artifact ids (data, init, held-out data) by their stored files, checking
  // that the caller sees each and that its kind fits (INVALID_ARGUMENT naming the field).
  absl::Status ResolveArtifacts(const Caller& caller, training::TrainSpec* spec);
  // The TokenizeDataset job of `request`: both artifacts visible to `caller` and of the right
  // kind (INVALID_ARGUMENT / NOT_FOUND naming the field).
  absl::StatusOr<artifacts::TokenizeDatasetJob> TokenizeJobFor(
      const Caller& caller, const v1::TokenizeDatasetRequest& request);

  // Checks that `caller` sees the request's session and artifacts (replacing the artifact ids in
  // `call` by their stored files) and may name its paths.
  absl::Status ResolveGenerateSources(const Caller& caller, const v1::GenerateRequest& request,
                                      engine::GenerateCall* call);

  engine::Engine* engine_;  // not owned
  const ServiceOptions options_;
  ClientQuotas quotas_;
  std::shared_ptr<UploadSpool> spool_;  // weight uploads on disk, and their bound
  std::atomic<int> tokenize_jobs_{0};   // TokenizeDataset jobs running (tokenize_rpc.cc)
};

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_ANERD_SERVICE_H_
