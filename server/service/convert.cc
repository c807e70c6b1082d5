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

namespace {

// The artifact ids and held-out data of a spec; each id excludes its path field.
absl::Status ArtifactFieldsFromProto(const v1::TrainingSpec& p, training::TrainSpec* spec) {
  struct Pair {
    const char* id_field;
    const std::string& id;
    const char* path_field;
    bool path_set;
  };
  const Pair pairs[] = {
      {"data_artifact", p.data_artifact(), "data", !p.data().empty()},
      {"init_artifact", p.init_artifact(), "init", !spec->init_model_path.empty()},
      {"val_artifact", p.val_artifact(), "val_data", !p.val_data().empty()},
  };
  for (const Pair& pair : pairs) {
    if (pair.id.empty()) continue;
    if (pair.path_set) {
      return absl::InvalidArgumentError(absl::StrCat(pair.id_field, ": give either ", pair.id_field,
                                                     " or ", pair.path_field, ", not both"));
    }
    if (!IsSha256Hex(pair.id)) {
      return absl::InvalidArgumentError(
          absl::StrCat(pair.id_field, ": '", pair.id, "' is not an artifact id (64 hex digits)"));
    }
  }
  spec->data_artifact = p.data_artifact();
  spec->init_artifact = p.init_artifact();
  spec->val_artifact = p.val_artifact();
  spec->val_data_path = p.val_data();
  spec->val_fraction = p.val_fraction();
  const int held_out = (p.val_fraction() != 0) + !p.val_data().empty() + !p.val_artifact().empty();
  if (held_out > 1) {
    return absl::InvalidArgumentError(
        "val_fraction, val_data, val_artifact: give at most one source of held-out data");
  }
  if (!(p.val_fraction() >= 0 && p.val_fraction() < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("val_fraction: ", p.val_fraction(), " must be at least 0 and less than 1"));
  }
  return absl::OkStatus();
}

// The held-out data as resolved (ValidationRange), when there is any.
void ValidationToProto(const training::TrainSpec& spec, v1::TrainingSpec* out) {
  out->set_val_fraction(spec.val_fraction);
  out->set_val_artifact(spec.val_artifact);
  if (spec.val_artifact.empty()) out->set_val_data(spec.val_data_path);
  if (spec.val_end == 0) return;
  v1::ValidationRange* v = out->mutable_validation();
  v->set_source(spec.val_data_path.empty() ? "data" : "val_data");
  v->set_begin_token(spec.val_begin);
  v->set_end_token(spec.val_end);
  v->set_train_tokens(spec.train_tokens);
}

}  // namespace

absl::StatusOr<training::TrainSpec> FromProto(const v1::TrainingSpec& p) {
  training::TrainSpec spec;
  if (!p.init().empty() && p.init() != "scratch") spec.init_model_path = p.init();
  // An init file without a named model: its own config (with custom_config's keys as overrides)
  // is the model, resolved by the session manager after the path checks; tiny holds the place.
  if (!spec.init_model_path.empty() && p.model().empty()) {
    spec.model_from_init = true;
    spec.model_overrides = p.custom_config();
    spec.model = *training::ModelConfigByName("tiny");
  } else if (!p.custom_config().empty()) {
    absl::StatusOr<training::ModelConfig> config = training::ParseCustomConfig(p.custom_config());
    if (!config.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("custom_config: ", config.status().message()));
    }
    spec.model = *std::move(config);
  } else {
    absl::StatusOr<training::ModelConfig> config =
        training::ModelConfigByName(p.model().empty() ? "tiny" : p.model());
    if (!config.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("model: ", config.status().message()));
    }
    spec.model = *std::move(config);
  }
  spec.data_path = p.data();
  if (absl::Status s = ArtifactFieldsFromProto(p, &spec); !s.ok()) return s;
  if (p.steps() != 0) spec.steps = p.steps();
  if (p.lr() != 0) spec.lr = p.lr();
  if (p.min_lr() != 0) spec.min_lr = p.min_lr();
  if (!p.schedule().empty()) spec.schedule = p.schedule();
  if (p.warmup() != 0 || p.has_warmup()) spec.warmup = p.warmup();
  if (p.accum() != 0) spec.accum = p.accum();
  if (p.clip() != 0 || p.has_clip()) spec.clip = p.clip();
  if (p.weight_decay() != 0 || p.has_weight_decay()) spec.weight_decay = p.weight_decay();
  if (p.beta1() != 0) spec.beta1 = p.beta1();
  if (p.beta2() != 0) spec.beta2 = p.beta2();
  if (p.eps() != 0) spec.eps = p.eps();
  if (!p.loss_scale().empty()) spec.loss_scale = p.loss_scale();
  if (!p.numerics().empty()) spec.numerics = p.numerics();
  if (!p.sampling().empty()) spec.sampling = p.sampling();
  if (p.seed() != 0 || p.has_seed()) spec.seed = p.seed();
  if (!p.residual_scale().empty()) spec.residual_scale = p.residual_scale();
  spec.compact_vocab = p.compact_vocab();
  if (p.checkpoint_every() != 0) spec.checkpoint_every = p.checkpoint_every();
  absl::Status valid = training::ValidateSpec(spec);
  if (!valid.ok()) return valid;
  return spec;
}

