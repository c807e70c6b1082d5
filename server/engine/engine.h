// Engine: the façade the gRPC service calls. It owns every piece of mutable daemon state
// (backends, and as later work lands, the compile cache, sessions and probes); the service only
// converts between proto and the native types used here. No gRPC or proto types appear here.
//
// Thread-safety: all public methods are safe to call concurrently from gRPC threads. Long work is
// never run on the caller's thread (see docs/ARCHITECTURE.md, "Life of a request": one
// DeviceExecutor per backend).
#ifndef ANERD_SERVER_ENGINE_ENGINE_H_
#define ANERD_SERVER_ENGINE_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/artifacts/artifact_store.h"
#include "server/engine/device_executor.h"
#include "server/engine/generation_manager.h"
#include "server/engine/kernel_manager.h"
#include "server/engine/probe_manager.h"
#include "server/engine/rule_probe_manager.h"
#include "server/sessions/session_manager.h"
#include "server/store/store.h"
#include "server/telemetry/energy_sampler.h"

namespace anerd::engine {

// Which backends run in worker processes and how they are supervised (server/worker/).
struct WorkerSettings {
  std::string binary;        // the anerd executable; empty = no workers (everything in-process)
  bool isolate_ane = true;   // ane and ane-sim run in workers (--isolate-ane)
  bool isolate_cpu = false;  // --isolate-cpu
  absl::Duration heartbeat_timeout = absl::Seconds(10);  // --worker-heartbeat-timeout-ms
  absl::Duration call_timeout = absl::Minutes(10);       // --worker-call-timeout-s
  int quarantine_after = 3;                              // --quarantine-after
  bool test_ops = false;                                 // --testonly_ops
  std::string log_level = "info";
};

// INVALID_ARGUMENT naming the flag for a non-positive timeout or quarantine_after < 1.
absl::Status CheckWorkerSettings(const WorkerSettings& settings);

struct EngineOptions {
  std::string state_dir;         // absolute; created by the daemon before the engine starts
  std::string socket_path;       // for reporting only
  std::string backend = "auto";  // auto | cpu | ...; see the backend registry
  KernelLimits kernel_limits;
  uint64_t cache_bytes = uint64_t{2} << 30;  // --cache-bytes: compiled programs kept in memory
  probes::ProbeBudget probe_budget;          // --max-probe-bytes, --max-probe-gflop
  int64_t compile_budget = 0;                // --compile-budget per backend; 0 = unlimited
  int max_sessions = 4;                      // --max-sessions active at once
  // --data-root; empty = $HOME. The state dir, `secret_paths` and dot-files are never readable as
  // data, whatever the roots (ResolveUnderRoots, common/paths.h).
  std::vector<std::string> data_roots;
  std::vector<std::string> secret_paths;    // the daemon's secret files (token file, TLS key)
  bool resume_interrupted = true;           // --resume-interrupted
  uint64_t session_memory_limit_bytes = 0;  // --session-memory-limit-bytes; 0 = 3/4 of RAM
  double checkpoint_interval_s = 300;       // --checkpoint-interval-s (sessions/session_manager.h)
  std::vector<std::string> testonly_rank_args;  // --testonly-rank-args (session_manager.h)
  int testonly_rank_args_launches = 1;          // --testonly-rank-args-launches
  WorkerSettings workers;
  // --max-generations, --max-generate-tokens, --max-generate-context (generation_manager.h).
  GenerationLimits generation_limits;
  // --testonly_sim: the simulated ANE's test settings (faults, rules that differ from the
  // table; ane::ParseSimSettings), for in-process backends and every worker alike. "" = none.
  std::string sim_settings;
  // Energy telemetry (server/telemetry): the sysfs root RAPL is looked for under ("/sys"; a fake
  // tree in tests), and how often the sampler thread reads the counters.
  std::string telemetry_sysfs_root = "/sys";
  absl::Duration telemetry_period = absl::Milliseconds(100);
};

// An energy telemetry source and whether it can be read (GetInfo, metrics).
struct TelemetrySummary {
  std::string name;  // "rapl", "ioreport"
  bool available = false;
  std::string unavailable;    // why not, when not available
  std::string thermal_state;  // "nominal" ... where the platform says; empty elsewhere
};

struct CacheSummary {
  uint64_t entries = 0, bytes = 0, capacity_bytes = 0, hits = 0, misses = 0, evictions = 0;
  int64_t kernels_stored = 0;
};

struct BackendSummary {
  std::string name;
  std::string version;
  std::string device;
  bool is_default = false;
  uint64_t compile_budget = 0;  // 0 = unlimited
  uint64_t compiles_used = 0;
  std::vector<std::pair<std::string, std::string>> facts;  // BackendDescription::facts
};

// One backend worker process (the process model of docs/ARCHITECTURE.md): the device lives in it so
// that its compile budget and crashes never take the front process down.
struct WorkerSummary {
  std::string backend;
  int64_t pid = 0;              // 0 while no worker is running
  uint64_t generation = 0;      // 1 for the first worker of this backend, +1 per replacement
  uint64_t compiles_used = 0;   // in the current worker
  uint64_t compile_budget = 0;  // per worker; 0 = unlimited
  double uptime_seconds = 0;    // of the current worker
  uint64_t restarts = 0;        // replacements so far (budget recycles + crashes)
  uint64_t crashes = 0;         // of which crashes or hangs
  uint64_t quarantined = 0;     // programs refused after crashing the worker repeatedly
  std::string activity;         // "idle", "starting", or the running call and its duration
  std::vector<std::string> recent_restart_reasons;  // newest last, at most 8
};

// One backend executor's queue by class (device_executor.h QueueStats).
struct QueueSummary {
  std::string backend;
  QueueStats classes;  // by TaskClass
};

struct DaemonInfo {
  std::string version;
  std::string build;
  std::string os;
  double uptime_seconds = 0;
  int64_t pid = 0;
  std::string state_dir;
  std::string socket_path;
  std::vector<BackendSummary> backends;
  std::string default_backend;
  CacheSummary cache;
  std::vector<std::pair<std::string, std::string>> unavailable_backends;  // (name, reason)
  std::vector<WorkerSummary> workers;       // empty when no backend runs isolated
  std::vector<std::string> state_findings;  // cache::StateDbCheck findings from start-up
  std::vector<QueueSummary> queues;         // one per backend, by name
  std::vector<TelemetrySummary> telemetry;  // the energy sources tried (one per platform today)
};

class Engine {
 public:
  // Creates the engine: opens the backends, the kernel store under the state dir and the compile
  // cache. INVALID_ARGUMENT for an unknown backend name; the store's error if it cannot open.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  ~Engine();

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  DaemonInfo Info() const;
  KernelManager& kernels() { return *kernels_; }
  ProbeManager& probes() { return *probes_; }
  RuleProbeManager& rule_probes() { return *rule_probes_; }
  sessions::SessionManager& sessions() { return *sessions_; }
  // Uploaded datasets, models and tokenizers (server/artifacts/artifact_store.h).
  artifacts::ArtifactStore& artifacts() { return *artifacts_; }
  // Text generations (server/engine/generation_manager.h).
  GenerationManager& generations() { return *generations_; }
  // The device executor of `backend`, or null when there is none (tests observe it).
  DeviceExecutor* executor(const std::string& backend);
  // The energy sampler (server/telemetry/energy_sampler.h): cached readings, no I/O.
  const telemetry::EnergySampler& energy() const { return *energy_; }

