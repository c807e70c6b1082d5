// Daemon: the anerd process's lifetime. Run() takes the instance lock, starts logging to the state
// dir, creates the engine, serves gRPC on the Unix socket (peer uid checked), waits for SIGTERM or
// SIGINT and shuts down in order: stop accepting → health NOT_SERVING → stop the gRPC server
// (in-flight RPCs get a grace period, then are cancelled) → engine shutdown (drain/cancel work,
// checkpoint sessions, join executors, close devices) → release the lock → flush logs.
#ifndef ANERD_SERVER_DAEMON_DAEMON_H_
#define ANERD_SERVER_DAEMON_DAEMON_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/service/client_quotas.h"

namespace anerd::daemon {

// Exit code when a shutdown outlived shutdown_grace + shutdown_margin and was cut short.
inline constexpr int kForcedShutdownExitCode = 2;

struct DaemonOptions {
  std::string socket_path;  // empty = platform default (common/paths.h)
  std::string state_dir;    // empty = platform default
  std::string log_level = "info";
  // Rotating file log <state>/logs/anerd.log: rotate at this size, keep this many old files.
  size_t log_max_bytes = 10 * 1024 * 1024;
  size_t log_max_files = 5;
  // After SIGTERM/SIGINT in-flight RPCs get `shutdown_grace`; then running work is cancelled and
  // the engine shuts down. If that has not finished within shutdown_grace + shutdown_margin the
  // process exits anyway (exit code 2; sessions resume from their last atomic checkpoint).
  absl::Duration shutdown_grace = absl::Seconds(5);
  absl::Duration shutdown_margin = absl::Seconds(5);
  bool world_accessible_socket_for_test = false;
  // The flags that differ from their defaults (name, value), reported by GetInfo to local and
  // admin callers (daemon_flags.h NonDefaultFlags).
  std::vector<std::pair<std::string, std::string>> effective_config;
  // Optional TCP listener "HOST:PORT". It always needs auth_tokens; plain TCP is allowed only on
  // loopback and only with insecure_loopback set; anything else is refused at start.
  std::string listen;
  bool insecure_loopback = false;
  // TLS for `listen` (PEM files); with tls_client_ca, clients must present a certificate it signed.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Bearer tokens checked on every RPC on `listen` (see server/daemon/auth.h); required whenever
  // `listen` is set. Non-loopback listening also needs TLS. Admin tokens also open the metrics
  // endpoint.
  std::string auth_tokens;
  // Optional Prometheus endpoint "HOST:PORT" (server/metrics/metrics.h); loopback only unless
  // metrics_allow_remote (which needs auth_tokens). Scrapes need an admin token, except from the
  // daemon's own uid on loopback.
  std::string metrics_listen;
  bool metrics_allow_remote = false;
  // Optional dashboard "HOST:PORT" (server/ui/ui_server.h). Loopback: open to the daemon's own
  // uid, else an admin token; any other address needs TLS and --auth-tokens exactly as `listen`
  // (CheckUiOptions), and then every request an admin token.
  std::string ui_listen;
  // Per-client limits (server/service/client_quotas.h); 0 = unlimited.
  service::QuotaLimits quotas;
  // Most weight bytes all unfinished CompileKernel uploads may declare at once; 0 = unlimited.
  uint64_t upload_bytes_in_flight = uint64_t{4} << 30;
  // Largest artifact one UploadArtifact may declare (bytes).
  uint64_t max_artifact_bytes = uint64_t{8} << 30;
  // Backend choice, limits, cache and sessions; state_dir and socket_path are filled in by the
  // daemon once it has resolved them.
  engine::EngineOptions engine;
};

// OK when the TCP listener options are consistent: any `listen` needs --auth-tokens; a loopback
// address also needs TLS or insecure_loopback; any other address needs --tls-cert and --tls-key.
// Otherwise INVALID_ARGUMENT naming every missing flag (with how to make a token file).
absl::Status CheckRemoteOptions(const DaemonOptions& options);

// OK when `ui_listen` is empty, or a loopback HOST:PORT, or any HOST:PORT with what
// CheckRemoteOptions demands of a non-loopback --listen (TLS and bearer tokens); otherwise
// INVALID_ARGUMENT naming --ui-listen and every missing flag.
absl::Status CheckUiOptions(const DaemonOptions& options);

// Runs until a termination signal; returns OK after a clean shutdown, or the start-up error.
// Must be called from the main thread before any other thread is created (it blocks the
// termination signals process-wide and waits for them on a dedicated thread).
absl::Status RunDaemon(const DaemonOptions& options);

}  // namespace anerd::daemon

#endif  // ANERD_SERVER_DAEMON_DAEMON_H_
