// RunCanary (ane_backend.h): one small program, compared between a candidate and the CPU backend.
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/mil/blob_writer.h"
#include "common/mil/builder.h"
#include "common/status_macros.h"
#include "server/backend/ane/ane_backend.h"

namespace anerd::backend::ane {
namespace {

constexpr int64_t kChannels = 64;  // docs/ANE_NOTES.md §1.8: keep channels >= 64
constexpr int64_t kSpatial = 64;

absl::StatusOr<mil::VerifiedProgram> CanaryProgram() {
  std::vector<float> w(kChannels * kChannels);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((i * 37) % 17) / 64.0f - 0.125f;
  mil::Builder b;
  mil::Value x = b.Input("x", {mil::DType::kFp16, {1, kChannels, 1, kSpatial}});
  mil::Value wv = b.ConstBlob("W", {mil::DType::kFp16, {kChannels, kChannels, 1, 1}},
                              "@model_path/weights/canary.bin", 64);
  mil::Value y = b.Conv("y", x, wv);
  mil::Value z = b.Softmax("z", y, 1);
  b.Output(z);
  ANERD_ASSIGN_OR_RETURN(mil::Program program, b.Finish());
  mil::WeightFiles files;
  ANERD_RETURN_IF_ERROR(files.Add("weights/canary.bin", mil::BuildFp16Blob(w)));
  return mil::VerifyProgram(std::move(program), std::move(files));
}

absl::StatusOr<Tensor> RunOn(Backend& backend, const mil::VerifiedProgram& program,
                             const NamedTensor& input) {
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<CompiledProgram> compiled,
                         backend.Compile(program, CompileOptions{}));
  ANERD_ASSIGN_OR_RETURN(RunResult result, compiled->Run({input}));
  return std::move(result.outputs.at(0).tensor);
}

}  // namespace

absl::Status RunCanary(Backend& candidate, Backend& reference) {
  ANERD_ASSIGN_OR_RETURN(mil::VerifiedProgram program, CanaryProgram());
  std::vector<float> x(kChannels * kSpatial);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i) * 0.37f);
  const NamedTensor input{"x",
                          Tensor::FromFloats(mil::DType::kFp16, {1, kChannels, 1, kSpatial}, x)};
  ANERD_ASSIGN_OR_RETURN(Tensor want, RunOn(reference, program, input));
  absl::StatusOr<Tensor> got = RunOn(candidate, program, input);
  if (!got.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "canary failed to run on ", candidate.Describe().name, ": ", got.status().message()));
  }
  const std::vector<float> g = got->ToFloats(), r = want.ToFloats();
  for (size_t i = 0; i < r.size(); ++i) {
    if (!(std::fabs(g[i] - r[i]) <= 2e-3f + 1e-2f * std::fabs(r[i]))) {
      return absl::FailedPreconditionError(
          absl::StrCat("canary mismatch on ", candidate.Describe().name, " at element ", i,
                       ": got ", g[i], ", CPU reference ", r[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace anerd::backend::ane
