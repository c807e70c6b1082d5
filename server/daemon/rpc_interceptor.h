// RPC observation in one place: a gRPC server interceptor that, for every RPC on every port, logs
// one debug line (method, peer, status code, latency) and hands the same record to an optional
// observer (the metrics registry). Request/response contents and metadata (so bearer tokens) are
// never looked at or logged.
#ifndef ANERD_SERVER_DAEMON_RPC_INTERCEPTOR_H_
#define ANERD_SERVER_DAEMON_RPC_INTERCEPTOR_H_

#include <functional>
#include <memory>
#include <string>

#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"

namespace anerd::daemon {

struct RpcRecord {
  std::string method;  // "/anerd.v1.Anerd/GetInfo"
  std::string peer;    // "ipv4:127.0.0.1:5555"; Unix-socket connections are "fd:N"
  grpc::StatusCode code = grpc::StatusCode::OK;
  double latency_ms = 0;  // from the interceptor's creation (call start) to the status being sent
};

// Called once per finished RPC, from gRPC threads; must be thread-safe and quick.
using RpcObserver = std::function<void(const RpcRecord&)>;

// "OK", "UNAUTHENTICATED", ... for a gRPC status code.
const char* StatusCodeName(grpc::StatusCode code);

// A factory to pass to ServerBuilder::experimental().SetInterceptorCreators. `observer` may be
// empty.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewRpcInterceptorFactory(
    RpcObserver observer);

}  // namespace anerd::daemon

#endif  // ANERD_SERVER_DAEMON_RPC_INTERCEPTOR_H_
