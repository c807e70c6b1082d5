#include "server/ui/ui_json.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/sessions/event_codec.h"
#include "server/sessions/session.h"

namespace anerd::ui {
namespace {

using Json = nlohmann::json;

// Non-finite numbers have no JSON form; the page treats null as "no value".
Json Number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

// Invalid UTF-8 (a sample cut mid-character, an odd session name) is replaced, never thrown on.
std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json SessionJson(const sessions::SessionSnapshot& s) {
  const training::ModelConfig& m = s.spec.model;
  Json j = {{"id", s.id},
            {"name", s.name},
            {"backend", s.backend},
            {"owner", s.owner},
            {"state", sessions::SessionStateName(s.state)},
            {"step", s.step},
            {"total_steps", s.total_steps},
            {"last_loss", Number(s.last_loss)},
            {"best_loss", Number(s.best_loss)},
            {"best_val_loss", s.best_val_loss ? Number(*s.best_val_loss) : Json(nullptr)},
            {"best_val_step", s.best_val_step},
            {"started_ms", s.started_ms},
            {"elapsed_seconds", Number(s.elapsed_seconds)},
            {"eta_seconds", Number(s.eta_seconds)},
            {"checkpoint_step", s.checkpoint_step},
            {"error", s.error},
            {"model",
             {{"name", m.name},
              {"dim", m.dim},
              {"hidden", m.hidden},
              {"layers", m.layers},
              {"heads", m.heads},
              {"kv_heads", m.kv_heads},
              {"vocab", m.vocab},
              {"seq", m.seq}}},
            {"lr", Number(s.spec.lr)},
            {"accum", s.spec.accum},
            {"eval_every", s.spec.eval_every},
            {"sample_every", s.spec.sample_every}};
  j["last_sample"] = nullptr;
  if (s.last_sample.has_value()) {
    j["last_sample"] = {{"step", s.last_sample->step},
                        {"prompt", s.last_sample->prompt},
                        {"text", s.last_sample->text},
                        {"tokens", s.last_sample->tokens}};
  }
  return j;
}

}  // namespace

std::string SessionsJson(const std::vector<sessions::SessionSnapshot>& sessions) {
  Json list = Json::array();
  for (const sessions::SessionSnapshot& s : sessions) list.push_back(SessionJson(s));
  return Dump(Json{{"sessions", std::move(list)}});
}

std::string EventsJson(const std::string& session_id,
                       const std::vector<sessions::SessionEventRecord>& events, uint64_t next,
                       bool ended) {
  // The event lines are JSON objects already (event_codec.h): spliced in, not re-encoded.
  std::string out = absl::StrCat("{\"session\":", Dump(Json(session_id)), ",\"events\":[");
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0) out += ',';
    out += sessions::EncodeEventLine(events[i]);
  }
  absl::StrAppend(&out, "],\"next\":", next, ",\"ended\":", ended ? "true" : "false", "}");
  return out;
}

std::string InfoJson(const engine::DaemonInfo& info, const UiCounters& counters) {
  Json backends = Json::array();
  for (const engine::BackendSummary& b : info.backends) {
    backends.push_back({{"name", b.name},
                        {"version", b.version},
                        {"device", b.device},
                        {"default", b.is_default},
                        {"compile_budget", b.compile_budget},
                        {"compiles_used", b.compiles_used}});
  }
  Json workers = Json::array();
  for (const engine::WorkerSummary& w : info.workers) {
    workers.push_back({{"backend", w.backend},
                       {"pid", w.pid},
                       {"generation", w.generation},
                       {"compiles_used", w.compiles_used},
                       {"compile_budget", w.compile_budget},
                       {"uptime_seconds", Number(w.uptime_seconds)},
                       {"restarts", w.restarts},
                       {"crashes", w.crashes},
                       {"quarantined", w.quarantined},
                       {"activity", w.activity},
                       {"recent_restart_reasons", w.recent_restart_reasons}});
  }
  Json unavailable = Json::array();
  for (const auto& [name, reason] : info.unavailable_backends) {
    unavailable.push_back({{"name", name}, {"reason", reason}});
  }
  const engine::CacheSummary& c = info.cache;
  Json j = {{"version", info.version},
            {"build", info.build},
            {"os", info.os},
            {"uptime_seconds", Number(info.uptime_seconds)},
            {"default_backend", info.default_backend},
            {"backends", std::move(backends)},
            {"workers", std::move(workers)},
            {"unavailable_backends", std::move(unavailable)},
            {"cache",
             {{"entries", c.entries},
              {"bytes", c.bytes},
              {"capacity_bytes", c.capacity_bytes},
              {"hits", c.hits},
              {"misses", c.misses},
              {"evictions", c.evictions},
              {"kernels_stored", c.kernels_stored}}},
            {"ui",
             {{"clients", counters.clients},
              {"dropped_total", counters.dropped_total},
              {"client_dropped", counters.client_dropped}}}};
  return Dump(j);
}

std::string ProbesJson(const std::vector<probes::ProbeResult>& results) {
  Json list = Json::array();
  for (const probes::ProbeResult& r : results) {
    Json doc = Json::parse(probes::ProbeResultToJson(r), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) continue;
    doc["owner"] = r.owner;
    list.push_back(std::move(doc));
  }
  return Dump(Json{{"probes", std::move(list)}});
}

std::string ErrorJson(const std::string& message) { return Dump(Json{{"error", message}}); }

}  // namespace anerd::ui
