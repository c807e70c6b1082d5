#include "server/daemon/daemon.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_modes.h"
#include "common/logging.h"
#include "common/paths.h"
#include "common/rpc/utf8_errors.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_posix.h"
#include "server/daemon/auth.h"
#include "server/daemon/instance_lock.h"
#include "server/daemon/rpc_interceptor.h"
#include "server/daemon/unix_listener.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"
#include "server/metrics/peer_uid.h"
#include "server/service/anerd_service.h"
#include "server/ui/ui_server.h"
#include "spdlog/spdlog.h"

namespace anerd::daemon {
namespace {

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

// Headroom over the largest payload field for the rest of a message.
constexpr int64_t kMessageSlackBytes = 1 << 20;

struct ResolvedPaths {
  std::string state_dir;
  std::string socket_path;
  std::string log_file;
};

absl::StatusOr<ResolvedPaths> ResolvePaths(const DaemonOptions& options) {
  ResolvedPaths paths;
  paths.state_dir = options.state_dir.empty() ? DefaultStateDir() : options.state_dir;
  paths.socket_path = options.socket_path.empty() ? DefaultSocketPath() : options.socket_path;
  RestrictUmask();  // everything created from here on is owner-only, whatever umask we inherited
  ANERD_RETURN_IF_ERROR(MakeDirs(paths.state_dir, 0700));
  const std::string log_dir = DefaultLogDir(paths.state_dir);
  ANERD_RETURN_IF_ERROR(MakeDirs(log_dir, 0700));
  paths.log_file = log_dir + "/anerd.log";
  return paths;
}

// The thread that sigwaits for SIGTERM/SIGINT (set once, before any handler can run).
pthread_t g_signal_thread;

// Runs only on threads that did not inherit the blocked mask — OpenBLAS starts its pool from a
// library constructor, before main — and hands the signal to the sigwait-ing thread, where it
// stays pending until sigwait takes it. pthread_kill is a bare tgkill here (async-signal-safe).
void ForwardTerminationSignal(int sig) { pthread_kill(g_signal_thread, sig); }

// Blocks SIGTERM/SIGINT in this thread and every thread it creates, so only sigwait sees them;
// threads that already existed forward them (above) instead of dying by the default action.
sigset_t BlockTerminationSignals() {
  g_signal_thread = pthread_self();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  struct sigaction forward {};
  forward.sa_handler = ForwardTerminationSignal;
  sigemptyset(&forward.sa_mask);
  forward.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &forward, nullptr);
  sigaction(SIGINT, &forward, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

// Message limits are set deliberately: a request may carry at most one MIL text or one
// evaluation's tensors (weights arrive in chunks); responses carry evaluation outputs.
int MessageLimit(const DaemonOptions& options) {
  const int64_t largest = std::max<int64_t>(options.engine.kernel_limits.max_tensor_bytes,
                                            options.engine.kernel_limits.max_mil_bytes);
  return static_cast<int>(std::min<int64_t>(largest + kMessageSlackBytes, INT32_MAX));
}

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", flag, " ", path));
  }
  return text.str();
}

// Credentials for the TCP port: TLS (optionally mutual) or plain loopback, always with the bearer
// tokens in `tokens` checked on every call.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TcpCredentials(
    const DaemonOptions& options, std::vector<NamedToken> tokens) {
  // Plain loopback TCP: insecure credentials cannot carry an auth processor, local credentials can
  // (no bytes are exchanged in their handshake, so plain clients connect as before; they accept
  // loopback peers only).
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::LocalServerCredentials(LOCAL_TCP);
  if (!options.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    ANERD_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("--tls-cert", options.tls_cert));
    ANERD_ASSIGN_OR_RETURN(pair.private_key, ReadPem("--tls-key", options.tls_key));
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    if (!options.tls_client_ca.empty()) {
      ANERD_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("--tls-client-ca", options.tls_client_ca));
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  }
  spdlog::info("{} bearer token(s) loaded for {}", tokens.size(), options.listen);
  credentials->SetAuthMetadataProcessor(NewTokenAuthProcessor(std::move(tokens)));
  return credentials;
}

