#include "server/sessions/event_codec.h"

#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace anerd::sessions {
namespace {

using Json = nlohmann::json;
using Kind = SessionEventRecord::Kind;

// Larger logs are refused rather than read (each record is a few hundred bytes: ~3M steps).
constexpr int64_t kMaxEventLogBytes = int64_t{1} << 30;
constexpr size_t kStepFields = 11;
constexpr size_t kPhaseFields = 7;

Json Number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("field '", field, "' ", why));
}

// A double written by Number(); `null` (what older logs hold for NaN) reads as NaN.
absl::Status GetDouble(const Json& j, absl::string_view field, double* out) {
  if (j.is_number()) {
    *out = j.get<double>();
  } else if (j.is_null()) {
    *out = std::numeric_limits<double>::quiet_NaN();
  } else if (j.is_string() && j.get_ref<const std::string&>() == "nan") {
    *out = std::numeric_limits<double>::quiet_NaN();
  } else if (j.is_string() && j.get_ref<const std::string&>() == "inf") {
    *out = std::numeric_limits<double>::infinity();
  } else if (j.is_string() && j.get_ref<const std::string&>() == "-inf") {
    *out = -std::numeric_limits<double>::infinity();
  } else {
    return Bad(field, "is not a number");
  }
  return absl::OkStatus();
}

absl::Status GetInt(const Json& j, absl::string_view field, int64_t* out) {
  if (j.is_number_integer()) {
    *out = j.get<int64_t>();  // unsigned values above INT64_MAX are refused below
    if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t{INT64_MAX}) {
      return Bad(field, "is out of range");
    }
    return absl::OkStatus();
  }
  return Bad(field, "is not an integer");
}

absl::Status GetValue(const Json& j, absl::string_view field, double* out) {
  return GetDouble(j, field, out);
}
absl::Status GetValue(const Json& j, absl::string_view field, int64_t* out) {
  return GetInt(j, field, out);
}
absl::Status GetValue(const Json& j, absl::string_view field, std::optional<double>* out) {
  double v = 0;
  ANERD_RETURN_IF_ERROR(GetDouble(j, field, &v));
  *out = v;
  return absl::OkStatus();
}
absl::Status GetValue(const Json& j, absl::string_view field, std::optional<int64_t>* out) {
  int64_t v = 0;
  ANERD_RETURN_IF_ERROR(GetInt(j, field, &v));
  *out = v;
  return absl::OkStatus();
}
absl::Status GetValue(const Json& j, absl::string_view field, bool* out) {
  if (!j.is_boolean()) return Bad(field, "is not a boolean");
  *out = j.get<bool>();
  return absl::OkStatus();
}

Json ToJson(double v) { return Number(v); }
Json ToJson(int64_t v) { return v; }
Json ToJson(bool v) { return v; }
Json ToJson(const std::optional<double>& v) { return Number(*v); }
Json ToJson(const std::optional<int64_t>& v) { return *v; }

// Optional fields are written only when set (an unset one reads back as unset).
template <typename T>
bool Present(const T&) {
  return true;
}
bool Present(const std::optional<double>& v) { return v.has_value(); }
bool Present(const std::optional<int64_t>& v) { return v.has_value(); }
bool Present(const std::string& v) { return !v.empty(); }