  // Stops accepting work, cancels what is queued and joins worker threads. Idempotent; called by
  // the daemon's ordered shutdown after the gRPC server has stopped.
  void Shutdown();

 private:
  explicit Engine(EngineOptions options);
  struct Backends;

  absl::Status Init();
  absl::Status CreateBackends();  // in-process or behind workers, per options_.workers

  EngineOptions options_;
  absl::Time started_;
  std::unique_ptr<Backends> backends_;
  // Destroyed after every manager whose work reads its snapshots (sessions, probes).
  std::unique_ptr<telemetry::EnergySampler> energy_;
  std::unique_ptr<store::Store> state_store_;  // anerd.db and blobs/; outlives its adapters
  std::unique_ptr<cache::KernelStore> store_;
  std::unique_ptr<cache::CompileCache> cache_;
  std::unique_ptr<KernelManager> kernels_;
  std::unique_ptr<probes::ProbeStore> probe_store_;
  std::unique_ptr<ProbeManager> probes_;
  std::unique_ptr<artifacts::ArtifactStore> artifacts_;
  std::unique_ptr<probes::RuleProbeStore> rule_store_;
  std::unique_ptr<RuleProbeManager> rule_probes_;
  std::unique_ptr<sessions::SessionManager> sessions_;
  std::unique_ptr<GenerationManager> generations_;  // after sessions_: destroyed before them
  bool shut_down_ = false;
  std::vector<std::string> state_findings_;  // set once by Init
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_ENGINE_H_