// Starts the metrics endpoint when asked and connects the engine's kernel observer to it.
absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> StartMetrics(const DaemonOptions& options,
                                                                     engine::Engine* engine) {
  if (options.metrics_listen.empty()) return nullptr;
  metrics::MetricsAccess access;
  access.daemon_uid = ::geteuid();
  if (!options.auth_tokens.empty()) {
    ANERD_ASSIGN_OR_RETURN(std::vector<NamedToken> tokens, LoadTokenFile(options.auth_tokens));
    auto names = std::make_shared<const TokenNames>(std::move(tokens));
    access.token_is_admin = [names](absl::string_view authorization) -> std::optional<bool> {
      std::optional<NamedToken> token = names->Find(authorization);
      if (!token.has_value()) return std::nullopt;
      return token->admin;
    };
  }
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<metrics::MetricsServer> server,
      metrics::MetricsServer::Start(options.metrics_listen, options.metrics_allow_remote, engine,
                                    std::move(access)));
  metrics::MetricsServer* raw = server.get();
  engine::KernelObserver observer;
  observer.compiled = [raw](const std::string& backend, double ms) {
    raw->ObserveCompile(backend, ms);
  };
  observer.evaluated = [raw](const std::string& backend, double ms) {
    raw->ObserveEval(backend, ms);
  };
  engine->kernels().SetObserver(std::move(observer));
  spdlog::info("metrics on http://{}/metrics (port {})", options.metrics_listen, server->port());
  return server;
}

// Who may open the dashboard: an admin token (header, or ?token= for the page's event stream), or
// on loopback the daemon's own uid (looked up as for metrics scrapes, metrics/peer_uid.h).
ui::UiVerdict AuthorizeUi(const std::shared_ptr<const TokenNames>& names, bool loopback,
                          const ui::UiRequest& request) {
  if (!request.authorization.empty()) {
    std::optional<NamedToken> token;
    if (names != nullptr) token = names->Find(request.authorization);
    if (!token.has_value()) return {401, "bearer token not accepted"};
    if (!token->admin) {
      return {403, "the dashboard shows every client's sessions: it needs an admin token"};
    }
    return {};
  }
  if (loopback) {
    std::optional<uint32_t> uid = metrics::LoopbackPeerUid(request.remote_addr, request.remote_port,
                                                           request.local_addr, request.local_port);
    if (uid.has_value() && *uid == ::geteuid()) return {};
  }
  return {401,
          "open the page as http(s)://HOST:PORT/?token=TOKEN with an admin token from anerd's "
          "--auth-tokens file (only the daemon's own user may open it on loopback without one)"};
}

// Starts the dashboard when asked (CheckUiOptions has vetted the address) and exports its dropped
// frames through the metrics endpoint when there is one.
absl::StatusOr<std::unique_ptr<ui::UiServer>> StartUi(const DaemonOptions& options,
                                                      engine::Engine* engine,
                                                      metrics::MetricsServer* metrics) {
  if (options.ui_listen.empty()) return nullptr;
  std::shared_ptr<const TokenNames> names;
  if (!options.auth_tokens.empty()) {
    ANERD_ASSIGN_OR_RETURN(std::vector<NamedToken> tokens, LoadTokenFile(options.auth_tokens));
    names = std::make_shared<const TokenNames>(std::move(tokens));
  }
  const bool loopback =
      IsLoopbackHost(absl::string_view(options.ui_listen).substr(0, options.ui_listen.rfind(':')));
  ui::UiServerOptions ui_options;
  ui_options.listen = options.ui_listen;
  ui_options.tls_cert = options.tls_cert;
  ui_options.tls_key = options.tls_key;
  ui_options.tls_client_ca = options.tls_client_ca;
  ui_options.authorize = [names, loopback](const ui::UiRequest& request) {
    return AuthorizeUi(names, loopback, request);
  };
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<ui::UiServer> server,
                         ui::UiServer::Start(engine, std::move(ui_options)));
  if (metrics != nullptr) {
    std::shared_ptr<const std::atomic<uint64_t>> dropped = server->dropped_counter();
    metrics->AddCounterSource("anerd_ui_frames_dropped_total",
                              "Dashboard frames dropped because a page read too slowly",
                              [dropped] { return static_cast<double>(dropped->load()); });
  }
  spdlog::info("dashboard on {}://{} (port {})", options.tls_cert.empty() ? "http" : "https",
               options.ui_listen, server->port());
  return server;
}

RpcObserver ObserverFor(metrics::MetricsServer* metrics) {
  if (metrics == nullptr) return RpcObserver();
  return [metrics](const RpcRecord& record) {
    metrics->ObserveRpc(record.method, StatusCodeName(record.code), record.latency_ms);
  };
}

std::unique_ptr<grpc::Server> BuildServer(const DaemonOptions& options,
                                          std::shared_ptr<grpc::ServerCredentials> tcp,
                                          service::AnerdService* service,
                                          metrics::MetricsServer* metrics) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(MessageLimit(options));
  builder.SetMaxSendMessageSize(INT32_MAX);
  builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(NewRpcInterceptorFactory(ObserverFor(metrics)));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  if (!options.listen.empty()) {
    builder.AddListeningPort(options.listen, std::move(tcp));
  }
  return builder.BuildAndStart();
}

