#include "server/ui/ui_server.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "httplib.h"
#include "server/ui/ui_assets.h"
#include "server/ui/ui_json.h"
#include "spdlog/spdlog.h"

namespace anerd::ui {
namespace {

constexpr char kJson[] = "application/json";

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    default:
      return 500;
  }
}

void Fail(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(ErrorJson(message), kJson);
}

void Reply(httplib::Response& res, const std::string& json) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(json, kJson);
}

// Query parameter `name` as an integer in [0, max]; `fallback` when absent.
absl::StatusOr<int64_t> IntParam(const httplib::Request& req, const char* name, int64_t fallback,
                                 int64_t max) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < 0 || value > max) {
    return absl::InvalidArgumentError(absl::StrCat("query parameter '", name,
                                                   "' must be an integer from 0 to ", max,
                                                   ", got '", text.substr(0, 40), "'"));
  }
  return value;
}

UiRequest RequestInfo(const httplib::Request& req) {
  UiRequest r;
  r.authorization = req.get_header_value("Authorization");
  if (r.authorization.empty() && req.has_param("token")) {
    r.authorization = "Bearer " + req.get_param_value("token");
  }
  r.remote_addr = req.remote_addr;
  r.remote_port = req.remote_port;
  r.local_addr = req.local_addr;
  r.local_port = req.local_port;
  return r;
}

std::unique_ptr<httplib::Server> NewHttpServer(const UiServerOptions& o) {
  if (o.tls_cert.empty()) return std::make_unique<httplib::Server>();
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  return std::make_unique<httplib::SSLServer>(
      o.tls_cert.c_str(), o.tls_key.c_str(),
      o.tls_client_ca.empty() ? nullptr : o.tls_client_ca.c_str());
#else
  return nullptr;
#endif
}

}  // namespace

absl::Status SplitHostPort(const std::string& flag, const std::string& address, std::string* host,
                           int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(address).substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " wants HOST:PORT (e.g. 127.0.0.1:8787), got '", address, "'"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

UiServer::UiServer(engine::Engine* engine, UiServerOptions options)
    : engine_(engine),
      options_(std::move(options)),
      hub_(std::make_unique<UiHub>(UiSourcesFor(engine), options_.hub)) {}

UiServer::~UiServer() { Stop(); }

absl::StatusOr<std::unique_ptr<UiServer>> UiServer::Start(engine::Engine* engine,
                                                          UiServerOptions options) {
  std::unique_ptr<UiServer> server(new UiServer(engine, std::move(options)));
  if (absl::Status s = server->Listen(); !s.ok()) return s;
  return server;
}

absl::Status UiServer::Listen() {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort("--ui-listen", options_.listen, &host, &port); !s.ok()) {
    return s;
  }
  http_ = NewHttpServer(options_);
  if (http_ == nullptr || !http_->is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ui-listen ", options_.listen, ": cannot serve HTTPS with --tls-cert ",
                     options_.tls_cert, " and --tls-key ", options_.tls_key,
                     http_ == nullptr ? " (cpp-httplib was built without OpenSSL)"
                                      : " (unreadable or invalid)"));
  }
  const size_t threads = options_.hub.max_clients + kJsonThreads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_keep_alive_timeout(2);  // idle connections give their pool thread back quickly
  http_->set_read_timeout(5);
  http_->set_write_timeout(
      std::chrono::milliseconds(absl::ToInt64Milliseconds(options_.write_timeout)));
  http_->set_payload_max_length(1 << 16);
  Route();
  port_ = port == 0 ? http_->bind_to_any_port(host) : (http_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("--ui-listen ", options_.listen,
                                               ": cannot bind (in use, or not an address "
                                               "of this machine?)"));
  }
  hub_->Start();
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // httplib's stop() does nothing until the listener runs: wait for it, so an early Stop() (a
  // later start-up step failing) cannot leave the thread listening forever.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!http_->is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  if (!http_->is_running()) {
    Stop();
    return absl::UnavailableError("--ui-listen " + options_.listen + ": the server did not start");
  }
  return absl::OkStatus();
}

