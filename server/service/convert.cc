#include "server/service/convert.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"

namespace anerd::service {
namespace {

constexpr int kMaxRank = 5;

void SignatureToProto(const backend::TensorSignature& sig, v1::TensorSpec* out) {
  out->set_name(sig.name);
  out->set_dtype(std::string(mil::DTypeName(sig.type.dtype)));
  for (int64_t d : sig.type.shape) out->add_shape(d);
}

}  // namespace

void ToProto(const engine::DaemonInfo& info, v1::GetInfoResponse* out) {
  out->set_version(info.version);
  out->set_build(info.build);
  out->set_os(info.os);
  out->set_uptime_seconds(info.uptime_seconds);
  out->set_pid(info.pid);
  out->set_state_dir(info.state_dir);
  out->set_socket(info.socket_path);
  out->set_default_backend(info.default_backend);
  for (const engine::BackendSummary& b : info.backends) {
    v1::BackendInfo* p = out->add_backends();
    p->set_name(b.name);
    p->set_version(b.version);
    p->set_device(b.device);
    p->set_is_default(b.is_default);
    p->set_compile_budget(b.compile_budget);
    p->set_compiles_used(b.compiles_used);
    for (const auto& [key, value] : b.facts) (*p->mutable_device_facts())[key] = value;
  }
  for (const auto& [name, reason] : info.unavailable_backends) {
    v1::UnavailableBackend* u = out->add_unavailable_backends();
    u->set_name(name);
    u->set_reason(reason);
  }
  for (const std::string& f : info.state_findings) out->add_state_findings(f);
  for (const engine::TelemetrySummary& t : info.telemetry) {
    v1::TelemetrySource* source = out->add_telemetry();
    source->set_name(t.name);
    source->set_available(t.available);
    source->set_unavailable(t.unavailable);
    source->set_thermal_state(t.thermal_state);
  }
  for (const engine::WorkerSummary& w : info.workers) {
    v1::WorkerInfo* p = out->add_workers();
    p->set_backend(w.backend);
    p->set_pid(w.pid);
    p->set_generation(w.generation);
    p->set_compiles_used(w.compiles_used);
    p->set_compile_budget(w.compile_budget);
    p->set_uptime_seconds(w.uptime_seconds);
    p->set_restarts(w.restarts);
    p->set_crashes(w.crashes);
    p->set_quarantined(w.quarantined);
    p->set_activity(w.activity);
    for (const std::string& r : w.recent_restart_reasons) p->add_recent_restart_reasons(r);
  }
  for (const engine::QueueSummary& q : info.queues) {
    v1::DeviceQueueInfo* p = out->add_queues();
    p->set_backend(q.backend);
    for (int i = 0; i < engine::kNumTaskClasses; ++i) {
      const engine::QueueClassStats& s = q.classes[i];
      v1::QueueClassInfo* c = p->add_classes();
      c->set_name(engine::TaskClassName(static_cast<engine::TaskClass>(i)));
      c->set_queued(s.queued);
      c->set_started(s.started);
      c->set_wait_seconds_sum(s.wait_seconds_sum);
      c->set_wait_seconds_max(s.wait_seconds_max);
    }
  }
  v1::CacheStats* c = out->mutable_cache();
  c->set_entries(info.cache.entries);
  c->set_bytes(info.cache.bytes);
  c->set_capacity_bytes(info.cache.capacity_bytes);
  c->set_hits(info.cache.hits);
  c->set_misses(info.cache.misses);
  c->set_evictions(info.cache.evictions);
  c->set_kernels_stored(info.cache.kernels_stored);
}

void ToProto(const engine::KernelInfo& info, v1::KernelInfo* out) {
  const cache::KernelRecord& r = info.record;
  out->set_id(r.id);
  out->set_name(r.name);
  out->set_backend(r.backend);
  out->set_options(r.options);
  for (const backend::TensorSignature& s : info.inputs) SignatureToProto(s, out->add_inputs());
  for (const backend::TensorSignature& s : info.outputs) SignatureToProto(s, out->add_outputs());
  out->set_mil_bytes(r.mil_bytes);
  out->set_weight_bytes(r.weight_bytes);
  out->set_created_unix_ms(r.created_ms);
  out->set_last_used_unix_ms(r.last_used_ms);
  out->set_compile_ms(r.compile_ms);
  out->set_hits(r.hits);
  out->set_loaded(info.loaded);
}

void ToProto(const backend::NamedTensor& tensor, v1::Tensor* out) {
  out->set_name(tensor.name);
  out->set_dtype(std::string(mil::DTypeName(tensor.tensor.dtype())));
  for (int64_t d : tensor.tensor.shape()) out->add_shape(d);
  out->set_data(tensor.tensor.bytes());
}

absl::StatusOr<backend::CompileOptions> FromProto(const v1::CompileOptions& options) {
  backend::CompileOptions out;
  if (options.numerics().empty() || options.numerics() == "ane") {
    out.numerics = backend::NumericsMode::kAne;
  } else if (options.numerics() == "fp32") {
    out.numerics = backend::NumericsMode::kFp32;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("options.numerics: want 'ane' or 'fp32', got '", options.numerics(), "'"));
  }
  out.ignore_attn_mask = options.ignore_attn_mask();
  if (options.has_qos()) {
    if (options.qos() > 63) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.qos: ", options.qos(), " is outside 0..63"));
    }
    out.qos = options.qos();
  }
  return out;
}