// The TLS and token flags only make sense with --listen, and the TLS files come in pairs.
absl::Status CheckTlsFlagPairs(const DaemonOptions& options) {
  const bool tls = !options.tls_cert.empty();
  if (options.metrics_allow_remote && options.auth_tokens.empty()) {
    return absl::InvalidArgumentError(
        "--metrics-allow-remote needs --auth-tokens FILE: beyond loopback every scrape must "
        "carry an admin token (anectl token create NAME --admin --file FILE)");
  }
  if (options.listen.empty() && options.ui_listen.empty()) {
    if (tls || !options.tls_key.empty() ||
        (!options.auth_tokens.empty() && options.metrics_listen.empty())) {
      return absl::InvalidArgumentError(
          "--tls-cert, --tls-key and --auth-tokens apply to a TCP listener: pass --listen "
          "HOST:PORT or --ui-listen HOST:PORT (--auth-tokens also serves --metrics-listen)");
    }
    return absl::OkStatus();
  }
  if (tls && options.tls_key.empty())
    return absl::InvalidArgumentError("--tls-cert needs --tls-key");
  if (!tls && !options.tls_key.empty())
    return absl::InvalidArgumentError("--tls-key needs --tls-cert");
  if (!tls && !options.tls_client_ca.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  return absl::OkStatus();
}

// The one rule for a TCP listener (`flag` names it; `address` is its HOST:PORT): beyond loopback
// it needs TLS (--tls-cert, --tls-key) and bearer tokens (--auth-tokens); on loopback the gRPC
// port also needs tokens and TLS or --insecure-loopback, while the dashboard (whose loopback
// pages are limited to the daemon's uid or an admin token) needs neither.
absl::Status CheckTcpExposure(absl::string_view flag, const std::string& address,
                              const DaemonOptions& options, bool loopback_needs_tokens) {
  const bool tls = !options.tls_cert.empty();
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " wants HOST:PORT, got '", address, "'"));
  }
  const bool loopback = IsLoopbackHost(absl::string_view(address).substr(0, colon));
  if (loopback && !loopback_needs_tokens) return absl::OkStatus();
  std::vector<std::string> missing;
  if (!tls && !loopback) missing.push_back("--tls-cert (with --tls-key)");
  if (!tls && loopback && !options.insecure_loopback) {
    missing.push_back("--insecure-loopback (plain TCP; or --tls-cert and --tls-key for TLS)");
  }
  if (options.auth_tokens.empty()) {
    missing.push_back(
        "--auth-tokens FILE (every RPC on a TCP port must carry a bearer token; create one with "
        "`anectl token create NAME --file FILE` and give the client --token-file FILE)");
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      flag, " ", address,
      loopback ? ":"
               : " is not a loopback address: listening beyond this machine needs TLS and "
                 "bearer tokens;",
      " missing ", absl::StrJoin(missing, " and ")));
}

// The hard deadline of a shutdown: work that ignores cancellation (a hung worker call, a step
// that cannot be interrupted) must not keep the daemon alive past grace + margin after the signal.
// Checkpoints are atomic, so exiting mid-work never leaves a torn session behind.
void ArmShutdownDeadline(absl::Duration grace, absl::Duration margin) {
  std::thread([grace, margin] {
    absl::SleepFor(grace + margin);
    if (spdlog::logger* log = spdlog::default_logger_raw(); log != nullptr) {
      log->error(
          "shutdown did not finish within --shutdown-grace-ms={} plus {} ms; exiting without "
          "waiting for the work still running",
          absl::ToInt64Milliseconds(grace), absl::ToInt64Milliseconds(margin));
      log->flush();
    }
    _exit(kForcedShutdownExitCode);
  }).detach();
}

void SetServing(grpc::Server* server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(serving);
}

}  // namespace

absl::Status CheckRemoteOptions(const DaemonOptions& options) {
  ANERD_RETURN_IF_ERROR(CheckTlsFlagPairs(options));
  if (options.listen.empty()) return absl::OkStatus();
  return CheckTcpExposure("--listen", options.listen, options, /*loopback_needs_tokens=*/true);
}

absl::Status CheckUiOptions(const DaemonOptions& options) {
  if (options.ui_listen.empty()) return absl::OkStatus();
  return CheckTcpExposure("--ui-listen", options.ui_listen, options,
                          /*loopback_needs_tokens=*/false);
}

