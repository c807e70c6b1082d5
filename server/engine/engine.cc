#include "server/engine/engine.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/registry.h"
#include "server/store/space_reserve.h"
#include "server/store/state_db.h"
#include "server/worker/worker_backend.h"
#include "spdlog/spdlog.h"

namespace anerd::engine {
namespace {

bool Isolated(const WorkerSettings& w, const std::string& name) {
  if (w.binary.empty()) return false;
  return name == "cpu" ? w.isolate_cpu : w.isolate_ane;
}

WorkerSummary ToSummary(const worker::WorkerStatus& s) {
  WorkerSummary out;
  out.backend = s.backend;
  out.pid = s.pid;
  out.generation = s.generation;
  out.compiles_used = static_cast<uint64_t>(s.compiles_used);
  out.compile_budget = static_cast<uint64_t>(s.compile_budget);
  out.uptime_seconds = s.uptime_seconds;
  out.restarts = s.restarts;
  out.crashes = s.crashes;
  out.quarantined = s.quarantined;
  out.activity = s.activity;
  out.recent_restart_reasons = s.recent_restart_reasons;
  return out;
}

std::string OsDescription() {
  utsname u{};
  if (uname(&u) != 0) return kSystem;
  return absl::StrCat(u.sysname, " ", u.release, " ", u.machine);
}

}  // namespace

// Backends and their executors. Executors are destroyed (joined) before the backends.
struct Engine::Backends {
  std::unique_ptr<backend::BackendRegistry> registry;
  std::map<std::string, std::unique_ptr<DeviceExecutor>> executors;
  std::string default_name;
  std::vector<const worker::WorkerBackend*> workers;  // owned by the registry
};

Engine::Engine(EngineOptions options)
    : options_(std::move(options)), started_(absl::Now()), backends_(new Backends) {}

Engine::~Engine() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  std::unique_ptr<Engine> engine(new Engine(options));
  ANERD_RETURN_IF_ERROR(engine->Init());
  return engine;
}

absl::Status CheckWorkerSettings(const WorkerSettings& w) {
  if (w.heartbeat_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--worker-heartbeat-timeout-ms must be positive");
  }
  if (w.call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--worker-call-timeout-s must be positive");
  }
  if (w.quarantine_after < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--quarantine-after must be at least 1, got ", w.quarantine_after));
  }
  return absl::OkStatus();
}

