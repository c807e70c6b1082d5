// RuleProbeManager: the ANE capability probe through the daemon (issue 18 item 7; `anectl doctor
// --probe`). It runs the probe on an ANE backend's DeviceExecutor — so the device is the probe's
// alone and no other thread waits on it; with workers the backend forwards it to the worker
// process that owns the device — stores the result per (chip, OS build) (probes/rule_store.h),
// and makes the measured rule values the backend's rules in force. At start-up, ApplyPersisted
// gives every ANE backend the probe stored for its own chip and OS build; a probe of another OS
// build does not apply.
//
// The rules in force then carry their origin ("probed at <UTC time> on <chip>, <OS build>") in
// the backend's "ane_rule.*" facts, which `anectl doctor --json` shows per rule.
//
// Threading: Probe validates on the caller's thread (immediate errors reach `done` inline), then
// runs and calls `done` exactly once on the executor thread. ApplyPersisted runs on the caller's
// (start-up) thread.
#ifndef ANERD_SERVER_ENGINE_RULE_PROBE_MANAGER_H_
#define ANERD_SERVER_ENGINE_RULE_PROBE_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend/registry.h"
#include "server/engine/device_executor.h"
#include "server/probes/rule_store.h"

namespace anerd::engine {

struct RuleProbeOutcome {
  probes::RuleProbeRecord record;  // backend, chip, OS build, time, rows
  // The rule values the probe established, now in force (rule id -> value), and their origin.
  std::map<std::string, std::string> applied;
  std::string origin;
};

// "probed at 2026-12-07T06:14:37Z on Apple M4, macOS 15.4 (24E248)".
std::string RuleProbeOrigin(const probes::RuleProbeRecord& record);

class RuleProbeManager {
 public:
  using DoneFn = std::function<void(absl::StatusOr<RuleProbeOutcome>)>;

  // Pointers are not owned and must outlive the manager; `executors` has one entry per backend.
  RuleProbeManager(const backend::BackendRegistry* registry,
                   std::map<std::string, DeviceExecutor*> executors, probes::RuleProbeStore* store);

  // Gives each ANE backend the probe persisted for its (chip, OS build), if any; failures are
  // logged and leave the table's rules in force. Returns the backends that got one.
  std::vector<std::string> ApplyPersisted();

  // Probes `backend` ("" = "ane" when the daemon has it, else "ane-sim"). INVALID_ARGUMENT for an
  // unknown backend and FAILED_PRECONDITION naming it for one without an ANE (cpu), before
  // anything is queued; otherwise the backend's error (RESOURCE_EXHAUSTED, UNAVAILABLE...) or
  // the store's.
  void Probe(std::string backend, RequestControl control, DoneFn done);

 private:
  absl::StatusOr<RuleProbeOutcome> ProbeNow(const std::string& name, backend::Backend* backend);

  const backend::BackendRegistry* registry_;
  std::map<std::string, DeviceExecutor*> executors_;
  probes::RuleProbeStore* store_;
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_RULE_PROBE_MANAGER_H_