absl::Status RunDaemon(const DaemonOptions& options) {
  ANERD_RETURN_IF_ERROR(CheckRemoteOptions(options));
  ANERD_RETURN_IF_ERROR(CheckUiOptions(options));
  if (!options.metrics_listen.empty()) {
    ANERD_RETURN_IF_ERROR(
        metrics::CheckMetricsAddress(options.metrics_listen, options.metrics_allow_remote));
  }
  CaptureUtf8ParseErrors();  // before gRPC threads start (common/rpc/utf8_errors.h)
  const sigset_t signals = BlockTerminationSignals();
  ANERD_ASSIGN_OR_RETURN(ResolvedPaths paths, ResolvePaths(options));
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<InstanceLock> lock,
                         InstanceLock::Acquire(paths.state_dir, paths.socket_path));
  LoggingOptions logging{.level = options.log_level,
                         .file_path = paths.log_file,
                         .max_file_bytes = options.log_max_bytes,
                         .max_files = options.log_max_files};
  ANERD_RETURN_IF_ERROR(InitLogging(logging));
  spdlog::info("anerd {} starting (pid {}), state dir {}", kVersion, getpid(), paths.state_dir);
  // Files older versions created 0644 (the database, logs, event logs) become owner-only.
  if (const int64_t n = TightenTree(paths.state_dir); n > 0) {
    spdlog::info("state dir: removed group/other permissions from {} files and directories", n);
  }

  engine::EngineOptions engine_options = options.engine;
  engine_options.state_dir = paths.state_dir;
  engine_options.socket_path = paths.socket_path;
  engine_options.secret_paths = {options.auth_tokens, options.tls_key};
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> engine,
                         engine::Engine::Create(engine_options));
  // Declared after the engine so it is destroyed first: scrapes and observers use the engine.
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<metrics::MetricsServer> metrics,
                         StartMetrics(options, engine.get()));
  // After the metrics (its counter is exported there), before the service; stopped first.
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<ui::UiServer> ui,
                         StartUi(options, engine.get(), metrics.get()));
  PeerUids peer_uids;
  service::ServiceOptions service_options;
  service_options.quotas = options.quotas;
  service_options.upload_dir = paths.state_dir + "/uploads";
  service_options.upload_bytes_in_flight = options.upload_bytes_in_flight;
  service_options.effective_config = options.effective_config;
  service_options.max_artifact_bytes = options.max_artifact_bytes;
  service_options.peer_uid = [&peer_uids](const std::string& peer) {
    return peer_uids.Lookup(peer);
  };
  std::shared_ptr<grpc::ServerCredentials> tcp;
  if (!options.listen.empty()) {  // CheckRemoteOptions made sure tokens are configured
    ANERD_ASSIGN_OR_RETURN(std::vector<NamedToken> tokens, LoadTokenFile(options.auth_tokens));
    auto names = std::make_shared<const TokenNames>(tokens);
    service_options.token =
        [names](absl::string_view authorization) -> std::optional<service::TokenIdentity> {
      std::optional<NamedToken> token = names->Find(authorization);
      if (!token.has_value()) return std::nullopt;
      return service::TokenIdentity{token->name, token->admin};
    };
    ANERD_ASSIGN_OR_RETURN(tcp, TcpCredentials(options, std::move(tokens)));
  }
  service::AnerdService service(engine.get(), std::move(service_options));
  std::unique_ptr<grpc::Server> server =
      BuildServer(options, std::move(tcp), &service, metrics.get());
  if (server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("gRPC server failed to start", options.listen.empty() ? "" : " (is --listen ",
                     options.listen, options.listen.empty() ? "" : " in use?)"));
  }

  UnixListenerOptions listen_options{paths.socket_path, getuid(),
                                     options.world_accessible_socket_for_test};
  absl::StatusOr<std::unique_ptr<UnixListener>> listener = UnixListener::Bind(listen_options);
  if (!listener.ok()) {
    server->Shutdown();
    return listener.status();
  }
  grpc::Server* raw_server = server.get();
  (*listener)->Start([raw_server, &peer_uids](int fd, uid_t uid) {
    peer_uids.Record(fd, uid);
    grpc::AddInsecureChannelFromFd(raw_server, fd);
  });
  SetServing(raw_server, true);
  spdlog::info("serving on unix:{}{}{}", paths.socket_path,
               options.listen.empty() ? "" : " and tcp " + options.listen,
               options.listen.empty()      ? ""
               : !options.tls_cert.empty() ? " (TLS, bearer tokens)"
                                           : " (plain text, loopback, bearer tokens)");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, shutting down", strsignal(signal_number));
  ArmShutdownDeadline(options.shutdown_grace, options.shutdown_margin);

  (*listener)->Stop();
  if (ui != nullptr) ui->Stop();  // pages stop reading the engine before it winds down
  SetServing(raw_server, false);
  server->Shutdown(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(options.shutdown_grace));
  server->Wait();
  engine->Shutdown();
  ui.reset();
  metrics.reset();  // executors are joined: no observer calls remain
  engine.reset();
  lock.reset();
  spdlog::info("anerd stopped cleanly");
  ShutdownLogging();
  return absl::OkStatus();
}

}  // namespace anerd::daemon
