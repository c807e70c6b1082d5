// AneBackend: the ANE as a Backend (backend.h), in portable C++ over an AneDevice (ane_device.h).
// Registered as "ane" over the Apple framework device and "ane-sim" over the simulated device.
//
// Compile: lowers the verified program under the device's rules table (ane_lowering.h, DeviceInfo
// ::rules: canonical MIL text, blob weight files, I/O laid out in the surfaces the rules allow,
// rejected ops rewritten, attention masks made explicit), compiles and loads it on the device
// (load retried once after 100 ms, docs/ANE_NOTES.md §1.3), allocates the surfaces once at the
// lowering's sizes (at least the rules' minimum, uniform per side). Describe() lists the rules in
// force as device facts "ane_rule.<id>" (ane_rules.h EncodeAneRuleFact) for GetInfo and `anectl
// doctor`. Run: converts the named input tensors into the surfaces, evaluates, converts the
// surfaces back into the named outputs. Values are computed in fp16 whatever
// CompileOptions::numerics says (capabilities.fp16_compute).
//
// Budget (issue 18 item 4; docs/ANE_NOTES.md §1.8, §11): every compile ATTEMPT that reaches the
// device counts (compiles_used), failed ones included, against the effective budget (capabilities.
// compile_budget: the configured one, else kDefaultCompileBudget = 100 as the seed, capped by
// the device's ~119). Once it is spent Compile returns RESOURCE_EXHAUSTED without touching the
// device. A device compile failure is also RESOURCE_EXHAUSTED, with the device's text, when the
// device's own budget is reached or when it happens near the limit (NearCompileBudget): the
// framework reports a spent budget and a rejected program alike, so — as the seed, which treats
// any compile failure as budget spent — it is taken for exhaustion. The worker-process layer
// (worker_backend.h) then recycles the worker and retries the compile once in the fresh one, so
// the client sees either the success or, far from the budget there, the real rejection.
//
// QoS and counters (issue 18 item 6): CompileOptions::qos (0..63, default 21) is passed to the
// device's compile, load, every evaluate and the unload. Each Run reports the device's execution
// time (RunTiming::hardware_us) when the device filled PerfCounters::hardware_ns: "hardware" on
// the framework (_ANEPerformanceStats), "simulated" on ane-sim (its cost model); unset otherwise.
//
// Rules (issue 18 item 7): the rules in force start as the device's table (DeviceInfo::rules);
// UseMeasuredRules replaces single values with a capability probe's measurements (persisted per
// chip and OS build by the engine), which the lowering, Supports and the rule facts (each with its
// origin) then follow. Programs compiled before keep the lowering they got. ProbeDeviceRules runs
// ane_rule_probe.h on the device, its compiles counted as attempts against the budget.
// Memory: CompileOptions::max_memory_bytes goes to the device (AneDevice::CompileWithinMemory):
// ane-sim refuses a program whose CPU plan needs more before allocating it; the framework cannot
// tell and ignores it. A program's memory_bytes() is the device's figure (ane-sim: its CPU plan)
// plus its surfaces, 0 on the framework.
//
// Error mapping (device text and its domain/code are always in the message): lowering limits ->
// UNIMPLEMENTED; device rejected the program -> INVALID_ARGUMENT; over max_memory_bytes ->
// RESOURCE_EXHAUSTED containing kMemoryLimitMarker (never taken for a spent budget); load failed
// twice -> UNAVAILABLE; evaluation failed -> INTERNAL.
//
// Ownership: the backend and every CompiledProgram share the device (shared_ptr), so programs
// may outlive the backend. Thread-safety: as backend.h.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_BACKEND_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/ane/ane_device.h"
#include "server/backend/backend.h"

namespace anerd::backend::ane {

struct AneBackendOptions {
  std::string name = "ane-sim";  // registry key: "ane" or "ane-sim"
  // Compile attempts allowed; 0 = no limit of the backend's own (the device may still fail).
  // The registry passes EffectiveCompileBudget(--compile-budget or kDefaultCompileBudget, device).
  int64_t compile_budget = 0;
};

class AneBackend : public Backend {
 public:
  AneBackend(std::shared_ptr<AneDevice> device, const AneBackendOptions& options);
  BackendDescription Describe() const override;
  absl::Status Supports(const OpQuery& query) const override;
  absl::StatusOr<std::unique_ptr<CompiledProgram>> Compile(const mil::VerifiedProgram& program,
                                                           const CompileOptions& options) override;
  int64_t compiles_used() const override { return compiles_.load(); }
  absl::StatusOr<RuleProbeReport> ProbeDeviceRules() override;
  absl::Status UseMeasuredRules(const mil::AneRuleOverrides& overrides) override;
  const DeviceInfo& device_info() const { return info_; }  // rules: the device's table
  mil::AneRules rules() const;                             // the rules in force

 private:
  // Maps the device's compile failure of the 1-based `attempt` (see the file comment).
  absl::Status MapCompileError(const absl::Status& status, int64_t attempt) const;

  std::shared_ptr<AneDevice> device_;
  AneBackendOptions options_;
  DeviceInfo info_;
  std::atomic<int64_t> compiles_{0};
  mutable absl::Mutex rules_mu_;
  mil::AneRules rules_ ABSL_GUARDED_BY(rules_mu_);  // info_.rules + measured overrides
};

// The effective budget for a backend over a device whose budget is `device_budget`, when the
// daemon asks for `configured` (0 = not configured): the smaller of the non-zero ones.
int64_t EffectiveCompileBudget(int64_t configured, int64_t device_budget);

// Whether a device compile failure at 1-based `attempt` is "near" `budget` (0 = none): within
// its last fifth (at least the last attempt). With the default 100: attempts 81 to 100.
bool NearCompileBudget(int64_t attempt, int64_t budget);

// The canary: a small conv + softmax program (64 channels, docs/ANE_NOTES.md §1.8 minimum) compiled
// and run on `candidate` and on `reference` (the CPU backend) with the same inputs; OK when every
// output element agrees within fp16 tolerance, else FAILED_PRECONDITION describing the first
// mismatch, or the compile/run error.
absl::Status RunCanary(Backend& candidate, Backend& reference);

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_BACKEND_H_
