#include "server/probes/probe_store.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/store/sqlite.h"
#include "server/store/store.h"

namespace anerd::probes {
namespace {

using Json = nlohmann::ordered_json;

Json RowJson(const ProbeRow& r) {
  Json j = {{"probe", r.probe},
            {"config", r.config},
            {"variant", r.variant},
            {"channels", r.channels},
            {"spatial", r.spatial},
            {"depth", r.depth},
            {"weight_mb", r.weight_mb},
            {"act_mb", r.act_mb},
            {"total_mb", r.total_mb},
            {"gflop", r.gflop},
            {"ms_per_eval", r.ms_per_eval},
            {"ms_min", r.ms_min},
            {"tflops", r.tflops},
            {"pct_peak", r.pct_peak},
            {"gflops_per_mb", r.gflops_per_mb},
            {"ratio", r.ratio},
            {"p50_us", r.p50_us},
            {"p90_us", r.p90_us},
            {"p99_us", r.p99_us},
            {"iterations", r.iterations}};
  // Optional fields are absent when unset (older documents lack them too).
  if (r.hw_us_per_eval.has_value()) {
    j["hw_us_per_eval"] = *r.hw_us_per_eval;
    j["hw_time_source"] = r.hw_time_source;
  }
  if (r.qos.has_value()) j["qos"] = *r.qos;
  if (r.watts.has_value()) {
    j["watts"] = *r.watts;
    j["energy_source"] = r.energy_source;
  }
  if (r.tflops_per_watt.has_value()) j["tflops_per_watt"] = *r.tflops_per_watt;
  if (!r.energy_unavailable.empty()) j["energy_unavailable"] = r.energy_unavailable;
  return j;
}

// Non-throwing accessors: a missing or mistyped field reads as zero / empty (documents are
// written by this file; the version check guards the layout).
double Num(const Json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}
int64_t Int(const Json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}
std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
const Json& Arr(const Json& j, const char* key) {
  static const Json* empty = new Json(Json::array());
  if (!j.is_object()) return *empty;
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : *empty;
}

ProbeRow RowFromJson(const Json& j) {
  ProbeRow r;
  r.probe = Str(j, "probe");
  r.config = Str(j, "config");
  r.variant = Str(j, "variant");
  r.channels = Int(j, "channels");
  r.spatial = Int(j, "spatial");
  r.depth = static_cast<int>(Int(j, "depth"));
  for (auto [key, field] : {std::pair{"weight_mb", &r.weight_mb},
                            {"act_mb", &r.act_mb},
                            {"total_mb", &r.total_mb},
                            {"gflop", &r.gflop},
                            {"ms_per_eval", &r.ms_per_eval},
                            {"ms_min", &r.ms_min},
                            {"tflops", &r.tflops},
                            {"pct_peak", &r.pct_peak},
                            {"gflops_per_mb", &r.gflops_per_mb},
                            {"ratio", &r.ratio},
                            {"p50_us", &r.p50_us},
                            {"p90_us", &r.p90_us},
                            {"p99_us", &r.p99_us}}) {
    *field = Num(j, key);
  }
  r.iterations = static_cast<int>(Int(j, "iterations"));
  if (j.is_object() && j.contains("hw_us_per_eval") && j["hw_us_per_eval"].is_number()) {
    r.hw_us_per_eval = j["hw_us_per_eval"].get<double>();
    r.hw_time_source = Str(j, "hw_time_source");
  }
  if (j.is_object() && j.contains("watts") && j["watts"].is_number()) {
    r.watts = j["watts"].get<double>();
    r.energy_source = Str(j, "energy_source");
  }
  if (j.is_object() && j.contains("tflops_per_watt") && j["tflops_per_watt"].is_number()) {
    r.tflops_per_watt = j["tflops_per_watt"].get<double>();
  }
  r.energy_unavailable = Str(j, "energy_unavailable");
  if (j.is_object() && j.contains("qos") && j["qos"].is_number_unsigned()) {
    r.qos = static_cast<unsigned int>(std::min<uint64_t>(j["qos"].get<uint64_t>(), 63));
  }
  return r;
}

Json SummaryJson(const ProbeSummary& s) {
  Json findings = Json::array();
  for (const Finding& f : s.findings) {
    findings.push_back(
        {{"probe", f.probe}, {"kind", f.kind}, {"text", f.text}, {"value", f.value}});
  }
  Json spills = Json::array();
  for (const SpillPoint& p : s.spills) {
    spills.push_back({{"index", p.index},
                      {"x_before", p.x_before},
                      {"x_after", p.x_after},
                      {"level_before", p.level_before},
                      {"level_after", p.level_after},
                      {"drop", p.drop}});
  }
  return {{"probe", s.probe},
          {"findings", findings},
          {"spills", spills},
          {"peak_tflops", s.peak_tflops},
          {"peak_source", s.peak_source},
          {"wall_seconds", s.wall_seconds},
          {"rows", s.rows}};
}

ProbeSummary SummaryFromJson(const Json& j) {
  ProbeSummary s;
  s.probe = Str(j, "probe");
  for (const Json& f : Arr(j, "findings")) {
    s.findings.push_back({Str(f, "probe"), Str(f, "kind"), Str(f, "text"), Num(f, "value")});
  }
  for (const Json& p : Arr(j, "spills")) {
    s.spills.push_back({static_cast<size_t>(Int(p, "index")), Num(p, "x_before"), Num(p, "x_after"),
                        Num(p, "level_before"), Num(p, "level_after"), Num(p, "drop")});
  }
  s.peak_tflops = Num(j, "peak_tflops");
  s.peak_source = Str(j, "peak_source");
  s.wall_seconds = Num(j, "wall_seconds");
  s.rows = static_cast<int>(Int(j, "rows"));
  return s;
}

Json FingerprintJson(const Fingerprint& f) {
  return {{"os", f.os},
          {"cpu", f.cpu},
          {"cpu_cores", f.cpu_cores},
          {"caches", f.caches},
          {"backend", f.backend},
          {"backend_version", f.backend_version},
          {"device", f.device},
          {"anerd_version", f.anerd_version}};
}

Fingerprint FingerprintFromJson(const Json& j) {
  Fingerprint f;
  f.os = Str(j, "os");
  f.cpu = Str(j, "cpu");
  f.cpu_cores = static_cast<int>(Int(j, "cpu_cores"));
  f.caches = Str(j, "caches");
  f.backend = Str(j, "backend");
  f.backend_version = Str(j, "backend_version");
  f.device = Str(j, "device");
  f.anerd_version = Str(j, "anerd_version");
  return f;
}

Json OptionsJson(const ProbeOptions& o) {
  Json grid = Json::array();
  for (const GridPoint& p : o.grid) grid.push_back({p.channels, p.spatial, p.depth});
  Json out = {{"probe", ProbeKindName(o.kind)},
              {"grid", grid},
              {"repeat", o.repeat},
              {"row_budget_seconds", o.row_budget_seconds},
              {"peak_tflops", o.peak_tflops},
              {"seed", o.seed}};
  if (o.warmup) out["warmup"] = *o.warmup;
  return out;
}

absl::StatusOr<ProbeOptions> OptionsFromJson(const Json& j) {
  ProbeOptions o;
  ANERD_ASSIGN_OR_RETURN(o.kind, ProbeKindFromName(Str(j, "probe"), "options.probe"));
  for (const Json& p : Arr(j, "grid")) {
    if (!p.is_array() || p.size() != 3 || !p[0].is_number() || !p[1].is_number() ||
        !p[2].is_number()) {
      return absl::DataLossError("probe result: malformed grid point");
    }
    o.grid.push_back({p[0].get<int64_t>(), p[1].get<int64_t>(), p[2].get<int>()});
  }
  o.repeat = static_cast<int>(Int(j, "repeat"));
  if (j.is_object() && j.contains("warmup")) o.warmup = static_cast<int>(Int(j, "warmup"));
  o.row_budget_seconds = Num(j, "row_budget_seconds");
  o.peak_tflops = Num(j, "peak_tflops");
  o.seed = static_cast<uint64_t>(Int(j, "seed"));
  return o;
}

}  // namespace

std::string NewProbeResultId(int64_t unix_ms) {
  thread_local std::mt19937 rng{std::random_device{}()};
  return absl::StrCat(
      absl::FormatTime("%Y%m%d-%H%M%S", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone()), "-",
      absl::StrFormat("%04x", rng() & 0xffff));
}

std::string ProbeResultToJson(const ProbeResult& result) {
  Json rows = Json::array();
  for (const ProbeRow& r : result.rows) rows.push_back(RowJson(r));
  Json doc = {{"schema_version", kProbeDocumentVersion},
              {"id", result.id},
              {"created_unix_ms", result.created_ms},
              {"options", OptionsJson(result.options)},
              {"fingerprint", FingerprintJson(result.fingerprint)},
              {"rows", rows},
              {"summary", SummaryJson(result.summary)}};
  return doc.dump();
}

absl::StatusOr<ProbeResult> ProbeResultFromJson(absl::string_view json) {
  const Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::DataLossError("probe result document is not a JSON object");
  }
  if (Int(doc, "schema_version") != kProbeDocumentVersion) {
    return absl::DataLossError(absl::StrCat("probe result document has schema_version ",
                                            Int(doc, "schema_version"), "; expected ",
                                            kProbeDocumentVersion));
  }
  for (const char* key : {"id", "created_unix_ms", "options", "fingerprint", "rows", "summary"}) {
    if (!doc.contains(key))
      return absl::DataLossError(absl::StrCat("probe result lacks '", key, "'"));
  }
  ProbeResult r;
  r.id = Str(doc, "id");
  r.created_ms = Int(doc, "created_unix_ms");
  ANERD_ASSIGN_OR_RETURN(r.options, OptionsFromJson(doc["options"]));
  r.fingerprint = FingerprintFromJson(doc["fingerprint"]);
  for (const Json& row : Arr(doc, "rows")) r.rows.push_back(RowFromJson(row));
  r.summary = SummaryFromJson(doc["summary"]);
  return r;
}

