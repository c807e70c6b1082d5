#include <string>

#include "common/rpc/grpc_status.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"

namespace anerd {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  ANERD_ASSIGN_OR_RETURN(int half, Half(x));
  ANERD_ASSIGN_OR_RETURN(half, Half(half));
  return half;
}

absl::Status CheckEven(int x) {
  ANERD_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).message(), "odd");
}

TEST(GrpcStatusTest, KeepsCodeAndMessage) {
  grpc::Status g = ToGrpcStatus(absl::ResourceExhaustedError("budget spent"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(g.error_message(), "budget spent");
  absl::Status back = FromGrpcStatus(g);
  EXPECT_EQ(back.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(GrpcStatusTest, CapsHugeMessages) {
  grpc::Status g = ToGrpcStatus(absl::InvalidArgumentError(std::string(100000, 'x')));
  EXPECT_LT(g.error_message().size(), kMaxStatusMessageBytes + 64);
  EXPECT_NE(g.error_message().find("more bytes"), std::string::npos);
}

}  // namespace
}  // namespace anerd
