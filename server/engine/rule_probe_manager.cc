// The ANE capability probe through the daemon (rule_probe_manager.h).
#include "server/engine/rule_probe_manager.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "server/backend/ane/ane_rule_probe.h"
#include "spdlog/spdlog.h"

namespace anerd::engine {
namespace {

// The (chip, OS build) an ANE backend reports, or false for a backend without ANE rules.
bool AneKey(const backend::BackendDescription& d, std::string* chip, std::string* os_build) {
  bool ane = false;
  for (const auto& [key, value] : d.facts) {
    if (key == "ane_rules_profile") ane = true;
    if (key == "chip") *chip = value;
    if (key == "os_build") *os_build = value;
  }
  return ane;
}

mil::AneRuleOverrides Overrides(const probes::RuleProbeRecord& record) {
  return backend::ane::MeasuredRuleValues(record.rows, RuleProbeOrigin(record));
}

}  // namespace

std::string RuleProbeOrigin(const probes::RuleProbeRecord& record) {
  return absl::StrCat("probed at ",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(record.probed_ms),
                                       absl::UTCTimeZone()),
                      " on ", record.chip, ", ", record.os_build);
}

RuleProbeManager::RuleProbeManager(const backend::BackendRegistry* registry,
                                   std::map<std::string, DeviceExecutor*> executors,
                                   probes::RuleProbeStore* store)
    : registry_(registry), executors_(std::move(executors)), store_(store) {}

std::vector<std::string> RuleProbeManager::ApplyPersisted() {
  std::vector<std::string> applied;
  for (const auto& b : registry_->backends()) {
    const backend::BackendDescription d = b->Describe();
    std::string chip, os_build;
    if (!AneKey(d, &chip, &os_build) || chip.empty() || os_build.empty()) continue;
    absl::StatusOr<std::optional<probes::RuleProbeRecord>> found = store_->Find(chip, os_build);
    if (!found.ok()) {
      spdlog::warn("{}: the stored ANE rule probe cannot be read ({}); the table's rules apply",
                   d.name, found.status().ToString());
      continue;
    }
    if (!found->has_value()) continue;
    const mil::AneRuleOverrides overrides = Overrides(**found);
    if (absl::Status s = b->UseMeasuredRules(overrides); !s.ok()) {
      spdlog::warn("{}: the stored ANE rule probe does not apply ({}); the table's rules apply",
                   d.name, s.ToString());
      continue;
    }
    spdlog::info("{}: {} measured ANE rules in force ({})", d.name, overrides.values.size(),
                 overrides.origin);
    applied.push_back(d.name);
  }
  return applied;
}

void RuleProbeManager::Probe(std::string name, RequestControl control, DoneFn done) {
  if (name.empty()) name = registry_->Find("ane") != nullptr ? "ane" : "ane-sim";
  backend::Backend* backend = registry_->Find(name);
  auto executor = executors_.find(name);
  if (backend == nullptr || executor == executors_.end()) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("backend: unknown backend '", name,
                     "' (this daemon has: ", absl::StrJoin(registry_->names(), ", "), ")")));
  }
  std::string chip, os_build;
  if (!AneKey(backend->Describe(), &chip, &os_build)) {
    return done(absl::FailedPreconditionError(
        absl::StrCat("the ", name,
                     " backend drives no ANE: the rule probe runs on the ane or ane-sim backend")));
  }
  executor->second->Submit(
      TaskClass::kProbe, control, "ANE rule probe",
      [this, name, backend, done = std::move(done)](absl::Status admission, absl::Duration) {
        if (!admission.ok()) return done(admission);
        done(ProbeNow(name, backend));
      });
}

absl::StatusOr<RuleProbeOutcome> RuleProbeManager::ProbeNow(const std::string& name,
                                                            backend::Backend* backend) {
  ANERD_ASSIGN_OR_RETURN(backend::RuleProbeReport report, backend->ProbeDeviceRules());
  RuleProbeOutcome out;
  out.record.chip = report.chip;
  out.record.os_build = report.os_build;
  out.record.backend = name;
  out.record.probed_ms = absl::ToUnixMillis(absl::Now());
  out.record.simulated = report.simulated;
  out.record.rows = std::move(report.rows);
  ANERD_RETURN_IF_ERROR(store_->Put(out.record));
  const mil::AneRuleOverrides overrides = Overrides(out.record);
  ANERD_RETURN_IF_ERROR(backend->UseMeasuredRules(overrides));
  out.applied = overrides.values;
  out.origin = overrides.origin;
  spdlog::info("{}: ANE rule probe stored for {}, {}; {} measured rules in force", name,
               out.record.chip, out.record.os_build, out.applied.size());
  return out;
}

}  // namespace anerd::engine
