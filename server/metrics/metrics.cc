#include "server/metrics/metrics.h"

#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/blocking_io_guard.h"
#include "common/status_macros.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/http_endpoint.h"
#include "server/metrics/peer_uid.h"
#include "spdlog/spdlog.h"

namespace anerd::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<std::pair<std::string, std::string>>;

// Latency buckets in seconds: RPCs and evaluations span 100 µs .. a minute; compiles 1 ms .. 2 min.
const std::vector<double>& LatencyBuckets() {
  static const auto* buckets =
      new std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                              0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return *buckets;
}
const std::vector<double>& CompileBuckets() {
  static const auto* buckets = new std::vector<double>{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1,     2.5,  5,     10,   30,  120};
  return *buckets;
}

MetricFamily NewFamily(const std::string& name, const std::string& help, MetricType type) {
  MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  return family;
}

void AddSample(MetricFamily* family, const Labels& labels, double value) {
  ClientMetric metric;
  for (const auto& [name, label_value] : labels) metric.label.push_back({name, label_value});
  if (family->type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family->metric.push_back(std::move(metric));
}

// The most recent step event of session `id` among its last few events, if any.
bool LatestStep(sessions::SessionManager& sessions, const std::string& id,
                sessions::SessionEventRecord* out) {
  constexpr uint64_t kLookBack = 16;
  absl::StatusOr<uint64_t> next = sessions.NextSeq(id);
  if (!next.ok() || *next == 0) return false;
  std::vector<sessions::SessionEventRecord> events;
  bool ended = false;
  const uint64_t from = *next > kLookBack ? *next - kLookBack : 0;
  if (!sessions.ReadEvents(id, from, kLookBack, &events, &ended).ok()) return false;
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    if (it->kind == sessions::SessionEventRecord::Kind::kStep) {
      *out = *it;
      return true;
    }
  }
  return false;
}

