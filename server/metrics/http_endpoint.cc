#include "server/metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace anerd::metrics {
namespace {

constexpr size_t kMaxRequestHead = 8192;

void WriteAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

std::string Response(const char* status, const std::string& body) {
  return absl::StrCat("HTTP/1.1 ", status,
                      "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                      "Content-Length: ",
                      body.size(), "\r\nConnection: close\r\n\r\n", body);
}

// Reads the request head; empty on timeout, error or an oversized head.
std::string ReadHead(int conn) {
  std::string head;
  char buffer[1024];
  while (head.size() < kMaxRequestHead && !absl::StrContains(head, "\r\n\r\n")) {
    const ssize_t n = ::recv(conn, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    head.append(buffer, static_cast<size_t>(n));
  }
  return absl::StrContains(head, "\r\n\r\n") ? head : "";
}

absl::StatusOr<sockaddr_storage> ParseAddress(const std::string& listen, socklen_t* length) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError("want HOST:PORT, got '" + listen + "'");
  }
  std::string host = listen.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  sockaddr_storage addr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError("'" + host + "' is not an IP address or localhost");
  }
  return addr;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t length = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(
    const std::string& listen, std::string path, std::function<std::string()> render) {
  socklen_t length = 0;
  absl::StatusOr<sockaddr_storage> addr = ParseAddress(listen, &length);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), length) != 0 || ::listen(fd, 16) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", error));
  }
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  std::unique_ptr<HttpEndpoint> endpoint(new HttpEndpoint(
      fd, pipe_fds[0], pipe_fds[1], BoundPort(fd), std::move(path), std::move(render)));
  endpoint->thread_ = std::thread([raw = endpoint.get()] { raw->Loop(); });
  return endpoint;
}

HttpEndpoint::HttpEndpoint(int fd, int wake_read, int wake_write, int port, std::string path,
                           std::function<std::string()> render)
    : fd_(fd),
      wake_read_(wake_read),
      wake_write_(wake_write),
      port_(port),
      path_(std::move(path)),
      render_(std::move(render)) {}

HttpEndpoint::~HttpEndpoint() {
  const char byte = 1;
  (void)::write(wake_write_, &byte, 1);
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void HttpEndpoint::Loop() {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics endpoint: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = ::accept(fd_, nullptr, nullptr);
    if (conn < 0) continue;
    Serve(conn);
    ::close(conn);
  }
}

void HttpEndpoint::Serve(int conn) {
  timeval timeout{2, 0};
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  const std::string head = ReadHead(conn);
  if (head.empty()) return;
  // Request line: METHOD SP TARGET SP VERSION.
  const std::vector<std::string> parts =
      absl::StrSplit(head.substr(0, head.find("\r\n")), ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return WriteAll(conn, Response("400 Bad Request", "bad request\n"));
  }
  if (parts[0] != "GET" && parts[0] != "HEAD") {
    return WriteAll(conn, Response("405 Method Not Allowed", "only GET\n"));
  }
  const std::string target = parts[1].substr(0, parts[1].find('?'));
  if (target != path_) {
    return WriteAll(conn, Response("404 Not Found", "metrics are at " + path_ + "\n"));
  }
  std::string response = Response("200 OK", render_());
  if (parts[0] == "HEAD") response.resize(response.find("\r\n\r\n") + 4);
  WriteAll(conn, response);
}

}  // namespace anerd::metrics
