// Proto conversions of training specs, artifacts, sessions and their events (convert.h).
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "server/service/convert.h"

namespace anerd::service {

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
  spec.eval_every = p.eval_every();
  if (p.eval_batches() != 0) spec.eval_batches = p.eval_batches();
  spec.sample_every = p.sample_every();
  spec.sample_prompt = p.sample_prompt();
  if (p.sample_tokens() != 0) spec.sample_tokens = p.sample_tokens();
  // mpi (issue 24): data-parallel fields; 0/"" keep the one-rank defaults.
  if (p.ranks() != 0) spec.ranks = p.ranks();
  spec.hostfile = p.hostfile();
  if (!p.reduce().empty()) spec.reduce = p.reduce();
  if (p.digest_every() != 0) spec.digest_every = p.digest_every();
  spec.max_restarts = p.max_restarts();
  spec.allreduce_bucket_kb = p.allreduce_bucket_kb();  // overlap (issue 24 item 2)
  spec.allreduce_overlap = !p.has_allreduce_overlap() || p.allreduce_overlap();
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
  out->set_ranks(spec.ranks);
  out->set_hostfile(spec.hostfile);
  out->set_reduce(spec.reduce);
  out->set_digest_every(spec.digest_every);
  out->set_max_restarts(spec.max_restarts);
  out->set_allreduce_bucket_kb(spec.allreduce_bucket_kb);
  out->set_allreduce_overlap(spec.allreduce_overlap);
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
  out->set_eval_every(spec.eval_every);
  out->set_eval_batches(spec.eval_batches);
  out->set_sample_every(spec.sample_every);
  out->set_sample_prompt(spec.sample_prompt);
  out->set_sample_tokens(spec.sample_tokens);
}

void ToProto(const sessions::EvalRecord& e, v1::EvalEvent* out) {
  out->set_step(e.step);
  out->set_loss(e.report.loss);
  out->set_perplexity(e.report.perplexity);
  out->set_sequences(e.report.sequences);
  out->set_tokens(e.report.tokens);
  out->set_source(e.report.source);
  out->set_eval_ms(e.report.eval_ms);
  out->set_best(e.best);
}

void ToProto(const sessions::SampleRecord& e, v1::SampleEvent* out) {
  out->set_step(e.step);
  out->set_prompt(e.prompt);
  out->set_text(e.text);
  out->set_tokens(e.tokens);
  out->set_sample_ms(e.sample_ms);
}

namespace {

// The session's step observations: set fields only (unset = not measured).
void ObservationsToProto(const sessions::StepObservations& o, v1::StepEvent* p) {
  if (o.compile_ms.has_value()) p->set_compile_ms(*o.compile_ms);
  if (o.compile_share.has_value()) p->set_compile_share(*o.compile_share);
  if (o.device_utilization.has_value()) p->set_device_utilization(*o.device_utilization);
  if (o.peak_tflops.has_value()) p->set_peak_tflops(*o.peak_tflops);
  p->set_peak_source(o.peak_source);
  if (o.energy_j.has_value()) p->set_energy_j(*o.energy_j);
  if (o.energy_j_per_token.has_value()) p->set_energy_j_per_token(*o.energy_j_per_token);
  if (o.power_w.has_value()) p->set_power_w(*o.power_w);
  p->set_energy_source(o.energy_source);
  p->set_energy_unavailable(o.energy_unavailable);
  p->set_thermal_state(o.thermal_state);
}

void StepToProto(const sessions::SessionEventRecord& e, v1::StepEvent* p) {
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
  // mpi (issue 24): data-parallel steps only.
  if (r.phases.allreduce_ms.has_value()) ph->set_allreduce_ms(*r.phases.allreduce_ms);
  if (r.ranks.has_value()) p->set_ranks(static_cast<int32_t>(*r.ranks));
  if (r.allreduce_bytes.has_value()) p->set_allreduce_bytes(*r.allreduce_bytes);
  if (r.phases.allreduce_total_ms.has_value()) {
    ph->set_allreduce_total_ms(*r.phases.allreduce_total_ms);
  }
  if (r.phases.allreduce_hidden_ms.has_value()) {
    ph->set_allreduce_hidden_ms(*r.phases.allreduce_hidden_ms);
  }
  if (r.allreduce_buckets.has_value()) p->set_allreduce_buckets(*r.allreduce_buckets);
  if (r.slowest_rank.has_value()) p->set_slowest_rank(static_cast<int32_t>(*r.slowest_rank));
  if (r.slowest_rank_ms.has_value()) p->set_slowest_rank_ms(*r.slowest_rank_ms);
  if (r.fastest_rank_ms.has_value()) p->set_fastest_rank_ms(*r.fastest_rank_ms);
  if (r.phases.kernel_fwd_ms.has_value()) ph->set_kernel_fwd_ms(*r.phases.kernel_fwd_ms);
  if (r.phases.kernel_bwd_ms.has_value()) ph->set_kernel_bwd_ms(*r.phases.kernel_bwd_ms);
  ObservationsToProto(e.observed, p);
}

}  // namespace

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
  out->set_logdir(s.logdir);
  out->set_restarts(s.restarts);
  for (const std::string& host : s.hosts) out->add_hosts(host);
  out->set_checkpoint_step(s.checkpoint_step);
  ToProto(s.spec, out->mutable_spec());
  out->mutable_spec()->set_name(s.name);
  out->mutable_spec()->set_backend(s.backend);
  out->set_error(s.error);
  out->set_backend(s.backend);
  if (with_owner) out->set_owner(s.owner);
  if (s.best_val_loss.has_value()) out->set_best_val_loss(*s.best_val_loss);
  out->set_best_val_step(s.best_val_step);
  out->set_best_checkpoint_path(s.best_checkpoint_path);
  if (s.last_eval.has_value()) ToProto(*s.last_eval, out->mutable_last_eval());
  if (s.last_sample.has_value()) ToProto(*s.last_sample, out->mutable_last_sample());
  if (s.last_step.has_value()) StepToProto(*s.last_step, out->mutable_last_step());
}

void ToProto(const sessions::SessionEventRecord& e, v1::SessionEvent* out) {
  out->set_seq(e.seq);
  out->set_unix_ms(e.unix_ms);
  using Kind = sessions::SessionEventRecord::Kind;
  switch (e.kind) {
    case Kind::kStep:
      StepToProto(e, out->mutable_step());
      break;
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
    case Kind::kEval:
      ToProto(e.eval, out->mutable_eval());
      break;
    case Kind::kSample:
      ToProto(e.sample, out->mutable_sample());
      break;
  }
}

}  // namespace anerd::service
