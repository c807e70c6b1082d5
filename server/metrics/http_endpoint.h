// HttpEndpoint: a minimal HTTP/1.x server for one read-only page (GET /metrics). One thread runs an
// event loop over non-blocking sockets, so connections are served concurrently: a client that
// connects and says nothing (or reads slowly) holds only its own connection, never the page.
//
// Per connection: the request head (at most 8 KiB) must arrive within `read_timeout` of the
// accept, and the response must be taken within `write_timeout` of the head; otherwise the
// connection is closed. At most `max_connections` are open at once: when one more arrives, the
// oldest connection still waiting for its request head is dropped to make room (a connection
// already being answered is never dropped), so a flood of silent connections cannot lock out a
// scrape. Answers: GET/HEAD of `path` → `authorize`'s verdict, then 200 with the body from
// `render`; any other path 404; any other method 405; an unparsable head 400. Every response
// closes the connection.
//
// Why not prometheus-cpp's civetweb exposer: civetweb runs handlers on ~100 KiB thread stacks,
// and once libquadmath (which OpenBLAS pulls in through libgfortran) registers a printf type,
// glibc formats every printf through its stack-hungry positional path — the exposer's response
// header overflowed that stack and crashed the daemon. Here the page is written with send(2).
//
// Thread-safety: `render` and `authorize` run on the endpoint's thread. Construction and
// destruction from one thread.
#ifndef ANERD_SERVER_METRICS_HTTP_ENDPOINT_H_
#define ANERD_SERVER_METRICS_HTTP_ENDPOINT_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace anerd::metrics {

// What `authorize` sees of a request for the page.
struct HttpRequestInfo {
  std::string authorization;  // the Authorization header's value; "" when absent
  int connection = -1;        // the connected socket (e.g. for metrics::LoopbackPeerUid)
};

// The answer to a request: allowed, or refused with an HTTP status ("401 Unauthorized",
// "403 Forbidden") and a one-line body.
struct HttpVerdict {
  bool allowed = true;
  std::string status;
  std::string body;
};

struct HttpEndpointOptions {
  std::string path = "/metrics";
  std::function<std::string()> render;
  std::function<HttpVerdict(const HttpRequestInfo&)> authorize;  // empty = everyone
  absl::Duration read_timeout = absl::Seconds(5);
  absl::Duration write_timeout = absl::Seconds(5);
  size_t max_connections = 64;
};

class HttpEndpoint {
 public:
  // Binds "HOST:PORT" (IPv4 dotted quad, "localhost", or "[v6]"; port 0 picks a free one) and
  // starts serving. UNAVAILABLE when the address cannot be bound, INVALID_ARGUMENT when it does
  // not parse.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& listen,
                                                             HttpEndpointOptions options);
  // The page at `path`, open to everyone, default timeouts.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& listen,
                                                             std::string path,
                                                             std::function<std::string()> render);
  ~HttpEndpoint();  // stops accepting, closes every connection, joins the thread

  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const { return port_; }

 private:
  struct Connection {
    absl::Time accepted;
    absl::Time deadline;
    std::string in;
    std::string out;
    size_t sent = 0;
    bool answering = false;  // the response is being written
  };

  HttpEndpoint(int fd, int wake_read, int wake_write, int port, HttpEndpointOptions options);
  void Loop();
  void AcceptAll();
  void DropOldestWaiting();
  // Reads what is available; returns false when the connection is finished.
  bool OnReadable(int fd, Connection& c);
  // Writes what fits; returns false when the connection is finished.
  bool OnWritable(int fd, Connection& c);
  std::string Answer(int fd, const std::string& head);

  int fd_, wake_read_, wake_write_, port_;
  const HttpEndpointOptions options_;
  std::map<int, Connection> connections_;  // by socket; touched only by the loop thread
  std::thread thread_;
};

}  // namespace anerd::metrics

#endif  // ANERD_SERVER_METRICS_HTTP_ENDPOINT_H_
