// The anerd.v1.Anerd gRPC service (callback API). Each handler parses its request into native
// types, calls the engine, converts the status once (common/rpc/grpc_status.h) and finishes.
// Handlers never block on long work: the engine queues it and completes the reactor later.
//
// Thread-safety: gRPC calls handlers concurrently; the service holds no state besides the engine
// pointer, which must outlive the service.
#ifndef ANERD_SERVER_SERVICE_ANERD_SERVICE_H_
#define ANERD_SERVER_SERVICE_ANERD_SERVICE_H_

#include "anerd/v1/anerd.grpc.pb.h"
#include "server/engine/engine.h"

namespace anerd::service {

class AnerdService final : public v1::Anerd::CallbackService {
 public:
  explicit AnerdService(engine::Engine* engine) : engine_(engine) {}

  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context,
                                    const v1::GetInfoRequest* request,
                                    v1::GetInfoResponse* response) override;

 private:
  engine::Engine* engine_;  // not owned
};

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_ANERD_SERVICE_H_
