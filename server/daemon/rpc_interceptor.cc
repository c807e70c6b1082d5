#include "server/daemon/rpc_interceptor.h"

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "common/rpc/grpc_status.h"
#include "common/rpc/utf8_errors.h"
#include "grpcpp/server_context.h"
#include "spdlog/spdlog.h"

namespace anerd::daemon {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(grpc::experimental::ServerRpcInfo* info, const RpcObserver* observer)
      : info_(info), observer_(observer), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      // gRPC fails a request it could not parse with a bare UNIMPLEMENTED, on the parsing thread.
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        if (std::optional<std::string> field = TakeUtf8ParseError()) {
          status = ToGrpcStatus(InvalidUtf8Error(*field));
          methods->ModifySendStatus(status);
        }
      }
      Record(status.error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    RpcRecord record;
    record.method = info_->method() != nullptr ? info_->method() : "?";
    record.peer = info_->server_context() != nullptr ? info_->server_context()->peer() : "?";
    record.code = code;
    record.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
            .count();
    spdlog::debug("rpc {} peer={} code={} latency_ms={:.3f}", record.method, record.peer,
                  StatusCodeName(code), record.latency_ms);
    if (*observer_) (*observer_)(record);
  }

  grpc::experimental::ServerRpcInfo* info_;
  const RpcObserver* observer_;
  std::chrono::steady_clock::time_point start_;
};

class RpcInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(RpcObserver observer) : observer_(std::move(observer)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(info, &observer_);
  }

 private:
  const RpcObserver observer_;
};

}  // namespace

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewRpcInterceptorFactory(
    RpcObserver observer) {
  return std::make_unique<RpcInterceptorFactory>(std::move(observer));
}

}  // namespace anerd::daemon
