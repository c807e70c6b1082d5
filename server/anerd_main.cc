// anerd: the daemon. Maps flags onto DaemonOptions and runs in the foreground
// (launchd and systemd supervise it). Exit codes: 0 clean shutdown, 1 start-up
// error (message on stderr), 2 a shutdown cut short after --shutdown-grace-ms plus a margin.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/memory_trim.h"
#include "common/mil/ane_rules.h"
#include "common/paths.h"
#include "common/version.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/daemon/daemon.h"
#include "server/daemon/daemon_flags.h"
#include "server/worker/worker_backend.h"
#include "server/worker/worker_host.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, socket, "", "Unix socket path (default: the platform's per-user path)");
ABSL_FLAG(std::string, state_dir, "", "State directory (default: the platform's per-user path)");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error, critical or off");
ABSL_FLAG(uint64_t, log_max_bytes, 10 << 20,
          "Rotate <state dir>/logs/anerd.log at this size (bytes)");
ABSL_FLAG(uint64_t, log_max_files, 5, "Rotated log files kept");
ABSL_FLAG(std::string, backend, "auto",
          "Default backend: auto (the first available of ane, cpu), ane (macOS with "
          "AppleNeuralEngine.framework), cpu or ane-sim (the simulated ANE)");
ABSL_FLAG(std::string, config, "",
          "Configuration file of `name = value` lines (default: $XDG_CONFIG_HOME/anerd/anerd.conf "
          "or ~/.config/anerd/anerd.conf when it exists); flags on the command line win");
ABSL_FLAG(int, shutdown_grace_ms, 5000,
          "How long in-flight RPCs may run after SIGTERM; the daemon exits at most a few "
          "seconds later whatever is still running");
ABSL_FLAG(std::string, listen, "",
          "Also serve TCP on HOST:PORT (always needs --auth-tokens; "
          "non-loopback also needs --tls-cert and --tls-key)");
ABSL_FLAG(bool, insecure_loopback, false,
          "Allow plain-text TCP on a loopback --listen address (tokens are "
          "still required)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain for --listen (TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: require client certificates it signed (mutual TLS)");
ABSL_FLAG(std::string, auth_tokens, "",
          "File of 'NAME TOKEN [admin]' lines (anectl token create NAME "
          "[--admin] --file F); required with --listen: every RPC on it must "
          "send one as a bearer token; admin tokens also open --metrics-listen");
ABSL_FLAG(std::string, metrics_listen, "",
          "Serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9464; "
          "loopback only unless --metrics-allow-remote; scrapes need an admin "
          "token unless from the daemon's own uid on loopback)");
ABSL_FLAG(bool, metrics_allow_remote, false,
          "Allow --metrics-listen on a non-loopback address (needs "
          "--auth-tokens; every scrape must carry an admin token)");
ABSL_FLAG(std::string, ui_listen, "",
          "Serve the live dashboard (sessions, curves, step breakdown, samples, workers, probes) "
          "on HOST:PORT, e.g. 127.0.0.1:8787; a non-loopback address needs --tls-cert, "
          "--tls-key and --auth-tokens, as --listen does");
ABSL_FLAG(int64_t, quota_kernels, 0,
          "Most kernels each client (token name on TCP, uid on the socket) may "
          "store; 0 = unlimited");
ABSL_FLAG(int64_t, quota_sessions, 0,
          "Most active training sessions per client; 0 = unlimited (see also "
          "--max-sessions)");
ABSL_FLAG(int64_t, quota_queued, 0,
          "Most compile/evaluate/probe requests per client in flight at once; "
          "0 = unlimited");
ABSL_FLAG(int64_t, quota_artifacts, 0,
          "Most artifacts (datasets, models, tokenizers) each client may own; 0 = unlimited");
ABSL_FLAG(uint64_t, quota_artifact_bytes, 0,
          "Most bytes of artifacts each client may own; 0 = unlimited");
ABSL_FLAG(uint64_t, max_artifact_bytes, uint64_t{8} << 30,
          "Largest artifact (dataset, model, tokenizer) a client may upload (bytes)");
ABSL_FLAG(uint64_t, max_mil_bytes, 16 << 20, "Largest MIL text a client may submit (bytes)");
ABSL_FLAG(uint64_t, max_weight_bytes, uint64_t{2} << 30, "Largest total weight bytes per kernel");
ABSL_FLAG(uint64_t, max_tensor_bytes, 256 << 20, "Largest total input bytes per evaluation");
ABSL_FLAG(int64_t, max_kernels, 10000, "Most kernels the daemon stores");
ABSL_FLAG(uint64_t, cache_bytes, uint64_t{2} << 30,
          "Memory for compiled programs (bytes, as the backends plan them); a kernel larger than "
          "this is refused");
