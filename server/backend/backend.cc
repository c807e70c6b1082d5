#include "server/backend/backend.h"

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace anerd::backend {

absl::string_view NumericsModeName(NumericsMode mode) {
  return mode == NumericsMode::kAne ? "ane" : "fp32";
}

absl::StatusOr<RunResult> CompiledProgram::RunStoppable(const std::vector<NamedTensor>& inputs,
                                                        const StopCheck& stop) {
  if (stop) {
    if (absl::Status s = stop(); !s.ok()) return s;
  }
  return Run(inputs);
}

absl::Status CheckInputs(const std::vector<TensorSignature>& signatures,
                         const std::vector<NamedTensor>& inputs) {
  absl::flat_hash_set<std::string> seen;
  for (const NamedTensor& in : inputs) {
    const TensorSignature* sig = nullptr;
    for (const TensorSignature& s : signatures) {
      if (s.name == in.name) sig = &s;
    }
    if (sig == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected input '", in.name, "': the program has no such input"));
    }
    if (!seen.insert(in.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "' given twice"));
    }
    if (in.tensor.type() != sig->type ||
        static_cast<int64_t>(in.tensor.bytes().size()) != sig->type.NumBytes()) {
      return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "' must be ",
                                                     sig->type.ToString(), ", got ",
                                                     in.tensor.type().ToString()));
    }
  }
  for (const TensorSignature& s : signatures) {
    if (!seen.contains(s.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing input '", s.name, "' of type ", s.type.ToString()));
    }
  }
  return absl::OkStatus();
}

}  // namespace anerd::backend

namespace anerd::backend {

absl::StatusOr<RuleProbeReport> Backend::ProbeDeviceRules() {
  return absl::FailedPreconditionError(
      absl::StrCat("the ", Describe().name,
                   " backend drives no ANE: the rule probe runs on the ane or ane-sim backend"));
}

absl::Status Backend::UseMeasuredRules(const mil::AneRuleOverrides& overrides) {
  (void)overrides;
  return absl::FailedPreconditionError(
      absl::StrCat("the ", Describe().name, " backend has no ANE rules to replace"));
}

}  // namespace anerd::backend
