// Conversion between anerd.v1 protos and the engine's native types. The only file that sees both.
#ifndef ANERD_SERVER_SERVICE_CONVERT_H_
#define ANERD_SERVER_SERVICE_CONVERT_H_

#include "anerd/v1/anerd.pb.h"
#include "server/engine/engine.h"

namespace anerd::service {

void ToProto(const engine::DaemonInfo& info, v1::GetInfoResponse* out);

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_CONVERT_H_