// The step event's named fields, in the order they are written. Adding a field to the step event
// is one line here: logs written before it lack the field and read it as its default.
template <typename Record, typename Visitor>
void VisitStepFields(Record& e, Visitor&& v) {
  auto& r = e.step;
  auto& p = r.phases;
  v("step", r.step);
  v("loss", r.loss);
  v("lr", r.lr);
  v("grad_norm", r.grad_norm);
  v("loss_scale", r.loss_scale);
  v("skipped", r.skipped);
  v("step_ms", r.step_ms);
  v("tokens_per_s", r.tokens_per_s);
  v("flops", r.flops);
  v("tflops", r.tflops);
  v("queued_ms", e.queued_ms);
  v("kernel_ms", p.kernel_ms);
  v("io_ms", p.io_ms);
  v("rms_ms", p.rms_ms);
  v("elem_ms", p.elem_ms);
  v("cls_ms", p.cls_ms);
  v("dw_wait_ms", p.dw_wait_ms);
  v("optim_ms", p.optim_ms);
  v("kernel_hw_ms", p.kernel_hw_ms);  // the device's own time (issue 18): unset without a counter
  v("hw_simulated", p.hw_simulated);
  // Data-parallel steps (issue 24): written only when the step ran on more than one rank.
  v("ranks", r.ranks);
  v("allreduce_ms", p.allreduce_ms);
  v("allreduce_bytes", r.allreduce_bytes);
  v("slowest_rank", r.slowest_rank);
  v("slowest_rank_ms", r.slowest_rank_ms);
  v("fastest_rank_ms", r.fastest_rank_ms);
  // Overlapped reduction (issue 24 item 2): written only with an overlapped reducer.
  v("allreduce_total_ms", p.allreduce_total_ms);
  v("allreduce_hidden_ms", p.allreduce_hidden_ms);
  v("allreduce_buckets", r.allreduce_buckets);
  v("kernel_fwd_ms", p.kernel_fwd_ms);
  v("kernel_bwd_ms", p.kernel_bwd_ms);
  auto& o = e.observed;  // issue 21: written only when measured
  v("compile_ms", o.compile_ms);
  v("compile_share", o.compile_share);
  v("peak_tflops", o.peak_tflops);
  v("peak_source", o.peak_source);
  v("device_utilization", o.device_utilization);
  v("energy_j", o.energy_j);
  v("energy_j_per_token", o.energy_j_per_token);
  v("power_w", o.power_w);
  v("energy_source", o.energy_source);
  v("energy_unavailable", o.energy_unavailable);
  v("thermal_state", o.thermal_state);
}

absl::Status GetValue(const Json& j, absl::string_view field, std::string* out) {
  if (!j.is_string()) return Bad(field, "is not a string");
  *out = j.get<std::string>();
  return absl::OkStatus();
}
Json ToJson(const std::string& v) { return v; }

template <typename Record, typename Visitor>
void VisitEvalFields(Record& e, Visitor&& v) {
  auto& r = e.eval.report;
  v("step", e.eval.step);
  v("loss", r.loss);
  v("perplexity", r.perplexity);
  v("sequences", r.sequences);
  v("tokens", r.tokens);
  v("source", r.source);
  v("eval_ms", r.eval_ms);
  v("best", e.eval.best);
}

template <typename Record, typename Visitor>
void VisitSampleFields(Record& e, Visitor&& v) {
  v("step", e.sample.step);
  v("prompt", e.sample.prompt);
  v("text", e.sample.text);
  v("tokens", e.sample.tokens);
  v("sample_ms", e.sample.sample_ms);
}

// An "eval" or "sample" object: named fields, only "step" required.
template <typename VisitFn>
absl::Status ParseNamedObject(const Json& j, const char* key, SessionEventRecord* e,
                              VisitFn visit) {
  const auto obj = j.find(key);
  if (obj == j.end() || !obj->is_object()) return Bad(key, "is not an object");
  if (obj->find("step") == obj->end()) return Bad(absl::StrCat(key, ".step"), "is missing");
  absl::Status st;
  visit(*e, [&](const char* name, auto& value) {
    const auto it = obj->find(name);
    if (st.ok() && it != obj->end()) st = GetValue(*it, absl::StrCat(key, ".", name), &value);
  });
  return st;
}

template <typename VisitFn>
Json NamedObject(const SessionEventRecord& e, VisitFn visit) {
  Json fields = Json::object();
  visit(e, [&](const char* name, const auto& value) { fields[name] = ToJson(value); });
  return fields;
}

// Schema 2: "step" is an object of named fields; only the step number is required.
absl::Status ParseNamedStep(const Json& fields, SessionEventRecord* e) {
  if (fields.find("step") == fields.end()) return Bad("step.step", "is missing");
  absl::Status st;
  VisitStepFields(*e, [&](const char* name, auto& value) {
    const auto it = fields.find(name);
    if (st.ok() && it != fields.end()) st = GetValue(*it, absl::StrCat("step.", name), &value);
  });
  return st;
}