absl::StatusOr<backend::NamedTensor> FromProto(const v1::Tensor& tensor, int64_t* budget_bytes) {
  const std::string where = absl::StrCat("input '", tensor.name(), "'");
  if (tensor.name().empty()) return absl::InvalidArgumentError("an input tensor has no name");
  std::optional<mil::DType> dtype = mil::DTypeFromName(tensor.dtype());
  if (!dtype || *dtype == mil::DType::kString) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": unknown dtype '", tensor.dtype(),
                     "' (want fp16, fp32, int32, int16, int8, uint8 or bool)"));
  }
  if (tensor.shape_size() > kMaxRank) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": rank ", tensor.shape_size(), " exceeds ", kMaxRank));
  }
  mil::TensorType type{*dtype, {}};
  int64_t elements = 1;
  for (int64_t d : tensor.shape()) {
    if (d <= 0 || elements > std::numeric_limits<int64_t>::max() / 8 / d) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": shape [", absl::StrJoin(tensor.shape(), ", "), "] is empty or too large"));
    }
    elements *= d;
    type.shape.push_back(d);
  }
  const int64_t need = elements * mil::DTypeSize(*dtype);
  if (static_cast<int64_t>(tensor.data().size()) != need) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", tensor.dtype(), " [", absl::StrJoin(tensor.shape(), ", "),
                     "] needs ", need, " bytes of data, got ", tensor.data().size()));
  }
  *budget_bytes -= need;
  if (*budget_bytes < 0) {
    return absl::InvalidArgumentError(
        "input tensors exceed the per-evaluation limit (raise it with anerd --max-tensor-bytes)");
  }
  absl::StatusOr<backend::Tensor> t = backend::Tensor::FromBytes(type, tensor.data());
  if (!t.ok()) return t.status();
  return backend::NamedTensor{tensor.name(), *std::move(t)};
}

// ---- Probes ----

absl::StatusOr<engine::ProbeRunRequest> FromProto(const v1::RunProbeRequest& request) {
  engine::ProbeRunRequest out;
  absl::StatusOr<probes::ProbeKind> kind = probes::ProbeKindFromName(request.probe(), "probe");
  if (!kind.ok()) return kind.status();
  out.options.kind = *kind;
  for (const v1::ProbeGridPoint& p : request.grid()) {
    out.options.grid.push_back({p.channels(), p.spatial(), p.depth()});
  }
  out.options.repeat = request.repeat();
  if (request.has_warmup()) out.options.warmup = request.warmup();
  if (request.row_budget_seconds() != 0) {
    out.options.row_budget_seconds = request.row_budget_seconds();
  }
  out.options.peak_tflops = request.peak_tflops();
  out.backend = request.backend();
  if (absl::Status s = probes::ValidateOptions(out.options); !s.ok()) return s;
  return out;
}

