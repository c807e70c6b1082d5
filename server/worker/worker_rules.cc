// WorkerBackend's ANE rules (worker_backend.h, "ANE rules"): the capability probe runs in the
// worker, where the device lives; measured rules travel to every later worker on its command
// line, and a fresh worker takes over at once so that they are in force.
#include <string>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/worker/worker_pool.h"

namespace anerd::worker {

absl::StatusOr<backend::RuleProbeReport> WorkerPool::ProbeRules() {
  absl::MutexLock call(&call_mu_);
  bool recycled = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<wire::Response> resp =
        Exchange("probing the ANE rules", "", 0,
                 [](Process*, wire::Request* req) { req->kind = wire::ProbeRulesRequest{}; });
    if (!resp.ok() && resp.status().code() == absl::StatusCode::kAborted) continue;
    if (!resp.ok()) return resp.status();
    if (resp->status.code() == absl::StatusCode::kResourceExhausted && !recycled) {
      // Too little budget left in this worker for the probe's compiles: probe in a fresh one.
      recycled = true;
      ANERD_RETURN_IF_ERROR(RecycleLocked(std::string(resp->status.message())));
      continue;
    }
    ANERD_RETURN_IF_ERROR(resp->status);
    const auto* report = std::get_if<backend::RuleProbeReport>(&resp->kind);
    if (report == nullptr) return absl::InternalError("the worker answered a rule probe wrongly");
    return *report;
  }
  return absl::UnavailableError(
      absl::StrCat("the ", options_.backend, " worker keeps failing to start; retry later"));
}

absl::Status WorkerPool::UseRules(const mil::AneRuleOverrides& overrides) {
  // Checked here so that a bad value never reaches a worker's command line.
  ANERD_RETURN_IF_ERROR(mil::ApplyAneRuleOverrides(mil::AneRules{}, overrides).status());
  bool ane = false;
  for (const auto& [key, value] : Describe().facts) ane = ane || key == "ane_rules_profile";
  if (!ane) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ", options_.backend, " backend has no ANE rules to replace"));
  }
  absl::MutexLock call(&call_mu_);
  {
    absl::MutexLock lock(&mu_);
    ane_rules_ = overrides;
    if (stopping_) return absl::UnavailableError(absl::StrCat(options_.backend, " is stopping"));
  }
  ANERD_RETURN_IF_ERROR(EnsureRunningLocked());
  return RecycleLocked(overrides.empty()
                           ? "the table's ANE rules restored"
                           : absl::StrCat("measured ANE rules in force (", overrides.origin, ")"));
}

absl::StatusOr<backend::RuleProbeReport> WorkerBackend::ProbeDeviceRules() {
  return pool_->ProbeRules();
}

absl::Status WorkerBackend::UseMeasuredRules(const mil::AneRuleOverrides& overrides) {
  return pool_->UseRules(overrides);
}

}  // namespace anerd::worker