// Reads the engine's current state at scrape time.
class EngineCollector : public prometheus::Collectable {
 public:
  explicit EngineCollector(engine::Engine* engine) : engine_(engine) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    const engine::DaemonInfo info = engine_->Info();
    CollectDaemon(info, &out);
    CollectBackends(info, &out);
    CollectWorkers(info, &out);
    CollectQueues(info, &out);
    CollectSessions(&out);
    CollectEnergy(engine_->energy().Snapshot(), &out);
    return out;
  }

 private:
  static void CollectDaemon(const engine::DaemonInfo& info, std::vector<MetricFamily>* out) {
    MetricFamily build =
        NewFamily("anerd_build_info", "anerd version (value 1)", MetricType::Gauge);
    AddSample(&build, {{"version", info.version}}, 1);
    MetricFamily uptime =
        NewFamily("anerd_uptime_seconds", "Seconds since the daemon started", MetricType::Gauge);
    AddSample(&uptime, {}, info.uptime_seconds);
    MetricFamily hits =
        NewFamily("anerd_cache_hits_total", "Compile-cache lookups that found a compiled program",
                  MetricType::Counter);
    AddSample(&hits, {}, static_cast<double>(info.cache.hits));
    MetricFamily misses = NewFamily(
        "anerd_cache_misses_total",
        "Compile-cache lookups that found nothing (compile or recompile)", MetricType::Counter);
    AddSample(&misses, {}, static_cast<double>(info.cache.misses));
    MetricFamily evictions =
        NewFamily("anerd_cache_evictions_total", "Compiled programs evicted from memory",
                  MetricType::Counter);
    AddSample(&evictions, {}, static_cast<double>(info.cache.evictions));
    MetricFamily bytes = NewFamily("anerd_cache_bytes", "Estimated bytes of compiled programs held",
                                   MetricType::Gauge);
    AddSample(&bytes, {}, static_cast<double>(info.cache.bytes));
    MetricFamily stored =
        NewFamily("anerd_kernels_stored", "Kernels in the persistent store", MetricType::Gauge);
    AddSample(&stored, {}, static_cast<double>(info.cache.kernels_stored));
    MetricFamily blocking =
        NewFamily("anerd_blocking_io_on_executor_total",
                  "File I/O done on a device executor thread (a bug: common/blocking_io_guard.h)",
                  MetricType::Counter);
    AddSample(&blocking, {}, static_cast<double>(BlockingIoViolations()));
    for (MetricFamily* f :
         {&build, &uptime, &hits, &misses, &evictions, &bytes, &stored, &blocking}) {
      out->push_back(std::move(*f));
    }
  }

  static void CollectBackends(const engine::DaemonInfo& info, std::vector<MetricFamily>* out) {
    MetricFamily used =
        NewFamily("anerd_backend_compiles_used", "Compiles counted against the backend's budget",
                  MetricType::Gauge);
    MetricFamily budget =
        NewFamily("anerd_backend_compile_budget", "Compiles the backend allows (0 = unlimited)",
                  MetricType::Gauge);
    for (const engine::BackendSummary& b : info.backends) {
      AddSample(&used, {{"backend", b.name}}, static_cast<double>(b.compiles_used));
      AddSample(&budget, {{"backend", b.name}}, static_cast<double>(b.compile_budget));
    }
    out->push_back(std::move(used));
    out->push_back(std::move(budget));
  }

  static void CollectWorkers(const engine::DaemonInfo& info, std::vector<MetricFamily>* out) {
    MetricFamily restarts =
        NewFamily("anerd_worker_restarts_total",
                  "Backend worker replacements (budget recycles and crashes)", MetricType::Counter);
    MetricFamily crashes = NewFamily("anerd_worker_crashes_total",
                                     "Backend worker crashes or hangs", MetricType::Counter);
    MetricFamily used = NewFamily("anerd_worker_compiles_used",
                                  "Compiles used by the current backend worker", MetricType::Gauge);
    MetricFamily up = NewFamily("anerd_worker_up", "1 while the backend's worker process runs",
                                MetricType::Gauge);
    for (const engine::WorkerSummary& w : info.workers) {
      const Labels labels = {{"backend", w.backend}};
      AddSample(&restarts, labels, static_cast<double>(w.restarts));
      AddSample(&crashes, labels, static_cast<double>(w.crashes));
      AddSample(&used, labels, static_cast<double>(w.compiles_used));
      AddSample(&up, labels, w.pid > 0 ? 1 : 0);
    }
    for (MetricFamily* f : {&restarts, &crashes, &used, &up}) out->push_back(std::move(*f));
  }

  // Each backend executor's queue by priority class (device_queue.h).
  static void CollectQueues(const engine::DaemonInfo& info, std::vector<MetricFamily>* out) {
    MetricFamily depth =
        NewFamily("anerd_queue_depth", "Tasks waiting in the device queue", MetricType::Gauge);
    MetricFamily wait = NewFamily("anerd_queue_wait_seconds",
                                  "Time tasks waited in the device queue before they started",
                                  MetricType::Histogram);
    MetricFamily wait_max =
        NewFamily("anerd_queue_wait_max_seconds",
                  "Longest wait in the device queue since the daemon started", MetricType::Gauge);
    for (const engine::QueueSummary& q : info.queues) {
      for (int c = 0; c < engine::kNumTaskClasses; ++c) {
        const engine::QueueClassStats& s = q.classes[c];
        const Labels labels = {{"backend", q.backend},
                               {"class", engine::TaskClassName(static_cast<engine::TaskClass>(c))}};
        AddSample(&depth, labels, static_cast<double>(s.queued));
        AddSample(&wait_max, labels, s.wait_seconds_max);
        ClientMetric h;
        for (const auto& [name, value] : labels) h.label.push_back({name, value});
        h.histogram.sample_count = s.started;
        h.histogram.sample_sum = s.wait_seconds_sum;
        uint64_t cumulative = 0;
        for (size_t b = 0; b < s.wait_buckets.size(); ++b) {
          cumulative += s.wait_buckets[b];
          ClientMetric::Bucket bucket;
          bucket.cumulative_count = cumulative;
          bucket.upper_bound = b < engine::kWaitBucketBounds.size()
                                   ? engine::kWaitBucketBounds[b]
                                   : std::numeric_limits<double>::infinity();
          h.histogram.bucket.push_back(bucket);
        }
        wait.metric.push_back(std::move(h));
      }
    }
    for (MetricFamily* f : {&depth, &wait, &wait_max}) out->push_back(std::move(*f));
  }

  void CollectSessions(std::vector<MetricFamily>* out) const {
    MetricFamily active =
        NewFamily("anerd_session_active", "1 while the session is queued, compiling or running",
                  MetricType::Gauge);
    MetricFamily step = NewFamily("anerd_session_step", "Steps completed", MetricType::Gauge);
    MetricFamily loss =
        NewFamily("anerd_session_loss", "Loss of the latest step", MetricType::Gauge);
    MetricFamily step_time =
        NewFamily("anerd_session_step_seconds", "Wall time of the latest step", MetricType::Gauge);
    MetricFamily tokens = NewFamily("anerd_session_tokens_per_second",
                                    "Training throughput of the latest step", MetricType::Gauge);
    MetricFamily phases =
        NewFamily("anerd_session_phase_seconds", "Latest step's time by phase", MetricType::Gauge);
    MetricFamily step_joules =
        NewFamily("anerd_session_step_joules",
                  "Energy of the latest step (absent when not measured)", MetricType::Gauge);
    MetricFamily token_joules =
        NewFamily("anerd_session_joules_per_token",
                  "Energy per trained token of the latest step (absent when not measured)",
                  MetricType::Gauge);
    MetricFamily utilization =
        NewFamily("anerd_session_device_utilization",
                  "Latest step's FLOP rate over the backend's measured peak (absent without one)",
                  MetricType::Gauge);
    sessions::SessionManager& sessions = engine_->sessions();
    for (const sessions::SessionSnapshot& s : sessions.List()) {
      const Labels labels = {{"session", s.id}, {"name", s.name}};
      AddSample(&active, labels, sessions::IsActive(s.state) ? 1 : 0);
      AddSample(&step, labels, static_cast<double>(s.step));
      sessions::SessionEventRecord event;
      if (!LatestStep(sessions, s.id, &event)) continue;
      AddSample(&loss, labels, event.step.loss);
      AddSample(&step_time, labels, event.step.step_ms / 1000.0);
      AddSample(&tokens, labels, event.step.tokens_per_s);
      AddPhases(labels, event.step.phases, &phases);
      const sessions::StepObservations& o = event.observed;
      if (o.energy_j.has_value()) AddSample(&step_joules, labels, *o.energy_j);
      if (o.energy_j_per_token.has_value()) AddSample(&token_joules, labels, *o.energy_j_per_token);
      if (o.device_utilization.has_value()) {
        AddSample(&utilization, labels, *o.device_utilization);
      }
    }
    for (MetricFamily* f : {&active, &step, &loss, &step_time, &tokens, &phases, &step_joules,
                            &token_joules, &utilization}) {
      out->push_back(std::move(*f));
    }
  }

  // The energy source's counters: cumulative joules and the latest interval's watts per domain,
  // and whether it can be read (0 with the reason as a label: never a zero energy reading).
  static void CollectEnergy(const telemetry::EnergySnapshot& e, std::vector<MetricFamily>* out) {
    MetricFamily available = NewFamily(
        "anerd_energy_source_available",
        "1 when the energy telemetry source can be read; 0 with the reason", MetricType::Gauge);
    AddSample(&available, {{"source", e.source}, {"unavailable", e.unavailable}},
              e.available() ? 1 : 0);
    out->push_back(std::move(available));
    if (!e.available()) return;
    MetricFamily joules =
        NewFamily("anerd_energy_joules_total",
                  "Energy of the source's domain since the daemon started sampling (whole package "
                  "or chip)",
                  MetricType::Counter);
    MetricFamily watts = NewFamily("anerd_power_watts",
                                   "Average power of the domain over the latest sampled interval",
                                   MetricType::Gauge);
    const std::map<std::string, double> w = e.Watts();
    for (const auto& [domain, j] : e.latest->joules) {
      const Labels labels = {{"source", e.source}, {"domain", domain}};
      AddSample(&joules, labels, j);
      if (auto it = w.find(domain); it != w.end()) AddSample(&watts, labels, it->second);
    }
    out->push_back(std::move(joules));
    out->push_back(std::move(watts));
  }

  static void AddPhases(const Labels& labels, const training::PhaseTimes& p, MetricFamily* out) {
    const std::pair<const char*, double> phases[] = {
        {"kernel", p.kernel_ms}, {"io", p.io_ms},   {"rms", p.rms_ms},
        {"elem", p.elem_ms},     {"cls", p.cls_ms}, {"dw_wait", p.dw_wait_ms},
        {"optim", p.optim_ms}};
    for (const auto& [phase, ms] : phases) {
      Labels with_phase = labels;
      with_phase.emplace_back("phase", phase);
      AddSample(out, with_phase, ms / 1000.0);
    }
    // Measured only: absent from steps logged before the split existed.
    const std::pair<const char*, std::optional<double>> passes[] = {
        {"kernel_fwd", p.kernel_fwd_ms}, {"kernel_bwd", p.kernel_bwd_ms}};
    for (const auto& [phase, ms] : passes) {
      if (!ms.has_value()) continue;
      Labels with_phase = labels;
      with_phase.emplace_back("phase", phase);
      AddSample(out, with_phase, *ms / 1000.0);
    }
  }

  engine::Engine* engine_;
};

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