ABSL_FLAG(uint64_t, max_kernel_memory_bytes, uint64_t{2} << 30,
          "Most memory one compiled kernel may hold (planned buffers and decoded constants, "
          "bytes); 0 = up to --cache-bytes");
ABSL_FLAG(uint64_t, max_upload_bytes_in_flight, uint64_t{4} << 30,
          "Most weight bytes all unfinished CompileKernel uploads together may declare (they "
          "are spooled to <state dir>/uploads, not held in memory)");
ABSL_FLAG(uint64_t, max_probe_bytes, uint64_t{2} << 30,
          "Most memory one probe grid point may need (estimated before it starts, bytes)");
ABSL_FLAG(double, max_probe_gflop, 1000,
          "Most work one probe evaluation may take (estimated before it starts, GFLOP)");
ABSL_FLAG(int64_t, compile_budget, 0,
          "Compile attempts each backend allows per process before its worker is recycled "
          "(0 = the backend's default: 100 for ane and ane-sim, as the seed; unlimited for cpu)");
ABSL_FLAG(int32_t, max_sessions, 4, "Most training sessions active at once");
ABSL_FLAG(int32_t, max_generations, 2, "Most text generations (Generate) running at once");
ABSL_FLAG(int32_t, max_generate_tokens, 4096, "Most tokens one Generate call may ask for");
ABSL_FLAG(int64_t, max_generate_context, 8192,
          "Most positions of one generation's context (its KV cache)");
ABSL_FLAG(std::vector<std::string>, data_root, {},
          "Directories training data and model files must lie under "
          "(comma-separated; default: $HOME); the state dir, the token file and "
          "dot-files are never readable, whatever the roots");
ABSL_FLAG(bool, resume_interrupted, true,
          "Resume sessions that were running when the daemon last stopped");
ABSL_FLAG(uint64_t, session_memory_limit_bytes, 0,
          "Estimated memory all active training sessions may use together; 0 = 3/4 of the "
          "machine's RAM. Larger sessions are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(double, checkpoint_interval_s, 300,
          "Sessions started without --checkpoint-every checkpoint after this many seconds of "
          "training since their last checkpoint (a crash loses at most that much); 0 = only at "
          "the end");
ABSL_FLAG(bool, isolate_ane, true,
          "Run the ane and ane-sim backends in supervised worker processes "
          "(compile budget "
          "recycling, crash isolation)");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "Check every mutex acquisition against a lock-order graph (Abseil's deadlock "
          "detection: on by default in Debian's Abseil, a cost on every lock of every RPC)");
ABSL_FLAG(bool, isolate_cpu, false, "Also run the cpu backend in a worker process");
ABSL_FLAG(int64_t, worker_heartbeat_timeout_ms, 10000,
          "Kill and replace a worker whose heartbeat stops for this long");
ABSL_FLAG(int64_t, worker_call_timeout_s, 600,
          "Kill and replace a worker when one compile or evaluation runs "
          "longer than this");
ABSL_FLAG(int32_t, quarantine_after, 3,
          "Refuse a kernel (FAILED_PRECONDITION) after it crashed a worker "
          "this many times");
ABSL_FLAG(std::string, worker, "", "Internal: run as the worker process of this backend");
ABSL_FLAG(int32_t, worker_channel_fd, -1, "Internal: the worker's channel to the front");
ABSL_FLAG(int32_t, worker_heartbeat_fd, -1, "Internal: the worker's heartbeat page");
ABSL_FLAG(int64_t, worker_parent_pid, 0, "Internal: the front process a worker belongs to");
ABSL_FLAG(bool, testonly_ops, false,
          "Tests only: workers run anerd_test_abort / anerd_test_hang (crash "
          "isolation tests)");
ABSL_FLAG(std::string, testonly_sim, "",
          "Tests only: the simulated ANE's settings, KEY=VALUE,... (the one switch for its "
          "faults: load_fail_every, compile_fail_before_budget, compile_fail_from_attempt; also "
          "compile_budget, chip, os_build and any ANE rule id, e.g. min_surface_bytes=65536, for "
          "a device that differs from the rules table); passed to every worker");
ABSL_FLAG(std::string, ane_rules, "",
          "Internal: measured ANE rules a worker's backend starts with (set by the front)");
ABSL_FLAG(std::vector<std::string>, testonly_rank_args, {},
          "Tests only: arguments added to anerd-rank's on the first launch of each data-parallel "
          "session (comma-separated, e.g. --testonly-exit-rank=1,--testonly-exit-step=3)");
ABSL_FLAG(int32_t, testonly_rank_args_launches, 1,
          "Tests only: how many launches of each data-parallel session get --testonly-rank-args");
