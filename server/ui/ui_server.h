// UiServer: the live dashboard (`anerd --ui-listen HOST:PORT`, issue 21 item 5). cpp-httplib
// serves one page of plain HTML/JS/CSS compiled into the binary (ui_assets.h), JSON snapshots and
// a server-sent-event stream fed by UiHub (ui_hub.h):
//   GET /                               the page (also /index.html, /app.js, /style.css)
//   GET /api/info                       daemon, backends, workers, cache (ui_json.h InfoJson)
//   GET /api/sessions                   every session (SessionsJson)
//   GET /api/sessions/ID/events?from=SEQ&max=N   events from SEQ (default: the last `max`),
//                                       N ≤ kMaxEventsPerPage (EventsJson)
//   GET /api/probes?limit=N             stored probe results, newest first, N ≤ kMaxProbes
//   GET /api/stream                     text/event-stream (ui_hub.h frames)
// Bad input: an unknown path is 404, a malformed or out-of-range query parameter 400 naming it,
// an unknown session 404 naming it, a stream beyond UiHubOptions::max_clients 503; every error
// body is {"error": MESSAGE}.
//
// Who may read: `authorize` (given by the daemon) sees every request first. Whether a non-loopback
// address may be bound at all is the daemon's check (daemon.h CheckUiOptions, the same rule as
// --listen); this class only serves TLS when given a certificate.
//
// Threads: httplib's pool (UiHubOptions::max_clients streams + kJsonThreads), the listener and the
// hub's feed. Requests read the engine's APIs (sessions, probe store, Info), never a device
// executor. A slow page stalls only its own stream: writes time out after `write_timeout`.
//
// Thread-safety: Start, Stop and the destructor from one thread; the rest from any.
#ifndef ANERD_SERVER_UI_UI_SERVER_H_
#define ANERD_SERVER_UI_UI_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/ui/ui_hub.h"

namespace httplib {
class Server;
}

namespace anerd::ui {

inline constexpr size_t kMaxEventsPerPage = 5000;
inline constexpr int kMaxProbes = 50;
inline constexpr size_t kJsonThreads = 4;

// What `authorize` sees of a request.
struct UiRequest {
  std::string authorization;  // the Authorization header ("Bearer TOKEN"), else "Bearer " + the
                              // `token` query parameter (EventSource cannot set headers), else ""
  std::string remote_addr, local_addr;  // numeric addresses
  int remote_port = -1, local_port = -1;
};

// 0 = allowed; otherwise the HTTP status (401, 403) and a one-line reason.
struct UiVerdict {
  int status = 0;
  std::string message;
};

struct UiServerOptions {
  std::string listen;  // "HOST:PORT" ("[v6]:PORT"); port 0 picks a free one
  // PEM files; tls_cert and tls_key both set = HTTPS (tls_client_ca: client certificates required).
  std::string tls_cert, tls_key, tls_client_ca;
  std::function<UiVerdict(const UiRequest&)> authorize;  // empty = everyone
  UiHubOptions hub;
  absl::Duration write_timeout = absl::Seconds(5);
};

class UiServer {
 public:
  // Binds and starts serving. INVALID_ARGUMENT for an unparsable address or unreadable TLS files,
  // UNAVAILABLE when the address cannot be bound. `engine` is not owned and must outlive Stop().
  static absl::StatusOr<std::unique_ptr<UiServer>> Start(engine::Engine* engine,
                                                         UiServerOptions options);
  ~UiServer();  // Stop()

  UiServer(const UiServer&) = delete;
  UiServer& operator=(const UiServer&) = delete;

  // Ends every stream, stops accepting and joins the threads. Idempotent.
  void Stop();

  int port() const { return port_; }
  // Frames dropped for slow pages (the Prometheus counter anerd_ui_frames_dropped_total).
  std::shared_ptr<const std::atomic<uint64_t>> dropped_counter() const {
    return hub_->dropped_counter();
  }

 private:
  UiServer(engine::Engine* engine, UiServerOptions options);
  absl::Status Listen();
  void Route();

  engine::Engine* engine_;
  const UiServerOptions options_;
  std::unique_ptr<UiHub> hub_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

// Splits "HOST:PORT" / "[v6]:PORT" into host and port; INVALID_ARGUMENT naming `flag` otherwise.
absl::Status SplitHostPort(const std::string& flag, const std::string& address, std::string* host,
                           int* port);

}  // namespace anerd::ui

#endif  // ANERD_SERVER_UI_UI_SERVER_H_
