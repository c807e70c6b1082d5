// DecodeProgramSet: the widths, the kernels of each and their lazy compile (decode_programs.h).
#include "server/generation/decode_programs.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mil/verifier.h"
#include "common/status_macros.h"

namespace anerd::generation {

absl::StatusOr<std::shared_ptr<DecodeProgramSet>> DecodeProgramSet::Create(
    const training::ModelConfig& config, backend::Backend* backend,
    const DecodeProgramOptions& options) {
  ANERD_RETURN_IF_ERROR(training::ValidateConfig(config));
  if (backend == nullptr) return absl::InvalidArgumentError("backend: none given");
  if (options.lane != 16 && options.lane != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("lane: must be 16 or 32 positions, got ", options.lane));
  }
  std::vector<int64_t> widths = {options.lane};
  for (int64_t b : kPrefillBuckets) {
    if (b > options.lane) widths.push_back(b);
  }
  return std::shared_ptr<DecodeProgramSet>(
      new DecodeProgramSet(config, backend, options, std::move(widths)));
}

DecodeProgramSet::DecodeProgramSet(const training::ModelConfig& config, backend::Backend* backend,
                                   const DecodeProgramOptions& options, std::vector<int64_t> widths)
    : c_(config), backend_(backend), options_(options), widths_(std::move(widths)) {}

int64_t DecodeProgramSet::WidthFor(int64_t n) const {
  for (int64_t w : widths_) {
    if (w >= n) return w;
  }
  return widths_.back();
}

absl::StatusOr<std::vector<training::Kernel>> DecodeProgramSet::Kernels(int64_t width) const {
  if (std::find(widths_.begin(), widths_.end(), width) == widths_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("width: ", width, " is not a program width"));
  }
  training::ModelShape shape = c_.Shape();
  shape.seq = width;
  std::vector<training::Kernel> kernels;
  for (auto make : {&training::QkvFwd, &training::WoFwd}) {
    ANERD_ASSIGN_OR_RETURN(training::Kernel k, make(shape));
    kernels.push_back(std::move(k));
  }
  ANERD_ASSIGN_OR_RETURN(training::Kernel ffn, training::FfnFused(shape, c_.residual_scale));
  kernels.push_back(std::move(ffn));
  return kernels;
}

absl::StatusOr<const WidthPrograms*> DecodeProgramSet::Get(int64_t width) {
  absl::MutexLock lock(&mu_);
  if (auto it = compiled_.find(width); it != compiled_.end()) return it->second.get();
  ANERD_ASSIGN_OR_RETURN(std::vector<training::Kernel> kernels, Kernels(width));
  auto set = std::make_unique<WidthPrograms>();
  set->width = width;
  backend::CompileOptions options;
  options.numerics = options_.numerics;
  for (int k = 0; k < WidthPrograms::kNumKinds; ++k) {
    ANERD_ASSIGN_OR_RETURN(mil::VerifiedProgram verified,
                           mil::VerifyProgram(std::move(kernels[k].program)));
    ANERD_ASSIGN_OR_RETURN(set->programs[k], backend_->Compile(verified, options));
    set->layouts[k] = std::move(kernels[k].layout);
    ++programs_compiled_;
  }
  const WidthPrograms* out = set.get();
  compiled_[width] = std::move(set);
  return out;
}

int64_t DecodeProgramSet::programs_compiled() const {
  absl::MutexLock lock(&mu_);
  return programs_compiled_;
}

}  // namespace anerd::generation
