#include "server/service/anerd_service.h"

#include "server/service/convert.h"
#include "spdlog/spdlog.h"

namespace anerd::service {

grpc::ServerUnaryReactor* AnerdService::GetInfo(grpc::CallbackServerContext* context,
                                                const v1::GetInfoRequest* /*request*/,
                                                v1::GetInfoResponse* response) {
  spdlog::debug("rpc GetInfo from {}", context->peer());
  ToProto(engine_->Info(), response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace anerd::service
