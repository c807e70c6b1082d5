// The simulated ANE's rule checks and fault injection (ane_sim_rules.h).
#include "server/backend/ane/ane_sim_rules.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/backend/ane/ane_device.h"

namespace anerd::backend::ane {
namespace {

std::string Describe(const mil::AneViolation& v) {
  std::string loc;
  if (v.loc.line > 0) loc = absl::StrCat(" at line ", v.loc.line);
  return absl::StrCat("rule ", v.rule, loc, ": ", v.message);
}

}  // namespace

absl::Status SimCompileError(absl::string_view reason) {
  return MakeDeviceError(
      absl::StatusCode::kInvalidArgument, "ANE compile failed",
      DeviceError{kAneCompilerErrorDomain, kAneCompileErrorCode,
                  absl::StrCat(kAneCompileFailedText, " (simulated: ", reason, ")")});
}

absl::Status SimEvalError(absl::string_view reason) {
  return MakeDeviceError(
      absl::StatusCode::kInvalidArgument, "ANE eval failed",
      DeviceError{kAneErrorDomain, kAneEvalErrorCode,
                  absl::StrCat(kAneEvalFailedText, " (simulated: ", reason, ")")});
}

absl::Status SimGenericCompileFailure() {
  return MakeDeviceError(
      absl::StatusCode::kInternal, "ANE compile failed",
      DeviceError{kAneCompilerErrorDomain, kAneCompileErrorCode, kAneCompileFailedText});
}

absl::Status SimTransientLoadError() {
  return MakeDeviceError(
      absl::StatusCode::kUnavailable, "ANE load failed",
      DeviceError{kAneErrorDomain, 0, "simulated transient load failure (program slot busy)"});
}

absl::Status SimCheckCompile(const mil::Program& program, const mil::AneRules& rules) {
  std::string reasons;
  for (const mil::AneViolation& v : mil::CheckAneProgram(program, rules)) {
    if (v.stage != mil::RuleStage::kCompile) continue;
    absl::StrAppend(&reasons, reasons.empty() ? "" : "; ", Describe(v));
  }
  return reasons.empty() ? absl::OkStatus() : SimCompileError(reasons);
}

std::string SimEvalFinding(const mil::Program& program, const mil::AneRules& rules) {
  for (const mil::AneViolation& v : mil::CheckAneProgram(program, rules)) {
    if (v.rule == "surface_width_multiple" || v.rule == "matmul_runtime_inner_multiple") {
      return Describe(v);
    }
  }
  return "";
}

absl::Status SimCheckBinding(const std::vector<mil::SurfaceUse>& inputs,
                             const std::vector<mil::SurfaceUse>& outputs,
                             const mil::AneRules& rules) {
  mil::AneViolation v;
  if (mil::CheckAneBinding(inputs, outputs, rules, &v)) return absl::OkStatus();
  return SimEvalError(Describe(v));
}

std::vector<size_t> SimBindingOrder(const std::vector<std::string>& names,
                                    const mil::AneRules& rules) {
  std::vector<size_t> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  if (rules.alphabetical_binding) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return names[a] < names[b]; });
  }
  return order;
}

bool SimFaultInjector::NextLoadFails() {
  const int64_t call = loads_.fetch_add(1) + 1;
  return faults_.load_fail_every > 0 && call % faults_.load_fail_every == 0;
}

bool SimFaultInjector::NextCompileFails(int64_t budget) {
  const int64_t attempt = compiles_.fetch_add(1) + 1;
  return faults_.compile_fail_before_budget > 0 && budget > 0 &&
         attempt == budget - faults_.compile_fail_before_budget;
}

}  // namespace anerd::backend::ane