ABSL_FLAG(bool, testonly_world_accessible_socket, false,
          "Tests only: make the socket reachable by other users so the "
          "peer-uid check is exercised");

namespace {

// `anerd --worker=NAME ...`, started by the front process
// (server/worker/worker_backend.h).
int RunWorkerProcess() {
  anerd::LoggingOptions logging;
  logging.level = absl::GetFlag(FLAGS_log_level);
  logging.program = absl::StrCat("anerd-worker-", absl::GetFlag(FLAGS_worker));
  (void)anerd::InitLogging(logging);
  anerd::worker::WorkerHostOptions options;
  options.backend = absl::GetFlag(FLAGS_worker);
  options.channel_fd = absl::GetFlag(FLAGS_worker_channel_fd);
  options.heartbeat_fd = absl::GetFlag(FLAGS_worker_heartbeat_fd);
  options.parent_pid = absl::GetFlag(FLAGS_worker_parent_pid);
  options.registry.compile_budget = absl::GetFlag(FLAGS_compile_budget);
  options.registry.sim_settings = absl::GetFlag(FLAGS_testonly_sim);
  if (const std::string rules = absl::GetFlag(FLAGS_ane_rules); !rules.empty()) {
    absl::StatusOr<anerd::mil::AneRuleOverrides> decoded =
        anerd::mil::DecodeAneRuleOverrides(rules);
    if (decoded.ok()) {
      options.registry.ane_rules = *std::move(decoded);
    } else {
      spdlog::warn("--ane_rules ignored: {}", decoded.status().ToString());
    }
  }
  options.test_ops = absl::GetFlag(FLAGS_testonly_ops);
  const int code = anerd::worker::RunWorker(options);
  anerd::ShutdownLogging();
  return code;
}

constexpr char kUsage[] =
    "anerd: the Apple Neural Engine daemon (compile cache, kernels, training, probes).\n"
    "Usage: anerd [--socket PATH] [--state-dir DIR] [--backend NAME] [--listen HOST:PORT] ...";

// The arguments absl parses: argv[0], the config file's flags, then the command line's, with
// every flag name spelled with underscores (daemon_flags.h). Workers read no config file: the
// front passes them everything.
absl::StatusOr<std::vector<std::string>> EffectiveArgs(int argc, char** argv) {
  std::vector<std::string> cli(argv + 1, argv + argc);
  cli = anerd::daemon::NormalizeFlagNames(cli);
  std::vector<std::string> args = {argv[0]};
  bool named = false;
  const std::string named_path = anerd::daemon::ConfigFlagValue(cli, &named);
  bool is_worker = false;
  for (const std::string& a : cli) is_worker |= absl::StartsWith(a, "--worker=");
  const std::string path = named ? named_path : anerd::daemon::DefaultConfigPath();
  if (!is_worker && !path.empty()) {
    absl::StatusOr<std::vector<std::string>> from_file = anerd::daemon::ReadConfigFile(path);
    if (from_file.ok()) {
      args.insert(args.end(), from_file->begin(), from_file->end());
    } else if (named || !absl::IsNotFound(from_file.status())) {
      return from_file.status();
    }
  }
  args.insert(args.end(), cli.begin(), cli.end());
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  anerd::TuneAllocatorForStreaming();  // before any thread: see common/memory_trim.h
  if (anerd::daemon::WantsHelp(std::vector<std::string>(argv + 1, argv + argc))) {
    std::fputs(anerd::daemon::HelpText(kUsage, anerd::daemon::UserFlags("anerd_main.cc")).c_str(),
               stdout);
    return 0;
  }
  absl::StatusOr<std::vector<std::string>> effective = EffectiveArgs(argc, argv);
  if (!effective.ok()) {
    std::fprintf(stderr, "anerd: %s\n", std::string(effective.status().message()).c_str());
    return 1;
  }
  std::vector<char*> arg_ptrs;
  for (std::string& a : *effective) arg_ptrs.push_back(a.data());
  arg_ptrs.push_back(nullptr);
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.version_string = [] { return absl::StrCat("anerd ", anerd::kVersion, "\n"); };
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(static_cast<int>(arg_ptrs.size() - 1), arg_ptrs.data());
  // Issue 22: Debian builds Abseil without NDEBUG, so every absl::Mutex lock (gRPC's included)
  // walks the deadlock graph; a daemon runs without it unless asked (the tests keep it on).
  absl::SetMutexDeadlockDetectionMode(absl::GetFlag(FLAGS_mutex_deadlock_detection)
                                          ? absl::OnDeadlockCycle::kAbort
                                          : absl::OnDeadlockCycle::kIgnore);
  // Before any thread uses BLAS: one thread pool for the process (kernels/parallel.h), in the
  // front (training's dW GEMMs, in-process backends) and in every worker.
  anerd::backend::cpu::ConfigureBlasThreading();
  if (!absl::GetFlag(FLAGS_worker).empty()) return RunWorkerProcess();
  anerd::daemon::DaemonOptions options;
  options.socket_path = absl::GetFlag(FLAGS_socket);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.log_level = absl::GetFlag(FLAGS_log_level);
  options.log_max_bytes = absl::GetFlag(FLAGS_log_max_bytes);
  options.log_max_files = absl::GetFlag(FLAGS_log_max_files);
  options.engine.backend = absl::GetFlag(FLAGS_backend);
  options.shutdown_grace = absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_grace_ms));
  options.world_accessible_socket_for_test = absl::GetFlag(FLAGS_testonly_world_accessible_socket);
  options.listen = absl::GetFlag(FLAGS_listen);
  options.insecure_loopback = absl::GetFlag(FLAGS_insecure_loopback);
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.auth_tokens = absl::GetFlag(FLAGS_auth_tokens);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.metrics_allow_remote = absl::GetFlag(FLAGS_metrics_allow_remote);
  options.ui_listen = absl::GetFlag(FLAGS_ui_listen);
  options.quotas.kernels = absl::GetFlag(FLAGS_quota_kernels);
  options.quotas.sessions = absl::GetFlag(FLAGS_quota_sessions);
  options.quotas.queued = absl::GetFlag(FLAGS_quota_queued);
  options.quotas.artifacts = absl::GetFlag(FLAGS_quota_artifacts);
  options.quotas.artifact_bytes = absl::GetFlag(FLAGS_quota_artifact_bytes);
  options.max_artifact_bytes = absl::GetFlag(FLAGS_max_artifact_bytes);
  options.engine.kernel_limits.max_mil_bytes = absl::GetFlag(FLAGS_max_mil_bytes);
  options.engine.kernel_limits.max_weight_bytes = absl::GetFlag(FLAGS_max_weight_bytes);
  options.engine.kernel_limits.max_tensor_bytes = absl::GetFlag(FLAGS_max_tensor_bytes);
  options.engine.kernel_limits.max_kernels = absl::GetFlag(FLAGS_max_kernels);
  options.engine.cache_bytes = absl::GetFlag(FLAGS_cache_bytes);
  options.engine.kernel_limits.max_kernel_memory_bytes =
      absl::GetFlag(FLAGS_max_kernel_memory_bytes);
  options.upload_bytes_in_flight = absl::GetFlag(FLAGS_max_upload_bytes_in_flight);
  options.engine.probe_budget.max_bytes = absl::GetFlag(FLAGS_max_probe_bytes);
  options.engine.probe_budget.max_gflop = absl::GetFlag(FLAGS_max_probe_gflop);
  options.engine.compile_budget = absl::GetFlag(FLAGS_compile_budget);
  options.engine.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  options.engine.generation_limits.max_concurrent = absl::GetFlag(FLAGS_max_generations);
  options.engine.generation_limits.max_tokens = absl::GetFlag(FLAGS_max_generate_tokens);
  options.engine.generation_limits.max_context = absl::GetFlag(FLAGS_max_generate_context);
  options.engine.data_roots = absl::GetFlag(FLAGS_data_root);
  options.engine.resume_interrupted = absl::GetFlag(FLAGS_resume_interrupted);
  options.engine.session_memory_limit_bytes = absl::GetFlag(FLAGS_session_memory_limit_bytes);
  options.engine.checkpoint_interval_s = absl::GetFlag(FLAGS_checkpoint_interval_s);
  options.engine.testonly_rank_args = absl::GetFlag(FLAGS_testonly_rank_args);
  options.engine.testonly_rank_args_launches = absl::GetFlag(FLAGS_testonly_rank_args_launches);
  options.engine.sim_settings = absl::GetFlag(FLAGS_testonly_sim);
  anerd::engine::WorkerSettings& workers = options.engine.workers;
  workers.binary = anerd::SelfExecutablePath();
  workers.isolate_ane = absl::GetFlag(FLAGS_isolate_ane);
  workers.isolate_cpu = absl::GetFlag(FLAGS_isolate_cpu);
  workers.heartbeat_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_worker_heartbeat_timeout_ms));
  workers.call_timeout = absl::Seconds(absl::GetFlag(FLAGS_worker_call_timeout_s));
  workers.quarantine_after = absl::GetFlag(FLAGS_quarantine_after);
  workers.test_ops = absl::GetFlag(FLAGS_testonly_ops);
  workers.log_level = options.log_level;
  options.effective_config =
      anerd::daemon::NonDefaultFlags(anerd::daemon::UserFlags("anerd_main.cc"));
  const absl::Status status = anerd::daemon::RunDaemon(options);
  if (!status.ok()) {
    std::fprintf(stderr, "anerd: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
