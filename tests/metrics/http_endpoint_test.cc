// The metrics HTTP endpoint and address check, without a daemon: GET and HEAD of the page, 404 for
// other paths, 405 for other methods, 400 for garbage, silent clients (even more than the
// connection limit) do not hold up a scrape, the authorize hook's 401, the loopback peer-uid
// lookup, and the loopback rule for --metrics-listen.
#include "server/metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics.h"
#include "server/metrics/peer_uid.h"

namespace anerd::metrics {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
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
  // A guard, not a measurement: a serial endpoint behind silent clients answers far later.
  timeval guard{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard));
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

  // A client that connects and says nothing does not hold up others.
  const int idle = Connect(port);
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  ::close(idle);
}

TEST(HttpEndpointTest, SilentConnectionsDoNotHoldUpAScrape) {
  absl::StatusOr<std::unique_ptr<HttpEndpoint>> endpoint =
      HttpEndpoint::Start("127.0.0.1:0", "/metrics", [] { return std::string("up 1\n"); });
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  std::vector<int> silent;
  for (int i = 0; i < 20; ++i) silent.push_back(Connect((*endpoint)->port()));
  ::usleep(100 * 1000);  // let the endpoint accept them all first
  EXPECT_THAT(Exchange((*endpoint)->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK"));
  for (int fd : silent) ::close(fd);
}

TEST(HttpEndpointTest, AFloodOfSilentConnectionsBeyondTheLimitCannotLockOutAScrape) {
  HttpEndpointOptions options;
  options.render = [] { return std::string("up 1\n"); };
  options.max_connections = 4;
  absl::StatusOr<std::unique_ptr<HttpEndpoint>> endpoint =
      HttpEndpoint::Start("127.0.0.1:0", std::move(options));
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  std::vector<int> silent;
  for (int i = 0; i < 12; ++i) silent.push_back(Connect((*endpoint)->port()));
  ::usleep(100 * 1000);
  EXPECT_THAT(Exchange((*endpoint)->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK"));
  for (int fd : silent) ::close(fd);
}

TEST(HttpEndpointTest, AuthorizeSeesTheHeaderAndRefusesWith401) {
  HttpEndpointOptions options;
  options.render = [] { return std::string("secret 1\n"); };
  options.authorize = [](const HttpRequestInfo& request) {
    if (request.authorization == "Bearer good") return HttpVerdict{};
    return HttpVerdict{false, "401 Unauthorized", "no\n"};
  };
  absl::StatusOr<std::unique_ptr<HttpEndpoint>> endpoint =
      HttpEndpoint::Start("127.0.0.1:0", std::move(options));
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  const std::string refused = Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(refused, StartsWith("HTTP/1.1 401 Unauthorized\r\n"));
  EXPECT_THAT(refused, HasSubstr("WWW-Authenticate: Bearer"));
  EXPECT_THAT(refused, Not(HasSubstr("secret")));
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\nauthorization: Bearer good\r\n\r\n"),
              EndsWith("secret 1\n"));
}

TEST(PeerUidTest, FindsTheUidOfALoopbackPeer) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t length = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length), 0);
  const int client = Connect(ntohs(addr.sin_port));
  const int served = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(served, 0);
  if (::access("/proc/net/tcp", R_OK) != 0) {
    EXPECT_FALSE(LoopbackPeerUid(served).has_value());
    GTEST_SKIP() << "no /proc/net/tcp here: loopback scrapes need a token";
  }
  std::optional<uint32_t> uid = LoopbackPeerUid(served);
  ASSERT_TRUE(uid.has_value());
  EXPECT_EQ(*uid, ::geteuid());
  EXPECT_FALSE(LoopbackPeerUid(listener).has_value()) << "not connected";
  ::close(served);
  ::close(client);
  ::close(listener);
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
  EXPECT_THAT(remote.message(), HasSubstr("--metrics-allow-remote"));
  EXPECT_TRUE(CheckMetricsAddress("0.0.0.0:9464", true).ok());
  EXPECT_THAT(CheckMetricsAddress("9464", false).message(), HasSubstr("HOST:PORT"));
  EXPECT_FALSE(CheckMetricsAddress("127.0.0.1:99999", false).ok());
}

}  // namespace
}  // namespace anerd::metrics
