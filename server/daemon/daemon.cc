#include "server/daemon/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>

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
#include "server/daemon/unix_listener.h"
#include "server/engine/engine.h"
#include "server/service/anerd_service.h"
#include "spdlog/spdlog.h"

namespace anerd::daemon {
namespace {

// Largest message the daemon accepts; bigger payloads (weights) are streamed in chunks.
constexpr int kMaxReceiveBytes = 64 << 20;
constexpr int kMaxSendBytes = 256 << 20;

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

std::unique_ptr<grpc::Server> BuildServer(service::AnerdService* service) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  builder.SetMaxSendMessageSize(kMaxSendBytes);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

void SetServing(grpc::Server* server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(serving);
}

}  // namespace

absl::Status RunDaemon(const DaemonOptions& options) {
  const sigset_t signals = BlockTerminationSignals();
  ANERD_ASSIGN_OR_RETURN(ResolvedPaths paths, ResolvePaths(options));
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<InstanceLock> lock,
                         InstanceLock::Acquire(paths.state_dir, paths.socket_path));
  LoggingOptions logging{.level = options.log_level, .file_path = paths.log_file};
  ANERD_RETURN_IF_ERROR(InitLogging(logging));
  spdlog::info("anerd {} starting (pid {}), state dir {}", kVersion, getpid(), paths.state_dir);

  engine::EngineOptions engine_options{paths.state_dir, paths.socket_path, options.backend};
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> engine,
                         engine::Engine::Create(engine_options));
  service::AnerdService service(engine.get());
  std::unique_ptr<grpc::Server> server = BuildServer(&service);
  if (server == nullptr) return absl::InternalError("gRPC server failed to start");

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
  spdlog::info("serving on unix:{}", paths.socket_path);

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
