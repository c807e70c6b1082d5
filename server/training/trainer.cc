#include "server/training/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/synth_stories.h"
#include "server/training/cpu_ops.h"

namespace anerd::training {
namespace {

constexpr double kInitialScale = 1024.0;
constexpr int64_t kGrowthInterval = 200;
constexpr double kMaxScale = 65536.0;
constexpr double kMinScale = 1.0 / 65536.0;

}  // namespace

std::string SynthesizeStories(uint64_t seed, size_t bytes) {
  return anerd::SynthesizeStories(seed, bytes);
}

Trainer::~Trainer() = default;

absl::Status Trainer::Init(backend::Backend* backend, TrainerInputs in) {
  if (backend == nullptr) return absl::InvalidArgumentError("Trainer: no backend");
  if (in.data == nullptr) return absl::InvalidArgumentError("Trainer: no training data read");
  data_ = std::move(in.data);  // cut to train_tokens by ReadTrainerInputs
  val_data_ = std::move(in.val_data);
  const backend::NumericsMode numerics =
      spec_.numerics == "fp32" ? backend::NumericsMode::kFp32 : backend::NumericsMode::kAne;
  ANERD_ASSIGN_OR_RETURN(model_,
                         Model::Create(spec_.model, ResidualAlpha(spec_), numerics, backend));
  if (spec_.compact_vocab) model_->SetCompaction(std::move(in.used_ids));
  dynamic_scale_ = spec_.loss_scale == "dynamic";
  grads_.assign(params_.size(), 0.0f);
  PhaseTimes t;
  model_->StageWeights(params_.data(), &t);
  return absl::OkStatus();
}

absl::Status Trainer::OpenHeldOut() {
  if (val_data_ != nullptr || spec_.val_end == 0 || spec_.val_data_path.empty()) {
    return absl::OkStatus();
  }
  ANERD_ASSIGN_OR_RETURN(val_data_, TokenData::Open(spec_.val_data_path, spec_.val_data_format,
                                                    spec_.model.vocab, spec_.model.seq));
  return absl::OkStatus();
}

absl::StatusOr<EvalReport> Trainer::EvalHeldOut() {
  ANERD_RETURN_IF_ERROR(OpenHeldOut());
  const HeldOut h = HeldOutFor(spec_, data_->file_size(), spec_.eval_batches);
  const TokenData& d = h.separate_file ? *val_data_ : *data_;
  ANERD_ASSIGN_OR_RETURN(EvalReport r,
                         EvaluateWindows(*model_, params_.data(), d, h.begin,
                                         std::min(h.end, d.file_size()), spec_.eval_batches));
  r.source = h.source;
  return r;
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainSpec& spec,
                                                         backend::Backend* backend) {
  ANERD_ASSIGN_OR_RETURN(TrainerInputs in, ReadTrainerInputs(spec, /*with_init=*/true));
  return Create(spec, std::move(in), backend);
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainSpec& spec, TrainerInputs in,
                                                         backend::Backend* backend) {
  ANERD_RETURN_IF_ERROR(ValidateSpec(spec));
  std::unique_ptr<Trainer> t(new Trainer());
  t->spec_ = spec;
  ANERD_ASSIGN_OR_RETURN(const int64_t n, CheckedNumParams(spec.model));
  if (spec.init_model_path.empty()) {
    t->params_.resize(n);
    InitParams(spec.model, spec.seed, t->params_.data());
  } else {
    if (!in.init.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("init model ", spec.init_model_path, " was not read"));
    }
    LoadedModel& m = *in.init;
    ANERD_RETURN_IF_ERROR(CheckSameArchitecture(m.config, spec.model,
                                                absl::StrCat("init model ", spec.init_model_path),
                                                "the spec's model"));
    t->params_ = std::move(m.params);
    t->adam_m_ = std::move(m.adam_m);
    t->adam_v_ = std::move(m.adam_v);
    t->state_.adam_t = m.adam_t;
    in.init.reset();
  }
  if (t->adam_m_.empty()) {
    t->adam_m_.assign(n, 0.0f);
    t->adam_v_.assign(n, 0.0f);
    t->state_.adam_t = 0;
  }
  t->state_.total_steps = spec.steps;
  t->state_.rng_seed = spec.seed;
  t->state_.loss_scale = kInitialScale;
  if (spec.loss_scale != "dynamic") absl::SimpleAtod(spec.loss_scale, &t->state_.loss_scale);
  ANERD_RETURN_IF_ERROR(t->Init(backend, std::move(in)));
  return t;
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Resume(const std::string& checkpoint_path,
                                                         backend::Backend* backend,
                                                         int64_t extra_steps) {
  ANERD_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(checkpoint_path));
  return Resume(std::move(ck), backend, extra_steps);
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Resume(Checkpoint ck, backend::Backend* backend,
                                                         int64_t extra_steps) {
  ANERD_ASSIGN_OR_RETURN(TrainerInputs in, ReadTrainerInputs(ck.spec, /*with_init=*/false));
  return Resume(std::move(ck), std::move(in), backend, extra_steps);
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Resume(Checkpoint ck, TrainerInputs in,
                                                         backend::Backend* backend,
                                                         int64_t extra_steps) {
  if (extra_steps < 0 || extra_steps > INT64_MAX - ck.state.total_steps) {
    return absl::InvalidArgumentError("extra_steps must be >= 0 and keep the total in int64");
  }
  std::unique_ptr<Trainer> t(new Trainer());
  t->spec_ = std::move(ck.spec);
  t->state_ = ck.state;
  t->state_.total_steps += extra_steps;
  t->spec_.steps = t->state_.total_steps;
  ANERD_RETURN_IF_ERROR(ValidateSpec(t->spec_));
  t->params_ = std::move(ck.params);
  t->adam_m_ = std::move(ck.adam_m);
  t->adam_v_ = std::move(ck.adam_v);
  ANERD_RETURN_IF_ERROR(t->Init(backend, std::move(in)));
  return t;
}

absl::Status Trainer::AdoptRanks(int ranks, bool keep_batch) {
  if (ranks == spec_.ranks) return absl::OkStatus();
  if (!keep_batch) {
    return absl::InvalidArgumentError(absl::StrCat("the spec says ranks=", spec_.ranks,
                                                   " but the job has ", ranks,
                                                   " processes (mpirun -np): make them agree"));
  }
  return ResumeOnRanks(ranks, &spec_);
}

void Trainer::ForSlices(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t kSlice = int64_t{1} << 22;  // 4M floats: a few ms of streaming per slice
  for (int64_t first = 0; first < n; first += kSlice) {
    if (yield_) yield_();
    const int64_t len = std::min(kSlice, n - first);
    model_->ParallelFor(
        len, [&fn, first](int64_t begin, int64_t end) { fn(first + begin, first + end); });
  }
}

void Trainer::Update(double lr, double mult) {
  ++state_.adam_t;
  AdamWParams p;
  p.lr = lr;
  p.beta1 = spec_.beta1;
  p.beta2 = spec_.beta2;
  p.eps = spec_.eps;
  p.t = state_.adam_t;
  p.grad_mult = mult;
  const std::vector<ParamGroup>& groups = model_->layout().groups();
  // Element ranges split into slices and each across two threads; a group may be cut anywhere
  // (AdamW is elementwise, and its vector and scalar paths round alike: adamw.cc).
  ForSlices(static_cast<int64_t>(params_.size()), [&](int64_t begin, int64_t end) {
    AdamWParams q = p;
    for (const ParamGroup& g : groups) {
      const int64_t lo = std::max(begin, g.offset), hi = std::min(end, g.offset + g.size);
      if (lo >= hi) continue;
      q.weight_decay = g.decay ? spec_.weight_decay : 0.0;
      AdamW(params_.data() + lo, grads_.data() + lo, adam_m_.data() + lo, adam_v_.data() + lo,
            hi - lo, q);
    }
  });
}

// This rank's micro-steps: global micro-steps micro_step + rank·accum + m (gradient_reducer.h).
// The first writes into the zeroed grads_, each later one into the zeroed micro_grads_, then added.
absl::Status Trainer::RunMicroSteps(int rank, StepReport* r, double* loss_sum) {
  const int seq = spec_.model.seq;
  const int64_t first = state_.micro_step + static_cast<int64_t>(rank) * spec_.accum;
  const int64_t n = static_cast<int64_t>(grads_.size());
  if (spec_.accum > 1) micro_grads_.resize(grads_.size());
  for (int micro = 0; micro < spec_.accum; ++micro) {
    const int64_t p =
        data_->WindowStart(spec_.sampling == "random", state_.rng_seed, first + micro, seq);
    window_.resize(seq + 1);
    data_->Copy(p, seq + 1, window_.data());
    const uint32_t* tokens = window_.data();
    float* into = grads_.data();
    const bool overlap = micro + 1 == spec_.accum && reducer_ != nullptr && reducer_->overlapped();
    if (overlap) ArmOverlap(micro > 0);
    if (micro > 0) {
      into = micro_grads_.data();
      model_->ParallelFor(n, [this](int64_t begin, int64_t end) {
        std::fill(micro_grads_.begin() + begin, micro_grads_.begin() + end, 0.0f);
      });
    }
    absl::StatusOr<double> loss_or =
        model_->ForwardBackward(params_.data(), tokens, tokens + 1,
                                static_cast<float>(state_.loss_scale), into, &r->phases);
    if (overlap) model_->SetGradientsFinalHook(nullptr);
    ANERD_ASSIGN_OR_RETURN(const double loss, std::move(loss_or));
    if (micro > 0 && !overlap) {  // overlapped: the hook added each range as it became final
      model_->ParallelFor(n, [this](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) grads_[i] += micro_grads_[i];
      });
    }
    *loss_sum += loss;
  }
  return absl::OkStatus();
}

// Overlap (issue 24 item 2): the last micro-step's backward pass hands every range to the
// reducer as soon as it is final, after adding this micro-step's part into the step's sum
// (`add_micro`; the same per-element addition as the whole-buffer one).
void Trainer::ArmOverlap(bool add_micro) {
  model_->SetGradientsFinalHook([this, add_micro](int64_t offset, int64_t count) {
    if (add_micro) {
      for (int64_t i = offset; i < offset + count; ++i) grads_[i] += micro_grads_[i];
    }
    reducer_->Ready(offset, count);
  });
}

absl::Status Trainer::Reduce(StepReport* r, double* loss_sum) {
  ScopedSpan span(spans_, "allreduce");
  ReduceStats stats;
  if (reducer_->overlapped()) {
    ANERD_RETURN_IF_ERROR(reducer_->FinishStep(loss_sum, &stats));
  } else {
    ANERD_RETURN_IF_ERROR(
        reducer_->Reduce(grads_.data(), static_cast<int64_t>(grads_.size()), loss_sum, &stats));
  }
  r->phases.allreduce_ms = r->phases.allreduce_ms.value_or(0) + stats.exposed_ms;
  r->phases.allreduce_total_ms = stats.total_ms;
  r->phases.allreduce_hidden_ms = stats.hidden_ms;
  r->allreduce_buckets = stats.buckets;
  r->allreduce_bytes = stats.bytes;
  r->ranks = reducer_->ranks();
  return absl::OkStatus();
}

absl::StatusOr<StepReport> Trainer::Step() {
  if (done()) {
    return absl::FailedPreconditionError(
        absl::StrCat("training is done (", state_.step, " of ", state_.total_steps, " steps)"));
  }
  const auto start = std::chrono::steady_clock::now();
  if (spans_ != nullptr) spans_->SetStep(state_.step + 1);
  ScopedSpan step_span(spans_, "step");
  StepReport r;
  r.loss_scale = state_.loss_scale;
  {
    ScopedSpan span(spans_, "zero_grads");
    ForSlices(static_cast<int64_t>(grads_.size()), [this](int64_t begin, int64_t end) {
      std::fill(grads_.begin() + begin, grads_.begin() + end, 0.0f);
    });
  }
  const int seq = spec_.model.seq;
  const int ranks = reducer_ != nullptr ? reducer_->ranks() : 1;
  const int64_t sequences = static_cast<int64_t>(spec_.accum) * ranks;
  double loss_sum = 0;
  if (reducer_ != nullptr && reducer_->overlapped()) {
    ANERD_RETURN_IF_ERROR(reducer_->BeginStep(grads_.data(), static_cast<int64_t>(grads_.size())));
  }
  if (absl::Status s = RunMicroSteps(reducer_ != nullptr ? reducer_->rank() : 0, &r, &loss_sum);
      !s.ok()) {
    if (reducer_ != nullptr && reducer_->overlapped()) reducer_->AbortStep();
    return s;
  }
  state_.micro_step += sequences;
  if (reducer_ != nullptr) ANERD_RETURN_IF_ERROR(Reduce(&r, &loss_sum));
  r.loss = loss_sum / static_cast<double>(sequences);
  {
    std::optional<ScopedSpan> optim_span(std::in_place, spans_, "optimizer");
    const auto ostart = std::chrono::steady_clock::now();
    const double unscale = 1.0 / (state_.loss_scale * static_cast<double>(sequences));
    double halves[2] = {0, 0};
    model_->ParallelFor(static_cast<int64_t>(grads_.size()), [&](int64_t begin, int64_t end) {
      halves[begin == 0 ? 0 : 1] = SumSquares(grads_.data() + begin, end - begin);
    });
    const double norm = std::sqrt(halves[0] + halves[1]) * unscale;
    r.grad_norm = norm;
    if (!std::isfinite(norm)) {
      r.skipped = true;
      ++state_.skipped_steps;
      state_.good_steps = 0;
      if (dynamic_scale_) state_.loss_scale = std::max(kMinScale, state_.loss_scale / 2);
    } else {
      double mult = unscale;
      if (spec_.clip > 0 && norm > spec_.clip) mult *= spec_.clip / norm;
      r.lr = ScheduledLr(spec_.schedule == "cosine", spec_.lr, spec_.min_lr, spec_.warmup,
                         state_.step, state_.total_steps);
      Update(r.lr, mult);
      if (dynamic_scale_ && ++state_.good_steps >= kGrowthInterval) {
        state_.loss_scale = std::min(kMaxScale, state_.loss_scale * 2);
        state_.good_steps = 0;
      }
    }
    r.phases.optim_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ostart)
            .count();
    optim_span.reset();
    if (!r.skipped) {
      ScopedSpan span(spans_, "stage_weights");
      model_->StageWeights(params_.data(), &r.phases);
    }
  }
  ++state_.step;
  state_.last_loss = r.loss;
  r.step = state_.step;
  r.step_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  r.tokens_per_s = static_cast<double>(sequences) * seq / (r.step_ms / 1000.0);
  r.flops = model_->FlopsPerSequence() * static_cast<double>(sequences);
  r.tflops = r.flops / (r.step_ms * 1e9);
  return r;
}

absl::Status Trainer::SaveCheckpoint(const std::string& path) const {
  return WriteCheckpoint(path, CheckpointView{&spec_, &state_, params_, adam_m_, adam_v_});
}

Checkpoint Trainer::CopyCheckpoint(bool with_optimizer) const {
  Checkpoint c;
  c.spec = spec_;
  c.state = state_;
  c.params = params_;
  if (with_optimizer) {
    c.adam_m = adam_m_;
    c.adam_v = adam_v_;
  }
  return c;
}

absl::Status Trainer::ExportLlama2c(const std::string& path) const {
  return training::ExportLlama2c(path, spec_.model, params_);
}

absl::StatusOr<double> Trainer::EvalLoss(int n) {
  double sum = 0;
  PhaseTimes t;
  for (int k = 0; k < n; ++k) {
    const int64_t p = data_->WindowStart(false, 0, k, spec_.model.seq);
    window_.resize(spec_.model.seq + 1);
    data_->Copy(p, spec_.model.seq + 1, window_.data());
    ANERD_ASSIGN_OR_RETURN(double loss,
                           model_->Loss(params_.data(), window_.data(), window_.data() + 1, &t));
    sum += loss;
  }
  return sum / n;
}

}  // namespace anerd::training
