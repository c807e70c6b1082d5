// The metrics HTTP endpoint and address check, without a daemon: GET and HEAD of the page, 404 for
// other paths, 405 for other methods, 400 for garbage, a slow client does not wedge it, and the
// loopback rule for --metrics_listen.
#include "server/metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics.h"

namespace anerd::metrics {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[1024];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  ::close(fd);
  return response;
}

TEST(HttpEndpointTest, ServesThePageAndRefusesEverythingElse) {
  std::atomic<int> renders{0};
  absl::StatusOr<std::unique_ptr<HttpEndpoint>> endpoint =
      HttpEndpoint::Start("127.0.0.1:0", "/metrics", [&] {
        ++renders;
        return std::string("up 1\n");
      });
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  ASSERT_GT(port, 0);

  const std::string ok = Exchange(port, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_THAT(ok, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(ok, EndsWith("\r\n\r\nup 1\n"));
  const std::string head = Exchange(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, EndsWith("\r\n\r\n"));
  EXPECT_EQ(renders.load(), 2);

  EXPECT_THAT(Exchange(port, "GET / HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Exchange(port, "POST /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(Exchange(port, "hello\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_EQ(renders.load(), 2);

  // A client that connects and says nothing is dropped after the read timeout; others are then
  // served.
  const int idle = Connect(port);
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  ::close(idle);
}

TEST(HttpEndpointTest, ReportsAddressesItCannotUse) {
  EXPECT_EQ(HttpEndpoint::Start("nohost:1", "/m", [] { return std::string(); }).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = HttpEndpoint::Start("127.0.0.1:0", "/m", [] { return std::string(); });
  ASSERT_TRUE(first.ok());
  auto second = HttpEndpoint::Start("127.0.0.1:" + std::to_string((*first)->port()), "/m",
                                    [] { return std::string(); });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(MetricsAddressTest, LoopbackOnlyUnlessAllowed) {
  EXPECT_TRUE(CheckMetricsAddress("127.0.0.1:9464", false).ok());
  EXPECT_TRUE(CheckMetricsAddress("localhost:9464", false).ok());
  EXPECT_TRUE(CheckMetricsAddress("[::1]:9464", false).ok());
  absl::Status remote = CheckMetricsAddress("0.0.0.0:9464", false);
  EXPECT_EQ(remote.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(remote.message(), HasSubstr("--metrics_allow_remote"));
  EXPECT_TRUE(CheckMetricsAddress("0.0.0.0:9464", true).ok());
  EXPECT_THAT(CheckMetricsAddress("9464", false).message(), HasSubstr("HOST:PORT"));
  EXPECT_FALSE(CheckMetricsAddress("127.0.0.1:99999", false).ok());
}

}  // namespace
}  // namespace anerd::metrics
