// The in-process server the service benchmarks measure against: an Engine on a fresh state dir,
// the Anerd service and the reference Echo service (echo.proto: a unary Echo and a client-stream
// Sink that only counts bytes) on one gRPC server over a Unix socket in a temporary directory,
// with an AnerdClient and an Echo stub connected to it. Same process, same gRPC stack: a ratio
// against the reference measures the service, not the transport.
// Thread-safety: not thread-safe; one benchmark thread drives it.
#ifndef ANERD_BENCH_BENCH_SERVER_H_
#define ANERD_BENCH_BENCH_SERVER_H_

#include <memory>
#include <string>

#include "bench/echo.grpc.pb.h"
#include "client/lib/client.h"
#include "grpcpp/grpcpp.h"
#include "server/engine/engine.h"
#include "server/service/anerd_service.h"

namespace anerd::bench {

class BenchServer {
 public:
  // Creates /tmp/<name>-<pid> and starts everything in it; nullptr (having printed why to stderr)
  // when the engine cannot start.
  static std::unique_ptr<BenchServer> Start(const std::string& name);
  // Shuts the server and the engine down and removes the directory.
  ~BenchServer();
  BenchServer(const BenchServer&) = delete;
  BenchServer& operator=(const BenchServer&) = delete;

  client::AnerdClient& client() { return *client_; }
  Echo::Stub& echo() { return *echo_; }
  engine::Engine& engine() { return *engine_; }
  const std::string& dir() const { return dir_; }

 private:
  explicit BenchServer(std::string dir) : dir_(std::move(dir)) {}

  const std::string dir_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<service::AnerdService> anerd_service_;
  std::unique_ptr<Echo::CallbackService> echo_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<client::AnerdClient> client_;
  std::unique_ptr<Echo::Stub> echo_;
};

// Serves only the reference Echo service on `target` ("unix:/path") and never returns: for a
// child process, so the reference runs in a process of its own as the daemon does
// (daemon_rpc_bench). With `noop_interceptor`, a server interceptor that only proceeds is
// installed, as anerd installs its RPC observer: what gRPC's interceptor path costs by itself.
// Exits the process with status 1 when it cannot listen.
[[noreturn]] void ServeEchoForever(const std::string& target, bool noop_interceptor = false);

// Serves, on `target`, an Anerd service whose only method is an EvalKernel that answers at once
// with the request's tensors as its outputs and an EvalTiming filled as the daemon fills it: the
// daemon's message shapes and client path with none of its work (no interceptor, quota, lookup
// or program). Never returns; for a child process, as ServeEchoForever.
[[noreturn]] void ServeShapedEvalForever(const std::string& target);

}  // namespace anerd::bench

#endif  // ANERD_BENCH_BENCH_SERVER_H_
