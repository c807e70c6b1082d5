// Metrics: the daemon's opt-in Prometheus endpoint (--metrics-listen HOST:PORT, text exposition
// format on GET /metrics; prometheus-cpp's core for the registry and text format, served by
// server/metrics/http_endpoint.h).
//
// Two kinds of series:
//   * pushed by observers at the moment something finishes (cheap counter/histogram updates):
//     RPCs by method and code (from the RPC interceptor), compiles and evaluations by backend (from
//     the KernelManager's observer);
//   * the device queues by backend and priority class (read at scrape time): depth, a histogram of
//     the waits, the longest wait;
//   * read from the engine at scrape time (a prometheus::Collectable): cache hits/misses, kernels
//     stored, compile budget used per backend, worker restarts/crashes, and per training session
//     the latest step's loss, step time, tokens/s and phase times. Nothing on the training or
//     evaluation hot paths touches these.
// Metric names are listed in README.md ("Metrics").
//
// Access (the page names every client's sessions): a scrape is answered when it carries
// "Authorization: Bearer TOKEN" with an admin token from the --auth-tokens file, or when the
// endpoint listens on loopback and the scraper's socket belongs to the daemon's own uid (looked
// up in /proc/net/tcp, peer_uid.h; on systems without it, e.g. macOS, loopback scrapes need the
// token too). Anything else gets 401 (no or unknown token) or 403 (a token that is not admin).
// Only loopback addresses are accepted unless the caller allows others (--metrics-allow-remote,
// which the daemon accepts only together with --auth-tokens); there a token is always needed.
//
// Thread-safety: Observe* may be called from any thread. The engine must outlive the server.
#ifndef ANERD_SERVER_METRICS_METRICS_H_
#define ANERD_SERVER_METRICS_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/engine.h"

namespace anerd::metrics {

// OK for "HOST:PORT" whose host is loopback (127.x.x.x, localhost, [::1]) or any host when
// `allow_non_loopback`; INVALID_ARGUMENT naming --metrics-listen / --metrics-allow-remote
// otherwise.
absl::Status CheckMetricsAddress(const std::string& listen, bool allow_non_loopback);

// Who may scrape (see the file comment).
struct MetricsAccess {
  // For an Authorization header value: nullopt when it names no token, else whether the token is
  // an admin. Empty = no token file (only same-uid loopback scrapes are answered).
  std::function<std::optional<bool>(absl::string_view authorization)> token_is_admin;
  uint32_t daemon_uid = 0;  // loopback peers with this uid need no token
};

class MetricsServer {
 public:
  // Starts serving on `listen` (checked with CheckMetricsAddress first; port 0 picks a free port).
  // `engine` is not owned and must outlive the server. UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              bool allow_non_loopback,
                                                              engine::Engine* engine,
                                                              MetricsAccess access);
  ~MetricsServer();  // stops the HTTP server (joins its threads)

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // One finished RPC: `method` "/anerd.v1.Anerd/GetInfo", `code` "OK", latency in milliseconds.
  void ObserveRpc(const std::string& method, const std::string& code, double latency_ms);
  // A backend compile that ran, and a successful evaluation (milliseconds).
  void ObserveCompile(const std::string& backend, double compile_ms);
  void ObserveEval(const std::string& backend, double execute_ms);

  // A counter another component owns (e.g. the dashboard's dropped frames), exported without
  // labels as `name` and read by calling `read` at scrape time, on the endpoint's thread; `read`
  // must stay callable for the server's lifetime (capture shared state, not a raw pointer).
  void AddCounterSource(const std::string& name, const std::string& help,
                        std::function<double()> read);

  // The bound TCP port (useful with port 0).
  int port() const;

 private:
  struct State;
  explicit MetricsServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace anerd::metrics

#endif  // ANERD_SERVER_METRICS_METRICS_H_