// The access rule of the file comment in metrics.h.
HttpVerdict Authorize(const MetricsAccess& access, bool loopback, const HttpRequestInfo& request) {
  if (!request.authorization.empty()) {
    std::optional<bool> admin;
    if (access.token_is_admin) admin = access.token_is_admin(request.authorization);
    if (!admin.has_value()) {
      return {false, "401 Unauthorized", "bearer token not accepted\n"};
    }
    if (!*admin) {
      return {false, "403 Forbidden",
              "the metrics page shows every client's sessions: it needs an admin token "
              "(anectl token create NAME --admin)\n"};
    }
    return {};
  }
  if (loopback) {
    std::optional<uint32_t> uid = LoopbackPeerUid(request.connection);
    if (uid.has_value() && *uid == access.daemon_uid) return {};
  }
  return {false, "401 Unauthorized",
          "send 'Authorization: Bearer TOKEN' with an admin token from anerd's --auth-tokens "
          "file (only the daemon's own user may scrape loopback without one)\n"};
}

}  // namespace

struct MetricsServer::State {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<EngineCollector> collector;
  std::unique_ptr<HttpEndpoint> endpoint;
  prometheus::Family<prometheus::Counter>* rpc_requests = nullptr;
  prometheus::Family<prometheus::Histogram>* rpc_latency = nullptr;
  prometheus::Family<prometheus::Counter>* compiles = nullptr;
  prometheus::Family<prometheus::Histogram>* compile_latency = nullptr;
  prometheus::Family<prometheus::Histogram>* eval_latency = nullptr;
  // Counters other components own (AddCounterSource), read at scrape time.
  absl::Mutex sources_mu;
  std::vector<MetricFamily> source_families ABSL_GUARDED_BY(sources_mu);
  std::vector<std::function<double()>> source_reads ABSL_GUARDED_BY(sources_mu);