void UiServer::Stop() {
  if (hub_ != nullptr) hub_->Stop();  // ends every stream
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

void UiServer::Route() {
  httplib::Server& h = *http_;
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!options_.authorize) return httplib::Server::HandlerResponse::Unhandled;
    UiVerdict verdict = options_.authorize(RequestInfo(req));
    if (verdict.status == 0) return httplib::Server::HandlerResponse::Unhandled;
    Fail(res, verdict.status, verdict.message);
    return httplib::Server::HandlerResponse::Handled;
  });
  auto asset = [](const httplib::Request& req, httplib::Response& res) {
    const UiAsset* a = FindUiAsset(req.path == "/" ? "/index.html" : req.path);
    if (a == nullptr) return Fail(res, 404, "no such page: " + req.path.substr(0, 200));
    res.set_content(std::string(a->data), std::string(a->content_type).c_str());
  };
  h.Get("/", asset);
  h.Get(R"(/[A-Za-z0-9_.-]+\.(html|js|css|svg))", asset);
  h.Get("/api/info", [this](const httplib::Request&, httplib::Response& res) {
    UiCounters counters;
    counters.clients = hub_->clients();
    counters.dropped_total = hub_->dropped_counter()->load();
    Reply(res, InfoJson(engine_->Info(), counters));
  });
  h.Get("/api/sessions", [this](const httplib::Request&, httplib::Response& res) {
    Reply(res, SessionsJson(engine_->sessions().List()));
  });
  h.Get(R"(/api/sessions/([A-Za-z0-9_.-]{1,128})/events)",
        [this](const httplib::Request& req, httplib::Response& res) {
          const std::string id = req.matches[1];
          absl::StatusOr<int64_t> max = IntParam(req, "max", 1000, kMaxEventsPerPage);
          if (!max.ok()) return Fail(res, 400, std::string(max.status().message()));
          absl::StatusOr<uint64_t> next = engine_->sessions().NextSeq(id);
          if (!next.ok()) return Fail(res, HttpStatusOf(next.status()), next.status().ToString());
          const int64_t tail = std::max<int64_t>(0, static_cast<int64_t>(*next) - *max);
          absl::StatusOr<int64_t> from = IntParam(req, "from", tail, INT64_MAX);
          if (!from.ok()) return Fail(res, 400, std::string(from.status().message()));
          std::vector<sessions::SessionEventRecord> events;
          bool ended = false;
          absl::Status read = engine_->sessions().ReadEvents(id, *from, *max, &events, &ended);
          if (!read.ok()) return Fail(res, HttpStatusOf(read), read.ToString());
          const uint64_t after = events.empty() ? *from : events.back().seq + 1;
          Reply(res, EventsJson(id, events, after, ended));
        });
  h.Get("/api/probes", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<int64_t> limit = IntParam(req, "limit", 10, kMaxProbes);
    if (!limit.ok()) return Fail(res, 400, std::string(limit.status().message()));
    absl::StatusOr<std::vector<probes::ProbeResult>> list =
        engine_->probes().List("", static_cast<int>(*limit));
    if (!list.ok()) return Fail(res, HttpStatusOf(list.status()), list.status().ToString());
    Reply(res, ProbesJson(*list));
  });
  h.Get("/api/stream", [this](const httplib::Request&, httplib::Response& res) {
    std::shared_ptr<UiHub::Client> client = hub_->Connect();
    if (client == nullptr) {
      return Fail(res, 503,
                  absl::StrCat("too many dashboard streams open (at most ",
                               options_.hub.max_clients, "); close a page and reload"));
    }
    res.set_header("Cache-Control", "no-store");
    UiHub* hub = hub_.get();
    res.set_chunked_content_provider(
        "text/event-stream",
        [client](size_t, httplib::DataSink& sink) {
          std::optional<std::string> frame = client->buffer.Pop(absl::Seconds(1));
          if (client->buffer.closed()) {
            sink.done();
            return true;
          }
          const std::string data = frame.has_value() ? *frame : std::string(": idle\n\n");
          return sink.write(data.data(), data.size());
        },
        [hub, client](bool) { hub->Disconnect(client); });
  });
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) return Fail(res, 404, "no such page: " + req.path.substr(0, 200));
    Fail(res, res.status, absl::StrCat("HTTP ", res.status));
  });
}

}  // namespace anerd::ui