// Schema 1: positional arrays of exactly 11 and 7 values.
absl::Status ParsePositionalStep(const Json& j, SessionEventRecord* e) {
  const auto s = j.find("step");
  const auto p = j.find("phases");
  if (s == j.end() || !s->is_array() || s->size() != kStepFields) {
    return Bad("step", "is not an array of 11 values");
  }
  if (p == j.end() || !p->is_array() || p->size() != kPhaseFields) {
    return Bad("phases", "is not an array of 7 values");
  }
  training::StepReport& r = e->step;
  if (!(*s)[5].is_boolean()) return Bad("step[5] (skipped)", "is not a boolean");
  r.skipped = (*s)[5].get<bool>();
  absl::Status st = GetInt((*s)[0], "step[0] (step)", &r.step);
  double* const doubles[] = {&r.loss,   &r.lr,        &r.grad_norm,    &r.loss_scale,
                             nullptr,   &r.step_ms,   &r.tokens_per_s, &r.flops,
                             &r.tflops, &e->queued_ms};
  for (size_t i = 1; i < kStepFields && st.ok(); ++i) {
    if (doubles[i - 1] != nullptr) {
      st = GetDouble((*s)[i], absl::StrCat("step[", i, "]"), doubles[i - 1]);
    }
  }
  training::PhaseTimes& ph = r.phases;
  double* const phases[] = {&ph.kernel_ms, &ph.io_ms,      &ph.rms_ms,  &ph.elem_ms,
                            &ph.cls_ms,    &ph.dw_wait_ms, &ph.optim_ms};
  for (size_t i = 0; i < kPhaseFields && st.ok(); ++i) {
    st = GetDouble((*p)[i], absl::StrCat("phases[", i, "]"), phases[i]);
  }
  return st;
}

absl::Status ParseStep(const Json& j, SessionEventRecord* e) {
  const auto s = j.find("step");
  if (s != j.end() && s->is_object()) return ParseNamedStep(*s, e);
  return ParsePositionalStep(j, e);
}

}  // namespace

std::vector<std::string> StepEventFieldNames() {
  std::vector<std::string> names;
  const SessionEventRecord e;
  VisitStepFields(e, [&](const char* name, const auto&) { names.push_back(name); });
  return names;
}

SessionEventRecord WarningEvent(std::string text) {
  SessionEventRecord e;
  e.kind = Kind::kWarning;
  e.text = std::move(text);
  return e;
}