ProbeStore::ProbeStore(store::Store* store, std::unique_ptr<store::Store> owned)
    : owned_(std::move(owned)), store_(store) {}

ProbeStore::~ProbeStore() = default;

absl::Status ProbeResultNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("no probe result '", id, "'"));
}

absl::StatusOr<std::unique_ptr<ProbeStore>> ProbeStore::Open(store::Store* store) {
  return std::unique_ptr<ProbeStore>(new ProbeStore(store, nullptr));
}

absl::StatusOr<std::unique_ptr<ProbeStore>> ProbeStore::Open(const std::string& state_dir) {
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> owned, store::Store::Open(state_dir));
  store::Store* store = owned.get();
  return std::unique_ptr<ProbeStore>(new ProbeStore(store, std::move(owned)));
}

absl::Status ProbeStore::Put(const ProbeResult& result) {
  if (result.id.empty()) return absl::InvalidArgumentError("probe result has no id");
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<store::Statement> q,
      store::Statement::Prepare(store_->db().get(),
                                "INSERT INTO probe_results (id, probe, backend, created_ms, "
                                "document, owner) VALUES (?, ?, ?, ?, ?, ?)"));
  q->BindText(1, result.id);
  q->BindText(2, ProbeKindName(result.options.kind));
  q->BindText(3, result.fingerprint.backend);
  q->BindInt(4, result.created_ms);
  q->BindText(5, ProbeResultToJson(result));
  q->BindText(6, result.owner);
  absl::Status s = q->Run();
  if (!s.ok() && absl::StrContains(s.message(), "UNIQUE")) {
    return absl::AlreadyExistsError(absl::StrCat("probe result ", result.id, " already exists"));
  }
  return s;
}