absl::Status Engine::CreateBackends() {
  ANERD_RETURN_IF_ERROR(CheckWorkerSettings(options_.workers));
  if (!(options_.checkpoint_interval_s >= 0) || options_.checkpoint_interval_s > 1e9) {
    return absl::InvalidArgumentError(
        absl::StrCat("--checkpoint-interval-s must be between 0 and 1e9 seconds, got ",
                     options_.checkpoint_interval_s));
  }
  if (absl::Status s = backend::ane::ParseSimSettings(options_.sim_settings).status(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--testonly_sim: ", s.message()));
  }
  backend::RegistryOptions registry_options;
  registry_options.compile_budget = options_.compile_budget;
  registry_options.sim_settings = options_.sim_settings;
  const WorkerSettings& w = options_.workers;
  std::vector<std::unique_ptr<backend::Backend>> backends;
  std::vector<backend::UnavailableBackend> unavailable;
  for (const std::string& name : backend::KnownBackendNames()) {
    if (!Isolated(w, name)) {
      absl::StatusOr<std::unique_ptr<backend::Backend>> b =
          backend::CreateBackend(name, registry_options);
      if (b.ok()) {
        backends.push_back(*std::move(b));
      } else {
        unavailable.push_back({name, std::string(b.status().message())});
      }
      continue;
    }
    worker::WorkerOptions wo;
    wo.backend = name;
    wo.binary = w.binary;
    wo.compile_budget = options_.compile_budget;
    wo.heartbeat_timeout = w.heartbeat_timeout;
    wo.call_timeout = w.call_timeout;
    wo.quarantine_after = w.quarantine_after;
    wo.test_ops = w.test_ops;
    wo.log_level = w.log_level;
    wo.sim_settings = options_.sim_settings;
    absl::StatusOr<std::unique_ptr<worker::WorkerBackend>> b = worker::WorkerBackend::Start(wo);
    if (b.ok()) {
      backends_->workers.push_back(b->get());
      backends.push_back(*std::move(b));
    } else if (b.status().code() == absl::StatusCode::kUnavailable) {
      unavailable.push_back({name, std::string(b.status().message())});
    } else {
      return b.status();
    }
  }
  backends_->registry =
      std::make_unique<backend::BackendRegistry>(std::move(backends), std::move(unavailable));
  return absl::OkStatus();
}

absl::Status Engine::Init() {
  ANERD_RETURN_IF_ERROR(CreateBackends());
  const std::vector<std::string> names = backends_->registry->names();
  if (names.empty()) return absl::InternalError("no backend is available");
  if (options_.backend == "auto") {
    backends_->default_name = names.front();
  } else if (backends_->registry->Find(options_.backend) != nullptr) {
    backends_->default_name = options_.backend;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown backend '", options_.backend,
                                                   "' (available: auto, ",
                                                   absl::StrJoin(names, ", "), ")"));
  }
  std::map<std::string, DeviceExecutor*> executors;
  for (const std::string& name : names) {
    auto executor = std::make_unique<DeviceExecutor>(name);
    executors[name] = executor.get();
    backends_->executors[name] = std::move(executor);
  }
  // On a full disk, give back the space reserve so that opening the database (its -wal and -shm
  // files) succeeds and space can then be freed through the API.
  store::ReleaseSpaceReserveIfLow(options_.state_dir);
  // Before any store opens anerd.db: a corrupt one is moved aside, a lost one is noticed.
  ANERD_ASSIGN_OR_RETURN(const store::StateDbCheck db_check,
                         store::CheckStateDb(options_.state_dir));
  state_findings_ = db_check.findings;
  ANERD_ASSIGN_OR_RETURN(state_store_, store::Store::Open(options_.state_dir));
  ANERD_ASSIGN_OR_RETURN(store_, cache::KernelStore::Open(state_store_.get()));
  // Blobs a crashed compile stored without a record are unreachable: drop them, unless the
  // records were lost with the database (then the blobs are all that is left).
  absl::StatusOr<int64_t> swept =
      db_check.registry_lost ? absl::StatusOr<int64_t>(0) : store_->CollectGarbage();
  if (!swept.ok()) {
    spdlog::warn("blob garbage collection failed: {}", swept.status().ToString());
  } else if (*swept > 0) {
    spdlog::info("removed {} unreferenced blobs", *swept);
  }
  ANERD_ASSIGN_OR_RETURN(artifacts_, artifacts::ArtifactStore::Open(state_store_.get()));
  cache_ = std::make_unique<cache::CompileCache>(options_.cache_bytes);
  kernels_ = std::make_unique<KernelManager>(backends_->registry.get(), std::move(executors),
                                             store_.get(), cache_.get(), backends_->default_name,
                                             options_.kernel_limits);
  ANERD_ASSIGN_OR_RETURN(probe_store_, probes::ProbeStore::Open(state_store_.get()));
  std::map<std::string, DeviceExecutor*> probe_executors;
  for (const auto& [name, executor] : backends_->executors) probe_executors[name] = executor.get();
  probes_ = std::make_unique<ProbeManager>(backends_->registry.get(), std::move(probe_executors),
                                           probe_store_.get(), backends_->default_name,
                                           options_.probe_budget);
  rule_store_ = std::make_unique<probes::RuleProbeStore>(state_store_.get());
  std::map<std::string, DeviceExecutor*> rule_executors;
  for (const auto& [name, executor] : backends_->executors) rule_executors[name] = executor.get();
  rule_probes_ = std::make_unique<RuleProbeManager>(backends_->registry.get(),
                                                    std::move(rule_executors), rule_store_.get());
  // Before any kernel compiles: the rules measured on this chip and OS build replace the table's.
  rule_probes_->ApplyPersisted();
  sessions::SessionOptions session_options;
  session_options.state_dir = options_.state_dir;
  session_options.max_sessions = options_.max_sessions;
  session_options.data_roots = options_.data_roots;
  if (session_options.data_roots.empty()) {
    session_options.data_roots = {HomeDir()};
  }
  session_options.secret_paths = options_.secret_paths;
  session_options.resume_interrupted = options_.resume_interrupted;
  session_options.memory_limit_bytes = options_.session_memory_limit_bytes;
  session_options.checkpoint_interval_s = options_.checkpoint_interval_s;
  session_options.testonly_first_launch_rank_args = options_.testonly_rank_args;
  session_options.testonly_rank_args_launches = options_.testonly_rank_args_launches;
  energy_ = std::make_unique<telemetry::EnergySampler>(
      telemetry::OpenPlatformEnergy(options_.telemetry_sysfs_root), options_.telemetry_period);
  {
    const telemetry::EnergySnapshot e = energy_->Snapshot();
    if (e.unavailable.empty()) {
      spdlog::info("energy telemetry: {}", e.source);
    } else {
      spdlog::info("energy telemetry unavailable ({}): {}", e.source, e.unavailable);
    }
  }
  telemetry::EnergySampler* energy = energy_.get();
  session_options.energy = [energy] { return energy->Snapshot(); };
  probes_->SetEnergy([energy] { return energy->Snapshot(); });
  ProbeManager* probes = probes_.get();
  session_options.measured_peak =
      [probes](const std::string& backend) -> std::optional<sessions::MeasuredPeak> {
    std::optional<ProbeManager::BackendPeak> p = probes->MeasuredPeak(backend);
    if (!p.has_value()) return std::nullopt;
    return sessions::MeasuredPeak{p->tflops, "probe " + p->result_id};
  };
  Backends* backends = backends_.get();
  sessions::SubmitTask submit = [backends](const std::string& backend, TaskClass task_class,
                                           const char* what,
                                           std::function<void(absl::Status, absl::Duration)> work) {
    backends->executors.at(backend)->Submit(task_class, {}, what, std::move(work));
  };
  sessions::YieldTask yield = [backends](const std::string& backend) {
    backends->executors.at(backend)->Yield();
  };
  sessions_ = std::make_unique<sessions::SessionManager>(
      backends_->registry.get(), submit, backends_->default_name, state_store_.get(),
      session_options, yield);
  ANERD_RETURN_IF_ERROR(sessions_->Init());
  ANERD_RETURN_IF_ERROR(CheckGenerationLimits(options_.generation_limits));
  generations_ = std::make_unique<GenerationManager>(
      sessions_.get(),
      ClientPathRoots{session_options.data_roots, options_.state_dir, options_.secret_paths},
      options_.generation_limits, backends_->registry.get(), submit);
  if (!store::EnsureSpaceReserve(options_.state_dir)) {
    spdlog::warn(
        "no room for the {} byte space reserve in {}: deletes may fail if the disk fills "
        "up; free some space",
        store::kSpaceReserveBytes, options_.state_dir);
  }
  spdlog::info("backends: {} (default {}); {} kernels stored", absl::StrJoin(names, ", "),
               backends_->default_name, store_->Count());
  return absl::OkStatus();
}

