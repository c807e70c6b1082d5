// AnerdClient: a thin typed wrapper over the anerd.v1 stub. It resolves the endpoint, sets a
// deadline on every call and maps gRPC errors to absl::Status (UNAVAILABLE when the daemon cannot
// be reached). Streaming commands use stub() with a context from NewContext().
//
// Thread-safety: the underlying channel and stub are thread-safe; one client may be shared.
#ifndef ANERD_CLIENT_LIB_CLIENT_H_
#define ANERD_CLIENT_LIB_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "anerd/v1/anerd.grpc.pb.h"
#include "common/paths.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace anerd::client {

struct ClientOptions {
  Endpoint endpoint;
  absl::Duration timeout = absl::Seconds(10);  // per unary call; streams set their own
  // Sent as "authorization: Bearer TOKEN" on every call (TCP listeners require one); empty = none.
  std::string bearer_token;
  // PEM root certificates: when set, TCP endpoints are reached over TLS verified against them.
  std::string tls_root_pem;
  // PEM client certificate chain and its private key, presented for mutual TLS (a daemon started
  // with --tls-client-ca). Set both or neither; setting them also turns on TLS for TCP endpoints
  // (the server is then verified against tls_root_pem, or gRPC's default roots when it is empty).
  std::string tls_cert_pem;
  std::string tls_key_pem;
};

class AnerdClient {
 public:
  // Creates the channel (does not connect yet).
  static std::unique_ptr<AnerdClient> Create(const ClientOptions& options);

  absl::StatusOr<v1::GetInfoResponse> GetInfo();
  // The ANE capability probe (`anectl doctor --probe`); `backend` "" = the daemon's ANE backend.
  absl::StatusOr<v1::ProbeAneRulesResponse> ProbeAneRules(const std::string& backend);
  // grpc.health.v1 status of the whole server ("" service).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health();

  // A weight file to upload with a kernel: the path as the MIL refers to it and its bytes.
  struct WeightFile {
    std::string path;
    std::string bytes;
  };
  // Streams the header and then the weight files in chunks of `chunk_bytes`.
  absl::StatusOr<v1::CompileKernelResponse> CompileKernel(v1::CompileKernelHeader header,
                                                          const std::vector<WeightFile>& weights,
                                                          size_t chunk_bytes = 1 << 20);
  absl::StatusOr<v1::EvalKernelResponse> EvalKernel(const v1::EvalKernelRequest& request);
  absl::StatusOr<v1::ListKernelsResponse> ListKernels();
  absl::StatusOr<v1::KernelInfo> GetKernel(const std::string& id);
  absl::Status DeleteKernel(const std::string& id);

  // A context whose deadline is now + `timeout` (the client's default when zero/infinite is
  // not asked for). Pass absl::InfiniteDuration() for open-ended streams.
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Duration timeout = absl::ZeroDuration()) const;
  v1::Anerd::Stub* stub() { return stub_.get(); }
  const ClientOptions& options() const { return options_; }

 private:
  AnerdClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Anerd::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// Maps a failed call's status to one that says where the daemon was expected and how to start it
// when it is unreachable; other statuses pass through.
absl::Status DescribeCallError(const absl::Status& status, const Endpoint& endpoint);
// The same, and when the TLS handshake failed, says which TLS options were (not) used.
absl::Status DescribeCallError(const absl::Status& status, const ClientOptions& options);

}  // namespace anerd::client

#endif  // ANERD_CLIENT_LIB_CLIENT_H_