absl::StatusOr<ProbeResult> ProbeStore::Get(const std::string& id) const {
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<store::Statement> q,
      store::Statement::Prepare(store_->db().get(),
                                "SELECT document, owner FROM probe_results WHERE id = ?"));
  q->BindText(1, id);
  ANERD_ASSIGN_OR_RETURN(bool has_row, q->Step());
  if (!has_row) return ProbeResultNotFound(id);
  ANERD_ASSIGN_OR_RETURN(ProbeResult r, ProbeResultFromJson(q->ColumnText(0)));
  r.owner = q->ColumnText(1);
  return r;
}

absl::StatusOr<std::vector<ProbeResult>> ProbeStore::List(const std::string& probe, int limit,
                                                          const std::string& owner) const {
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<store::Statement> q,
      store::Statement::Prepare(store_->db().get(),
                                "SELECT document, owner FROM probe_results WHERE (?1 = '' OR "
                                "probe = ?1) AND (?3 = '' OR owner = ?3) "
                                "ORDER BY created_ms DESC, id DESC LIMIT ?2"));
  q->BindText(1, probe);
  q->BindInt(2, limit);
  q->BindText(3, owner);
  std::vector<ProbeResult> out;
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool has_row, q->Step());
    if (!has_row) break;
    ANERD_ASSIGN_OR_RETURN(ProbeResult r, ProbeResultFromJson(q->ColumnText(0)));
    r.owner = q->ColumnText(1);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace anerd::probes
