// HttpEndpoint: a minimal HTTP/1.x server for one read-only page (GET /metrics). One thread accepts
// and answers connections one at a time (scrapes are rare and small): it reads the request head
// (at most 8 KiB, 2 s per read), answers GET <path> with 200 and the body from `render`, any other
// path with 404 and any other method with 405, then closes the connection.
//
// Why not prometheus-cpp's civetweb exposer: civetweb runs handlers on ~100 KiB thread stacks,
// and once libquadmath (which OpenBLAS pulls in through libgfortran) registers a printf type,
// glibc formats every printf through its stack-hungry positional path — the exposer's response
// header overflowed that stack and crashed the daemon. Here the page is written with write(2).
//
// Thread-safety: `render` runs on the endpoint's thread. Construction and destruction from one
// thread.
#ifndef ANERD_SERVER_METRICS_HTTP_ENDPOINT_H_
#define ANERD_SERVER_METRICS_HTTP_ENDPOINT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace anerd::metrics {

class HttpEndpoint {
 public:
  // Binds "HOST:PORT" (IPv4 dotted quad, "localhost", or "[v6]"; port 0 picks a free one) and
  // starts serving `path`. UNAVAILABLE when the address cannot be bound, INVALID_ARGUMENT when it
  // does not parse.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& listen,
                                                             std::string path,
                                                             std::function<std::string()> render);
  ~HttpEndpoint();  // stops accepting, joins the thread, closes the socket

  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const { return port_; }

 private:
  HttpEndpoint(int fd, int wake_read, int wake_write, int port, std::string path,
               std::function<std::string()> render);
  void Loop();
  void Serve(int conn);

  int fd_, wake_read_, wake_write_, port_;
  std::string path_;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace anerd::metrics

#endif  // ANERD_SERVER_METRICS_HTTP_ENDPOINT_H_
