// WorkerBackend: a Backend whose device lives in a supervised worker process (docs/ARCHITECTURE.md,
// process model; start it with common/paths.h SelfExecutablePath()). The front process compiles and
// runs through it exactly as through an in-process backend; the worker's compile budget and its
// crashes stay invisible to callers:
//
//  * Budget. Each worker counts compiles (attempts, for the ANE) against the backend's budget.
//    Before a compile would exceed it, a fresh worker starts and the old one is retired. A compile
//    the worker answers with RESOURCE_EXHAUSTED (the device ran out early, or failed near the
//    budget: ane_backend.h) is retried once in a fresh worker, invisibly to the caller. Programs
//    compiled in an older worker recompile lazily (from the program kept in the front) the next
//    time they run, so CompiledPrograms never go stale from a caller's point of view.
//  * ANE rules (issue 18 item 7). ProbeDeviceRules runs the capability probe in the worker (one
//    request; the worker's backend counts its compiles, and a probe that would not fit the
//    budget runs in a fresh worker). UseMeasuredRules keeps the measured rules in the pool, where
//    every later worker receives them on its command line (--ane_rules), and moves work to a
//    fresh worker at once so that they are in force (its description then lists them).
//  * Crashes and hangs. If the worker dies (signal, abort, exit) or hangs (no heartbeat for
//    `heartbeat_timeout`, or one call running longer than `call_timeout`, after which it is
//    killed), the reason is logged, a new worker starts, and only the call that was executing
//    fails: UNAVAILABLE "…died while running …: <reason>" (retryable). A request that had not
//    reached the worker yet is retried in the new one. A program whose runs crashed the worker
//    `quarantine_after` times is quarantined: FAILED_PRECONDITION from then on. Only deaths the
//    worker causes count (a fault signal, a nonzero exit, a hang the front killed); a SIGKILL or
//    SIGTERM from outside (the OOM killer, an operator) restarts the worker but is not held
//    against the program. Programs are named by their kernel key (server/cache/kernel_key.h).
//  * Cancellation. A run's StopCheck (CompiledProgram::RunStoppable) and a compile's
//    CompileOptions::stop are polled while the front waits for the worker. When the caller gives
//    up (CANCELLED, DEADLINE_EXCEEDED) and the worker does not answer within a short grace, the
//    worker is killed and replaced and the call returns the stop's status at once: a restart
//    with the reason "recycled: cancelled: ...", not a crash, never counted toward quarantine.
//    Programs recompile lazily in the new worker as after any restart.
//
//  * Supports. Answered as the worker's backend answers it in-process: a name-only query for an
//    op the worker's hello lists is OK at once; any other query (operand types and shapes) is
//    asked of the worker (wire::SupportsRequest) and the answer cached per (op, operand types),
//    so a refusal carries the backend's own reason. A query not yet cached waits for the call in
//    flight. Compile's pass dumps (CompileOptions::pass_dumps) come back from the worker too,
//    at most wire::kMaxPassDumpBytes of them.
//
// Data path: weights and tensors are copied once into a shared-memory arena (channel.h) and read
// in place by the worker; only small control messages cross the socket.
//
// Thread-safety: as backend.h. Calls into the worker are serialised (one in flight per worker;
// the device executor serialises them anyway). A monitor thread watches heartbeats and exits.
// Ownership: CompiledPrograms share the pool with the backend and may outlive it (they then fail
// with UNAVAILABLE).
#ifndef ANERD_SERVER_WORKER_WORKER_BACKEND_H_
#define ANERD_SERVER_WORKER_WORKER_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/backend/backend.h"

namespace anerd::worker {

struct WorkerOptions {
  std::string backend;                               // registry name the worker creates
  std::string binary;                                // the anerd executable (runs --worker=NAME)
  int64_t compile_budget = 0;                        // --compile-budget per worker; 0 = device's
  absl::Duration start_timeout = absl::Seconds(30);  // for the worker's Hello
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  absl::Duration call_timeout = absl::Minutes(10);  // one compile or run
  int quarantine_after = 3;                         // crashes of one program before quarantine
  bool test_ops = false;                            // run anerd_test_* ops (tests only)
  std::string sim_settings;  // tests only: RegistryOptions::sim_settings (--testonly_sim)
  // The measured ANE rules the worker's backend starts with (RegistryOptions::ane_rules);
  // UseMeasuredRules replaces them for later workers.
  mil::AneRuleOverrides ane_rules;
  std::string log_level = "info";
};

struct WorkerStatus {
  std::string backend;
  int64_t pid = 0;  // 0 while none runs
  uint64_t generation = 0;
  int64_t compiles_used = 0;
  int64_t compile_budget = 0;
  double uptime_seconds = 0;
  uint64_t restarts = 0;
  uint64_t crashes = 0;
  uint64_t quarantined = 0;
  std::string activity;  // "idle", or what the worker is doing and for how long
  std::vector<std::string> recent_restart_reasons;  // newest last, at most 8
};

class WorkerPool;

class WorkerBackend : public backend::Backend {
 public:
  // Starts the first worker and reads its description. UNAVAILABLE with the worker's own reason
  // when the backend cannot run on this machine (e.g. no ANE); INTERNAL if the worker cannot be
  // started.
  static absl::StatusOr<std::unique_ptr<WorkerBackend>> Start(const WorkerOptions& options);
  ~WorkerBackend() override;  // stops the worker

  backend::BackendDescription Describe() const override;
  absl::Status Supports(const backend::OpQuery& query) const override;
  absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> Compile(
      const mil::VerifiedProgram& program, const backend::CompileOptions& options) override;
  int64_t compiles_used() const override;
  absl::StatusOr<backend::RuleProbeReport> ProbeDeviceRules() override;
  absl::Status UseMeasuredRules(const mil::AneRuleOverrides& overrides) override;

  WorkerStatus Status() const;
  // Test hook: the current worker's pid (0 if none).
  int64_t pid() const;

 private:
  explicit WorkerBackend(std::shared_ptr<WorkerPool> pool);
  std::shared_ptr<WorkerPool> pool_;
};

}  // namespace anerd::worker

#endif  // ANERD_SERVER_WORKER_WORKER_BACKEND_H_
