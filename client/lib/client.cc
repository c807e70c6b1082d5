#include "client/lib/client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace anerd::client {

// Matches the daemon's send limit so large outputs arrive.
constexpr int kMaxReceiveBytes = 256 << 20;

AnerdClient::AnerdClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Anerd::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

std::unique_ptr<AnerdClient> AnerdClient::Create(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  args.SetMaxSendMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(options.endpoint.GrpcTarget(),
                                           grpc::InsecureChannelCredentials(), args);
  return std::unique_ptr<AnerdClient>(new AnerdClient(options, std::move(channel)));
}

std::unique_ptr<grpc::ClientContext> AnerdClient::NewContext(absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  const absl::Duration t = timeout == absl::ZeroDuration() ? options_.timeout : timeout;
  if (t != absl::InfiniteDuration()) {
    context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(t));
  }
  return context;
}

absl::StatusOr<v1::GetInfoResponse> AnerdClient::GetInfo() {
  v1::GetInfoResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(stub_->GetInfo(context.get(), {}, &response));
  if (!status.ok()) return DescribeCallError(status, options_.endpoint);
  return response;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> AnerdClient::Health() {
  grpc::health::v1::HealthCheckResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(health_->Check(context.get(), {}, &response));
  if (!status.ok()) return DescribeCallError(status, options_.endpoint);
  return response.status();
}

absl::Status DescribeCallError(const absl::Status& status, const Endpoint& endpoint) {
  if (status.code() != absl::StatusCode::kUnavailable &&
      status.code() != absl::StatusCode::kDeadlineExceeded) {
    return status;
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot reach anerd at ", endpoint.GrpcTarget(), " (", status.message(),
      "). Start it with `anerd` (or `anectl service start`), or point --host / ANERD_HOST at a "
      "running daemon."));
}

}  // namespace anerd::client
