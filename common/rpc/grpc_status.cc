#include "common/rpc/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace anerd {
namespace {

std::string Cap(std::string message) {
  if (message.size() <= kMaxStatusMessageBytes) return message;
  const size_t dropped = message.size() - kMaxStatusMessageBytes;
  message.resize(kMaxStatusMessageBytes);
  absl::StrAppend(&message, "... (", dropped, " more bytes)");
  return message;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      Cap(std::string(status.message())));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace anerd