std::string EncodeEventLine(const SessionEventRecord& e) {
  Json j = {{"v", kEventSchemaVersion},
            {"seq", e.seq},
            {"ms", e.unix_ms},
            {"kind", static_cast<int>(e.kind)}};
  if (e.kind == Kind::kStep) {
    Json fields = Json::object();
    VisitStepFields(e, [&](const char* name, const auto& value) {
      if (Present(value)) fields[name] = ToJson(value);
    });
    j["step"] = std::move(fields);
  } else if (e.kind == Kind::kEval) {
    j["eval"] = NamedObject(e, [](const auto& r, auto&& v) { VisitEvalFields(r, v); });
  } else if (e.kind == Kind::kSample) {
    j["sample"] = NamedObject(e, [](const auto& r, auto&& v) { VisitSampleFields(r, v); });
  } else {
    j["text"] = e.text;
    j["ckpt_step"] = e.checkpoint_step;
    if (!e.detail.empty()) j["detail"] = e.detail;
  }
  // Replacing invalid UTF-8 (a message may quote a client's bytes) keeps dump() from throwing.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<SessionEventRecord> ParseEventLine(absl::string_view line) {
  if (line.size() > kMaxEventLineBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("record of ", line.size(), " bytes (at most ", kMaxEventLineBytes, ")"));
  }
  const Json j = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  SessionEventRecord e;
  int64_t seq = 0, kind = 0;
  const auto f_seq = j.find("seq"), f_ms = j.find("ms"), f_kind = j.find("kind");
  if (f_seq == j.end() || f_ms == j.end() || f_kind == j.end()) {
    return absl::InvalidArgumentError("missing 'seq', 'ms' or 'kind'");
  }
  if (absl::Status s = GetInt(*f_seq, "seq", &seq); !s.ok()) return s;
  if (seq < 0) return Bad("seq", "is negative");
  e.seq = static_cast<uint64_t>(seq);
  if (absl::Status s = GetInt(*f_ms, "ms", &e.unix_ms); !s.ok()) return s;
  if (absl::Status s = GetInt(*f_kind, "kind", &kind); !s.ok()) return s;
  if (const auto v = j.find("v"); v != j.end()) {
    int64_t version = 0;  // any version is read: unknown fields are ignored
    if (absl::Status s = GetInt(*v, "v", &version); !s.ok()) return s;
  }
  if (kind < 0 || kind > static_cast<int64_t>(Kind::kSample)) return Bad("kind", "is unknown");
  e.kind = static_cast<Kind>(kind);
  if (e.kind == Kind::kStep) {
    if (absl::Status s = ParseStep(j, &e); !s.ok()) return s;
    return e;
  }
  if (e.kind == Kind::kEval) {
    ANERD_RETURN_IF_ERROR(
        ParseNamedObject(j, "eval", &e, [](auto& r, auto&& v) { VisitEvalFields(r, v); }));
    return e;
  }
  if (e.kind == Kind::kSample) {
    ANERD_RETURN_IF_ERROR(
        ParseNamedObject(j, "sample", &e, [](auto& r, auto&& v) { VisitSampleFields(r, v); }));
    return e;
  }
  const auto text = j.find("text"), ckpt = j.find("ckpt_step"), detail = j.find("detail");
  if (text != j.end()) {
    if (!text->is_string()) return Bad("text", "is not a string");
    e.text = text->get<std::string>();
  }
  if (detail != j.end()) {
    if (!detail->is_string()) return Bad("detail", "is not a string");
    e.detail = detail->get<std::string>();
  }
  if (ckpt != j.end()) {
    if (absl::Status s = GetInt(*ckpt, "ckpt_step", &e.checkpoint_step); !s.ok()) return s;
  }
  return e;
}

EventLogContents ParseEventLog(absl::string_view bytes, const std::string& path) {
  EventLogContents out;
  int64_t line_no = 0;
  size_t pos = 0;
  bool have_seq = false;
  uint64_t last_seq = 0;
  std::string first_bad;
  while (pos < bytes.size()) {
    ++line_no;
    const size_t nl = bytes.find('\n', pos);
    const bool complete = nl != absl::string_view::npos;
    const absl::string_view line = bytes.substr(pos, complete ? nl - pos : absl::string_view::npos);
    pos = complete ? nl + 1 : bytes.size();
    absl::StatusOr<SessionEventRecord> e =
        complete ? ParseEventLine(line)
                 : absl::InvalidArgumentError("no newline (the write was cut short)");
    if (e.ok() && have_seq && e->seq <= last_seq) {
      e = absl::InvalidArgumentError(
          absl::StrCat("seq ", e->seq, " does not follow the previous record's ", last_seq));
    }
    if (!e.ok()) {
      if (first_bad.empty()) {
        first_bad = absl::StrCat(path, " line ", line_no, ": ", e.status().message());
      }
      continue;
    }
    // Every bad line so far lies before this valid record: damage, not a torn tail.
    if (!first_bad.empty() && out.corruption.empty()) out.corruption = first_bad;
    first_bad.clear();
    have_seq = true;
    last_seq = e->seq;
    e->seq = out.events.size();
    out.events.push_back(*std::move(e));
    out.valid_bytes = static_cast<int64_t>(pos);
  }
  out.torn_tail = !first_bad.empty();
  return out;
}

absl::StatusOr<EventLogContents> ReadEventLog(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path, kMaxEventLogBytes);
  if (absl::IsNotFound(bytes.status())) return EventLogContents{};
  if (!bytes.ok()) return bytes.status();
  return ParseEventLog(*bytes, path);
}

}  // namespace anerd::sessions