void ToProto(const probes::ProbeRow& row, v1::ProbeRow* out) {
  out->set_probe(row.probe);
  out->set_config(row.config);
  out->set_variant(row.variant);
  out->set_channels(row.channels);
  out->set_spatial(row.spatial);
  out->set_depth(row.depth);
  out->set_weight_mb(row.weight_mb);
  out->set_act_mb(row.act_mb);
  out->set_total_mb(row.total_mb);
  out->set_gflop(row.gflop);
  out->set_ms_per_eval(row.ms_per_eval);
  out->set_ms_min(row.ms_min);
  out->set_tflops(row.tflops);
  out->set_pct_peak(row.pct_peak);
  out->set_gflops_per_mb(row.gflops_per_mb);
  out->set_ratio(row.ratio);
  out->set_p50_us(row.p50_us);
  out->set_p90_us(row.p90_us);
  out->set_p99_us(row.p99_us);
  out->set_iterations(row.iterations);
  if (row.hw_us_per_eval.has_value()) {
    out->set_hw_us_per_eval(*row.hw_us_per_eval);
    out->set_hw_time_source(row.hw_time_source);
  }
  if (row.qos.has_value()) out->set_qos(*row.qos);
  if (row.watts.has_value()) out->set_watts(*row.watts);
  if (row.tflops_per_watt.has_value()) out->set_tflops_per_watt(*row.tflops_per_watt);
  out->set_energy_source(row.energy_source);
  out->set_energy_unavailable(row.energy_unavailable);
}

void ToProto(const probes::Fingerprint& f, v1::MachineFingerprint* out) {
  out->set_os(f.os);
  out->set_cpu(f.cpu);
  out->set_cpu_cores(f.cpu_cores);
  out->set_caches(f.caches);
  out->set_backend(f.backend);
  out->set_backend_version(f.backend_version);
  out->set_device(f.device);
  out->set_anerd_version(f.anerd_version);
}

void ToProto(const engine::ProbeStart& start, v1::ProbeStarted* out) {
  out->set_result_id(start.result_id);
  out->set_planned_rows(start.planned_rows);
  out->set_queued_ms(absl::ToDoubleMilliseconds(start.queued));
  ToProto(start.fingerprint, out->mutable_fingerprint());
}

void ToProto(const probes::ProbeResult& result, v1::ProbeSummary* out) {
  const probes::ProbeSummary& s = result.summary;
  out->set_result_id(result.id);
  out->set_probe(s.probe);
  for (const probes::Finding& f : s.findings) {
    v1::ProbeFinding* p = out->add_findings();
    p->set_probe(f.probe);
    p->set_kind(f.kind);
    p->set_text(f.text);
    p->set_value(f.value);
  }
  for (const probes::SpillPoint& sp : s.spills) {
    v1::ProbeSpill* p = out->add_spills();
    p->set_x_before_mb(sp.x_before);
    p->set_x_after_mb(sp.x_after);
    p->set_level_before(sp.level_before);
    p->set_level_after(sp.level_after);
    p->set_drop(sp.drop);
  }
  out->set_peak_tflops(s.peak_tflops);
  out->set_peak_source(s.peak_source);
  out->set_wall_seconds(s.wall_seconds);
  out->set_rows(s.rows);
  out->set_created_unix_ms(result.created_ms);
  ToProto(result.fingerprint, out->mutable_fingerprint());
}

void ToProto(const probes::ProbeResult& result, v1::ProbeResult* out) {
  ToProto(result, out->mutable_summary());
  for (const probes::ProbeRow& row : result.rows) ToProto(row, out->add_rows());
  v1::RunProbeRequest* request = out->mutable_request();
  const probes::ProbeOptions& o = result.options;
  request->set_probe(std::string(probes::ProbeKindName(o.kind)));
  for (const probes::GridPoint& p : o.grid) {
    v1::ProbeGridPoint* g = request->add_grid();
    g->set_channels(p.channels);
    g->set_spatial(p.spatial);
    g->set_depth(p.depth);
  }
  request->set_repeat(o.repeat);
  if (o.warmup) request->set_warmup(*o.warmup);
  request->set_backend(result.fingerprint.backend);
  request->set_peak_tflops(o.peak_tflops);
  request->set_row_budget_seconds(o.row_budget_seconds);
}

void ToProto(const engine::RuleProbeOutcome& outcome, v1::ProbeAneRulesResponse* out) {
  const probes::RuleProbeRecord& r = outcome.record;
  out->set_backend(r.backend);
  out->set_chip(r.chip);
  out->set_os_build(r.os_build);
  out->set_simulated(r.simulated);
  out->set_probed_unix_ms(r.probed_ms);
  for (const backend::RuleMeasurement& m : r.rows) {
    v1::AneRuleMeasurement* row = out->add_rows();
    row->set_rule(m.rule);
    row->set_table_value(m.expected);
    row->set_measured_value(m.measured);
    row->set_agrees(m.agrees);
    row->set_evidence(m.detail);
  }
  for (const auto& [id, value] : outcome.applied) (*out->mutable_rules_applied())[id] = value;
  out->set_origin(outcome.origin);
}

}  // namespace anerd::service