void ToProto(const artifacts::ArtifactRecord& record, const std::string& caller_client,
             bool with_owners, v1::ArtifactInfo* out) {
  out->set_id(record.id);
  out->set_kind(record.kind);
  out->set_name(record.NameFor(caller_client));
  out->set_size(record.size);
  out->set_created_unix_ms(record.created_ms);
  if (with_owners) {
    for (const auto& [owner, name] : record.owners) out->add_owners(owner);
  }
}

void ToProto(const training::TrainSpec& spec, v1::TrainingSpec* out) {
  out->set_model(spec.model.name);
  out->set_custom_config(training::ConfigToString(spec.model));
  // Artifact-backed fields show the id, never the blob's path in the state dir.
  out->set_init(spec.init_model_path.empty() ? "scratch" : spec.init_model_path);
  if (!spec.init_artifact.empty()) {
    out->set_init("");
    out->set_init_artifact(spec.init_artifact);
  }
  if (spec.data_artifact.empty()) out->set_data(spec.data_path);
  out->set_data_artifact(spec.data_artifact);
  ValidationToProto(spec, out);
  out->set_steps(spec.steps);
  out->set_lr(spec.lr);
  out->set_min_lr(spec.min_lr);
  out->set_schedule(spec.schedule);
  out->set_warmup(spec.warmup);
  out->set_accum(spec.accum);
  out->set_clip(spec.clip);
  out->set_weight_decay(spec.weight_decay);
  out->set_beta1(spec.beta1);
  out->set_beta2(spec.beta2);
  out->set_eps(spec.eps);
  out->set_loss_scale(spec.loss_scale);
  out->set_numerics(spec.numerics);
  out->set_sampling(spec.sampling);
  out->set_seed(spec.seed);
  out->set_residual_scale(spec.residual_scale);
  out->set_compact_vocab(spec.compact_vocab);
  out->set_checkpoint_every(spec.checkpoint_every);
}

void ToProto(const sessions::SessionSnapshot& s, bool with_owner, v1::SessionInfo* out) {
  out->set_id(s.id);
  out->set_name(s.name);
  out->set_state(sessions::SessionStateName(s.state));
  out->set_step(s.step);
  out->set_total_steps(s.total_steps);
  out->set_last_loss(s.last_loss);
  out->set_best_loss(s.best_loss);
  out->set_started_unix_ms(s.started_ms);
  out->set_elapsed_seconds(s.elapsed_seconds);
  out->set_eta_seconds(s.eta_seconds);
  out->set_checkpoint_path(s.checkpoint_path);
  out->set_checkpoint_step(s.checkpoint_step);
  ToProto(s.spec, out->mutable_spec());
  out->mutable_spec()->set_name(s.name);
  out->mutable_spec()->set_backend(s.backend);
  out->set_error(s.error);
  out->set_backend(s.backend);
  if (with_owner) out->set_owner(s.owner);
}

void ToProto(const sessions::SessionEventRecord& e, v1::SessionEvent* out) {
  out->set_seq(e.seq);
  out->set_unix_ms(e.unix_ms);
  using Kind = sessions::SessionEventRecord::Kind;
  switch (e.kind) {
    case Kind::kStep: {
      v1::StepEvent* p = out->mutable_step();
      const training::StepReport& r = e.step;
      p->set_step(r.step);
      p->set_loss(r.loss);
      p->set_lr(r.lr);
      p->set_grad_norm(r.grad_norm);
      p->set_loss_scale(r.loss_scale);
      p->set_skipped(r.skipped);
      p->set_step_ms(r.step_ms);
      p->set_tokens_per_s(r.tokens_per_s);
      p->set_tflops(r.tflops);
      p->set_queued_ms(e.queued_ms);
      v1::PhaseTimes* ph = p->mutable_phases();
      ph->set_kernel_ms(r.phases.kernel_ms);
      if (r.phases.kernel_hw_ms.has_value()) {
        ph->set_kernel_hw_ms(*r.phases.kernel_hw_ms);
        ph->set_hw_time_source(r.phases.hw_simulated ? "simulated" : "hardware");
      }
      ph->set_io_ms(r.phases.io_ms);
      ph->set_rms_ms(r.phases.rms_ms);
      ph->set_elem_ms(r.phases.elem_ms);
      ph->set_cls_ms(r.phases.cls_ms);
      ph->set_dw_wait_ms(r.phases.dw_wait_ms);
      ph->set_optim_ms(r.phases.optim_ms);
      break;
    }
    case Kind::kState:
      out->set_state(e.text);
      out->set_detail(e.detail);
      break;
    case Kind::kCheckpoint:
      out->set_checkpoint(e.text);
      out->set_checkpoint_step(e.checkpoint_step);
      break;
    case Kind::kWarning:
      out->set_warning(e.text);
      break;
  }
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
