#include "client/lib/client.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  const bool tls = !options.tls_root_pem.empty() || !options.tls_cert_pem.empty();
  if (tls && !options.endpoint.is_unix) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_pem;
    ssl.pem_cert_chain = options.tls_cert_pem;
    ssl.pem_private_key = options.tls_key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  auto channel = grpc::CreateCustomChannel(options.endpoint.GrpcTarget(), credentials, args);
  return std::unique_ptr<AnerdClient>(new AnerdClient(options, std::move(channel)));
}

std::unique_ptr<grpc::ClientContext> AnerdClient::NewContext(absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  const absl::Duration t = timeout == absl::ZeroDuration() ? options_.timeout : timeout;
  if (t != absl::InfiniteDuration()) {
    context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(t));
  }
  if (!options_.bearer_token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.bearer_token);
  }
  return context;
}

absl::StatusOr<v1::GetInfoResponse> AnerdClient::GetInfo() {
  v1::GetInfoResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(stub_->GetInfo(context.get(), {}, &response));
  if (!status.ok()) return DescribeCallError(status, options_);
  return response;
}

absl::StatusOr<v1::ProbeAneRulesResponse> AnerdClient::ProbeAneRules(const std::string& backend) {
  v1::ProbeAneRulesRequest request;
  request.set_backend(backend);
  v1::ProbeAneRulesResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(stub_->ProbeAneRules(context.get(), request, &response));
  if (!status.ok()) return DescribeCallError(status, options_);
  return response;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> AnerdClient::Health() {
  grpc::health::v1::HealthCheckResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(health_->Check(context.get(), {}, &response));
  if (!status.ok()) return DescribeCallError(status, options_);
  return response.status();
}

absl::StatusOr<v1::CompileKernelResponse> AnerdClient::CompileKernel(
    v1::CompileKernelHeader header, const std::vector<WeightFile>& weights, size_t chunk_bytes) {
  for (const WeightFile& w : weights) {
    v1::WeightFileHeader* f = header.add_weight_files();
    f->set_path(w.path);
    f->set_size(w.bytes.size());
  }
  // Uploads may be large: allow a minute per 100 MB on top of the usual timeout.
  uint64_t total = 0;
  for (const WeightFile& w : weights) total += w.bytes.size();
  auto context = NewContext(options_.timeout + absl::Seconds(60.0 * total / 1e8));
  v1::CompileKernelResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::CompileKernelRequest>> writer =
      stub_->CompileKernel(context.get(), &response);
  v1::CompileKernelRequest message;
  *message.mutable_header() = std::move(header);
  bool ok = writer->Write(message);
  for (size_t i = 0; ok && i < weights.size(); ++i) {
    const std::string& bytes = weights[i].bytes;
    for (size_t offset = 0; ok && offset < bytes.size(); offset += chunk_bytes) {
      v1::CompileKernelRequest chunk;
      chunk.mutable_chunk()->set_path(weights[i].path);
      chunk.mutable_chunk()->set_offset(offset);
      chunk.mutable_chunk()->set_data(bytes.substr(offset, chunk_bytes));
      ok = writer->Write(chunk);
    }
  }
  writer->WritesDone();
  absl::Status status = FromGrpcStatus(writer->Finish());
  if (!status.ok()) return DescribeCallError(status, options_);
  return response;
}

absl::StatusOr<v1::EvalKernelResponse> AnerdClient::EvalKernel(
    const v1::EvalKernelRequest& request) {
  v1::EvalKernelResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(stub_->EvalKernel(context.get(), request, &response));
  if (!status.ok()) return DescribeCallError(status, options_);
  return response;
}

absl::StatusOr<v1::ListKernelsResponse> AnerdClient::ListKernels() {
  v1::ListKernelsResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(stub_->ListKernels(context.get(), {}, &response));
  if (!status.ok()) return DescribeCallError(status, options_);
  return response;
}

absl::StatusOr<v1::KernelInfo> AnerdClient::GetKernel(const std::string& id) {
  v1::GetKernelRequest request;
  request.set_kernel_id(id);
  v1::KernelInfo response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(stub_->GetKernel(context.get(), request, &response));
  if (!status.ok()) return DescribeCallError(status, options_);
  return response;
}

absl::Status AnerdClient::DeleteKernel(const std::string& id) {
  v1::DeleteKernelRequest request;
  request.set_kernel_id(id);
  v1::DeleteKernelResponse response;
  auto context = NewContext();
  absl::Status status = FromGrpcStatus(stub_->DeleteKernel(context.get(), request, &response));
  if (!status.ok()) return DescribeCallError(status, options_);
  return absl::OkStatus();
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

namespace {

// True when a TCP peer was reached but closed the connection while it was being set up, or the
// TLS handshake failed: the typical results of a TLS mismatch or a refused client certificate.
bool LooksLikeHandshakeFailure(const absl::Status& status, const Endpoint& endpoint) {
  if (endpoint.is_unix || status.code() != absl::StatusCode::kUnavailable) return false;
  const std::string message = absl::AsciiStrToLower(status.message());
  return absl::StrContains(message, "socket closed") || absl::StrContains(message, "handshake") ||
         absl::StrContains(message, "ssl") || absl::StrContains(message, "certificate");
}

// What to try, given the failure's lower-case `message` and the TLS options the call used.
std::string HandshakeHint(const std::string& message, const ClientOptions& options) {
  if (absl::StrContains(message, "wrong version number")) {
    return "the port does not speak TLS (a plain --insecure-loopback listener?): drop --tls-ca, "
           "--tls-cert and --tls-key";
  }
  if (absl::StrContains(message, "certificate verify failed") ||
      absl::StrContains(message, "peer name")) {
    return "the daemon's certificate is not signed by --tls-ca, or does not name the --host";
  }
  if (options.tls_root_pem.empty() && options.tls_cert_pem.empty()) {
    return "if the daemon serves TLS (anerd --tls-cert), pass --tls-ca with the CA certificate "
           "that signed its certificate";
  }
  if (options.tls_cert_pem.empty()) {
    return "the daemon may require a client certificate (anerd --tls-client-ca): pass --tls-cert "
           "and --tls-key";
  }
  return "the daemon refused the client certificate: check that its --tls-client-ca signed "
         "--tls-cert";
}

}  // namespace

absl::Status DescribeCallError(const absl::Status& status, const ClientOptions& options) {
  if (!LooksLikeHandshakeFailure(status, options.endpoint)) {
    return DescribeCallError(status, options.endpoint);
  }
  return absl::UnavailableError(absl::StrCat(
      "connection set-up with anerd at ", options.endpoint.GrpcTarget(), " failed (",
      status.message(), "): ", HandshakeHint(absl::AsciiStrToLower(status.message()), options)));
}

}  // namespace anerd::client
