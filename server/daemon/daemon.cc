#include "server/daemon/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_posix.h"
#include "server/daemon/instance_lock.h"
#include "server/daemon/rpc_interceptor.h"
#include "server/daemon/unix_listener.h"
#include "server/engine/engine.h"
#include "server/service/anerd_service.h"
#include "spdlog/spdlog.h"

namespace anerd::daemon {
namespace {

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
  ANERD_RETURN_IF_ERROR(MakeDirs(paths.state_dir, 0700));
  const std::string log_dir = DefaultLogDir(paths.state_dir);
  ANERD_RETURN_IF_ERROR(MakeDirs(log_dir, 0700));
  paths.log_file = log_dir + "/anerd.log";
  return paths;
}

// Blocks SIGTERM/SIGINT in every thread (threads inherit the mask) so only sigwait sees them.
sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

// Message limits are set deliberately: a request may carry at most one MIL text or one
// evaluation's tensors (weights arrive in chunks); responses carry evaluation outputs.
int MessageLimit(const DaemonOptions& options) {
  const int64_t largest = std::max<int64_t>(options.kernel_limits.max_tensor_bytes,
                                            options.kernel_limits.max_mil_bytes);
  return static_cast<int>(std::min<int64_t>(largest + kMessageSlackBytes, INT32_MAX));
}

std::unique_ptr<grpc::Server> BuildServer(const DaemonOptions& options,
                                          service::AnerdService* service) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(MessageLimit(options));
  builder.SetMaxSendMessageSize(INT32_MAX);
  builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(NewRpcInterceptorFactory(RpcObserver()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  if (!options.listen.empty()) {
    builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials());
  }
  return builder.BuildAndStart();
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

void SetServing(grpc::Server* server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(serving);
}

}  // namespace

absl::Status CheckListenAddress(const std::string& listen, bool insecure_loopback) {
  if (listen.empty()) return absl::OkStatus();
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError("--listen wants HOST:PORT, got '" + listen + "'");
  }
  if (!IsLoopbackHost(absl::string_view(listen).substr(0, colon))) {
    return absl::InvalidArgumentError(
        "--listen " + listen +
        " is not a loopback address: listening beyond this machine needs TLS and bearer tokens, "
        "which this build does not offer yet; use 127.0.0.1:PORT with --insecure_loopback");
  }
  if (!insecure_loopback) {
    return absl::InvalidArgumentError("--listen " + listen +
                                      " serves plain TCP; pass --insecure_loopback to allow it");
  }
  return absl::OkStatus();
}

absl::Status RunDaemon(const DaemonOptions& options) {
  ANERD_RETURN_IF_ERROR(CheckListenAddress(options.listen, options.insecure_loopback));
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

  engine::EngineOptions engine_options;
  engine_options.state_dir = paths.state_dir;
  engine_options.socket_path = paths.socket_path;
  engine_options.backend = options.backend;
  engine_options.kernel_limits = options.kernel_limits;
  engine_options.cache_bytes = options.cache_bytes;
  engine_options.compile_budget = options.compile_budget;
  engine_options.max_sessions = options.max_sessions;
  engine_options.data_roots = options.data_roots;
  engine_options.resume_interrupted = options.resume_interrupted;
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> engine,
                         engine::Engine::Create(engine_options));
  service::AnerdService service(engine.get());
  std::unique_ptr<grpc::Server> server = BuildServer(options, &service);
  if (server == nullptr) {
    return absl::UnavailableError(absl::StrCat("gRPC server failed to start",
                                               options.listen.empty() ? "" : " (is --listen ",
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
  (*listener)->Start([raw_server](int fd) { grpc::AddInsecureChannelFromFd(raw_server, fd); });
  SetServing(raw_server, true);
  spdlog::info("serving on unix:{}{}", paths.socket_path,
               options.listen.empty() ? "" : " and tcp " + options.listen);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, shutting down", strsignal(signal_number));

  (*listener)->Stop();
  SetServing(raw_server, false);
  server->Shutdown(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(options.shutdown_grace));
  server->Wait();
  engine->Shutdown();
  engine.reset();
  lock.reset();
  spdlog::info("anerd stopped cleanly");
  ShutdownLogging();
  return absl::OkStatus();
}

}  // namespace anerd::daemon
