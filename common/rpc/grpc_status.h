// The one conversion point between absl::Status and grpc::Status. Absl and gRPC share the canonical
// code numbers, so conversion keeps the code; messages are capped so a huge diagnostic list cannot
// blow past gRPC's metadata limits. Thread-safe (pure functions).
#ifndef ANERD_COMMON_RPC_GRPC_STATUS_H_
#define ANERD_COMMON_RPC_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace anerd {

// Longest message sent over the wire; longer ones are cut with a note of how much was dropped.
inline constexpr size_t kMaxStatusMessageBytes = 8 * 1024;

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace anerd

#endif  // ANERD_COMMON_RPC_GRPC_STATUS_H_