  void CollectSources(std::vector<MetricFamily>* out) {
    absl::MutexLock lock(&sources_mu);
    for (size_t i = 0; i < source_families.size(); ++i) {
      MetricFamily family = source_families[i];
      AddSample(&family, {}, source_reads[i]());
      out->push_back(std::move(family));
    }
  }
};

absl::Status CheckMetricsAddress(const std::string& listen, bool allow_non_loopback) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError("--metrics-listen wants HOST:PORT, got '" + listen + "'");
  }
  if (!allow_non_loopback && !IsLoopbackHost(absl::string_view(listen).substr(0, colon))) {
    return absl::InvalidArgumentError(
        "--metrics-listen " + listen +
        " is not a loopback address; use 127.0.0.1:PORT, or pass --metrics-allow-remote "
        "(with --auth-tokens: every scrape then needs an admin token)");
  }
  return absl::OkStatus();
}

MetricsServer::MetricsServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

MetricsServer::~MetricsServer() { state_->endpoint.reset(); }

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                    bool allow_non_loopback,
                                                                    engine::Engine* engine,
                                                                    MetricsAccess access) {
  if (absl::Status s = CheckMetricsAddress(listen, allow_non_loopback); !s.ok()) return s;
  auto state = std::make_unique<State>();
  prometheus::Registry& r = *state->registry;
  state->rpc_requests = &prometheus::BuildCounter()
                             .Name("anerd_rpc_requests_total")
                             .Help("Finished RPCs by method and status code")
                             .Register(r);
  state->rpc_latency = &prometheus::BuildHistogram()
                            .Name("anerd_rpc_latency_seconds")
                            .Help("RPC latency (call start to status) by method and status code")
                            .Register(r);
  state->compiles = &prometheus::BuildCounter()
                         .Name("anerd_kernel_compiles_total")
                         .Help("Backend compiles run (fresh and lazy recompiles)")
                         .Register(r);
  state->compile_latency = &prometheus::BuildHistogram()
                                .Name("anerd_kernel_compile_seconds")
                                .Help("Backend compile time")
                                .Register(r);
  state->eval_latency = &prometheus::BuildHistogram()
                             .Name("anerd_kernel_eval_seconds")
                             .Help("Kernel evaluation time on the backend")
                             .Register(r);
  state->collector = std::make_shared<EngineCollector>(engine);
  State* raw = state.get();
  HttpEndpointOptions options;
  options.path = "/metrics";
  options.render = [raw] {
    std::vector<MetricFamily> families = raw->registry->Collect();
    for (MetricFamily& f : raw->collector->Collect()) families.push_back(std::move(f));
    raw->CollectSources(&families);
    return prometheus::TextSerializer().Serialize(families);
  };
  const bool loopback = IsLoopbackHost(absl::string_view(listen).substr(0, listen.rfind(':')));
  options.authorize = [access = std::move(access), loopback](const HttpRequestInfo& request) {
    return Authorize(access, loopback, request);
  };
  ANERD_ASSIGN_OR_RETURN(state->endpoint, HttpEndpoint::Start(listen, std::move(options)));
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(state)));
}

void MetricsServer::ObserveRpc(const std::string& method, const std::string& code,
                               double latency_ms) {
  const std::map<std::string, std::string> labels = {{"method", method}, {"code", code}};
  state_->rpc_requests->Add(labels).Increment();
  state_->rpc_latency->Add(labels, LatencyBuckets()).Observe(latency_ms / 1000.0);
}

void MetricsServer::ObserveCompile(const std::string& backend, double compile_ms) {
  state_->compiles->Add({{"backend", backend}}).Increment();
  state_->compile_latency->Add({{"backend", backend}}, CompileBuckets())
      .Observe(compile_ms / 1000.0);
}

void MetricsServer::ObserveEval(const std::string& backend, double execute_ms) {
  state_->eval_latency->Add({{"backend", backend}}, LatencyBuckets()).Observe(execute_ms / 1000.0);
}

void MetricsServer::AddCounterSource(const std::string& name, const std::string& help,
                                     std::function<double()> read) {
  absl::MutexLock lock(&state_->sources_mu);
  state_->source_families.push_back(NewFamily(name, help, MetricType::Counter));
  state_->source_reads.push_back(std::move(read));
}

int MetricsServer::port() const { return state_->endpoint->port(); }

}  // namespace anerd::metrics
