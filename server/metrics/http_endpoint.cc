#include "server/metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace anerd::metrics {
namespace {

constexpr size_t kMaxRequestHead = 8192;

std::string Response(const std::string& status, const std::string& body,
                     const std::string& extra_headers = "") {
  return absl::StrCat(
      "HTTP/1.1 ", status, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
      extra_headers, "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

// The value of header `name` (case-insensitive) in a request head; "" when absent.
std::string HeaderValue(const std::string& head, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !absl::EqualsIgnoreCase(line.substr(0, colon), name)) {
      continue;
    }
    return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return "";
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

// Portable stand-in for SOCK_CLOEXEC | SOCK_NONBLOCK (and accept4), which macOS lacks.
void SetCloexecNonblocking(int fd) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
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
  HttpEndpointOptions options;
  options.path = std::move(path);
  options.render = std::move(render);
  return Start(listen, std::move(options));
}

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& listen,
                                                                  HttpEndpointOptions options) {
  socklen_t length = 0;
  absl::StatusOr<sockaddr_storage> addr = ParseAddress(listen, &length);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(addr->ss_family, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  SetCloexecNonblocking(fd);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), length) != 0 ||
      ::listen(fd, static_cast<int>(options.max_connections)) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", error));
  }
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  ::fcntl(pipe_fds[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(pipe_fds[1], F_SETFD, FD_CLOEXEC);
  std::unique_ptr<HttpEndpoint> endpoint(
      new HttpEndpoint(fd, pipe_fds[0], pipe_fds[1], BoundPort(fd), std::move(options)));
  endpoint->thread_ = std::thread([raw = endpoint.get()] { raw->Loop(); });
  return endpoint;
}

HttpEndpoint::HttpEndpoint(int fd, int wake_read, int wake_write, int port,
                           HttpEndpointOptions options)
    : fd_(fd),
      wake_read_(wake_read),
      wake_write_(wake_write),
      port_(port),
      options_(std::move(options)) {}

HttpEndpoint::~HttpEndpoint() {
  const char byte = 1;
  (void)::write(wake_write_, &byte, 1);
  if (thread_.joinable()) thread_.join();
  for (const auto& [fd, c] : connections_) ::close(fd);
  ::close(fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void HttpEndpoint::Loop() {
  std::vector<pollfd> fds;
  while (true) {
    fds.clear();
    fds.push_back({wake_read_, POLLIN, 0});
    fds.push_back({fd_, POLLIN, 0});
    absl::Time next_deadline = absl::InfiniteFuture();
    for (const auto& [fd, c] : connections_) {
      fds.push_back({fd, static_cast<short>(c.answering ? POLLOUT : POLLIN), 0});
      next_deadline = std::min(next_deadline, c.deadline);
    }
    int timeout_ms = -1;
    if (next_deadline != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(
          std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Ceil(next_deadline - absl::Now(),
                                                                    absl::Milliseconds(1)))));
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics endpoint: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    for (size_t i = 2; i < fds.size(); ++i) {
      auto it = connections_.find(fds[i].fd);
      if (it == connections_.end()) continue;
      bool keep = true;
      if (fds[i].revents & (POLLERR | POLLNVAL)) {
        keep = false;
      } else if (fds[i].revents != 0) {
        keep = it->second.answering ? OnWritable(it->first, it->second)
                                    : OnReadable(it->first, it->second);
      }
      if (keep && absl::Now() >= it->second.deadline) keep = false;  // read or write timeout
      if (!keep) {
        ::close(it->first);
        connections_.erase(it);
      }
    }
    if (fds[1].revents & POLLIN) AcceptAll();
  }
}

void HttpEndpoint::AcceptAll() {
  while (true) {
    const int conn = ::accept(fd_, nullptr, nullptr);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN: none left (or an error such as EMFILE: try again on the next wake)
    }
    SetCloexecNonblocking(conn);
    if (connections_.size() >= options_.max_connections) DropOldestWaiting();
    if (connections_.size() >= options_.max_connections) {
      ::close(conn);  // every slot is answering a request: refuse this one
      continue;
    }
    Connection c;
    c.accepted = absl::Now();
    c.deadline = c.accepted + options_.read_timeout;
    connections_.emplace(conn, std::move(c));
  }
}

void HttpEndpoint::DropOldestWaiting() {
  auto oldest = connections_.end();
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (it->second.answering) continue;
    if (oldest == connections_.end() || it->second.accepted < oldest->second.accepted) oldest = it;
  }
  if (oldest == connections_.end()) return;
  ::close(oldest->first);
  connections_.erase(oldest);
}

bool HttpEndpoint::OnReadable(int fd, Connection& c) {
  char buffer[2048];
  const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
  if (n < 0) return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
  if (n == 0) return false;  // the client gave up before finishing its request
  c.in.append(buffer, static_cast<size_t>(n));
  const size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.in.size() < kMaxRequestHead) return true;
    c.out = Response("431 Request Header Fields Too Large", "request head over 8 KiB\n");
  } else {
    c.out = Answer(fd, c.in.substr(0, end + 2));
  }
  c.in.clear();
  c.answering = true;
  c.deadline = absl::Now() + options_.write_timeout;
  return OnWritable(fd, c);
}

bool HttpEndpoint::OnWritable(int fd, Connection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) return false;
    c.sent += static_cast<size_t>(n);
  }
  return false;  // all sent: close
}

std::string HttpEndpoint::Answer(int fd, const std::string& head) {
  // Request line: METHOD SP TARGET SP VERSION.
  const std::vector<std::string> parts =
      absl::StrSplit(head.substr(0, head.find("\r\n")), ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return Response("400 Bad Request", "bad request\n");
  }
  if (parts[0] != "GET" && parts[0] != "HEAD") {
    return Response("405 Method Not Allowed", "only GET\n");
  }
  const std::string target = parts[1].substr(0, parts[1].find('?'));
  if (target != options_.path) {
    return Response("404 Not Found", "metrics are at " + options_.path + "\n");
  }
  if (options_.authorize) {
    HttpVerdict verdict = options_.authorize({HeaderValue(head, "authorization"), fd});
    if (!verdict.allowed) {
      return Response(verdict.status, verdict.body,
                      "WWW-Authenticate: Bearer realm=\"anerd metrics\"\r\n");
    }
  }
  std::string response = Response("200 OK", options_.render());
  if (parts[0] == "HEAD") response.resize(response.find("\r\n\r\n") + 4);
  return response;
}

}  // namespace anerd::metrics