DaemonInfo Engine::Info() const {
  DaemonInfo info;
  info.version = kVersion;
  info.build = absl::StrCat(kBuildType, ", ", kCompiler);
  info.os = OsDescription();
  info.uptime_seconds = absl::ToDoubleSeconds(absl::Now() - started_);
  info.pid = getpid();
  info.state_dir = options_.state_dir;
  info.socket_path = options_.socket_path;
  info.default_backend = backends_->default_name;
  info.state_findings = state_findings_;
  if (backends_->registry != nullptr) {
    for (const auto& b : backends_->registry->backends()) {
      const backend::BackendDescription d = b->Describe();
      BackendSummary summary;
      summary.name = d.name;
      summary.version = d.version;
      summary.device = d.device;
      summary.is_default = d.name == backends_->default_name;
      summary.compile_budget = static_cast<uint64_t>(d.capabilities.compile_budget);
      summary.compiles_used = static_cast<uint64_t>(b->compiles_used());
      summary.facts = d.facts;
      info.backends.push_back(std::move(summary));
    }
    for (const backend::UnavailableBackend& u : backends_->registry->unavailable()) {
      info.unavailable_backends.emplace_back(u.name, u.reason);
    }
  }
  for (const worker::WorkerBackend* w : backends_->workers) {
    info.workers.push_back(ToSummary(w->Status()));
  }
  for (const auto& [name, executor] : backends_->executors) {
    info.queues.push_back({name, executor->Stats()});
  }
  if (energy_ != nullptr) {
    const telemetry::EnergySnapshot e = energy_->Snapshot();
    info.telemetry.push_back({e.source, e.available(), e.unavailable, e.thermal.value_or("")});
  }
  if (cache_ != nullptr) {
    const cache::CacheStats s = cache_->Stats();
    info.cache = {s.entries, s.bytes,     s.capacity_bytes, s.hits,
                  s.misses,  s.evictions, store_->Count()};
  }
  return info;
}

DeviceExecutor* Engine::executor(const std::string& backend) {
  auto it = backends_->executors.find(backend);
  return it == backends_->executors.end() ? nullptr : it->second.get();
}

void Engine::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (probes_ != nullptr) probes_->CancelAll();  // a running probe stops within one eval
  // Generations stop at their next token (a live-weights copy still queued is skipped below).
  if (generations_ != nullptr) generations_->Shutdown();
  // Sessions checkpoint on their executors first, so they resume where they stopped.
  if (sessions_ != nullptr) sessions_->Shutdown();
  for (auto& [name, executor] : backends_->executors) executor->Shutdown();
  if (kernels_ != nullptr) kernels_->FlushUsage();
}

}  // namespace anerd::engine
