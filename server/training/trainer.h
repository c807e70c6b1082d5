// The training engine's entry point (issue 6): one training run of a Llama-style model on a
// backend, step by step, with checkpoints and llama2.c export.
//
// Step semantics: one call = one optimizer step = `accum` micro-steps of one sequence each (data
// sampling: data.h) on each of R ranks (R = 1 without a gradient reducer; gradient_reducer.h).
// Each micro-step's loss-scaled gradient is computed into a zeroed buffer and added to the step's
// sum in micro-step order (so accumulation computes the same expression as a reduction over
// ranks: gradient_reducer.h; with accum > 1 this costs one more parameter-sized fp32 buffer); the
// sum is reduced over ranks, unscaled by 1/(scale·accum·R), checked for inf/NaN (dynamic scaling:
// halve the scale and skip the update; fixed: skip the update), clipped to the global L2 norm
// `clip`, then AdamW (fp32 master weights and moments; weight decay on matrices and the embedding
// only) with the scheduled lr of that step. A skipped step still counts as a step (it consumes its
// data). Dynamic loss scaling starts at 1024, doubles after 200 consecutive finite steps (at most
// 65536) and halves on every non-finite step (at least 1/65536).
//
// Thread-safety: a Trainer is used by one thread at a time. It runs one internal worker thread for
// the weight-gradient GEMMs (and half of the optimizer, classifier and re-staging work). With an
// overlapped reducer (gradient_reducer.h) the last micro-step's backward pass hands each range of
// final gradients to it from that worker (adding the micro-step's part into the step's sum there
// first, with accum > 1), and the reducer's own thread reduces them while the pass goes on.
// Performance: the engine keeps two threads busy itself (kernels on the caller, dW on the worker;
// the worker holds a CPU seat while it runs a task, so the CPU backend's pool runs the kernels on
// both cores only while the worker is idle: dw_worker.h), so it wants single-threaded BLAS calls:
// with OpenBLAS's pool of 2 on top, stories15m measured 2–2.6× slower on the 2-core dev machine
// (bench/README.md). anerd's main and the CPU backend make BLAS single-threaded for the process
// (backend/cpu/kernels/parallel.h ConfigureBlasThreading); other hosts of a Trainer should call
// that first too.
#ifndef ANERD_SERVER_TRAINING_TRAINER_H_
#define ANERD_SERVER_TRAINING_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/training/config.h"
#include "server/training/data.h"
#include "server/training/evaluate.h"
#include "server/training/gradient_reducer.h"
#include "server/training/model.h"
#include "server/training/model_io.h"
#include "server/training/span_log.h"
#include "server/training/trainer_inputs.h"

namespace anerd::training {

struct StepReport {
  int64_t step = 0;       // 1-based index of the step just run
  double loss = 0;        // mean cross-entropy over the step's micro-steps (before the update)
  double lr = 0;          // learning rate used (0 for a skipped step's update)
  double grad_norm = 0;   // global L2 norm of the unscaled gradient, before clipping
  double loss_scale = 0;  // scale used for this step
  bool skipped = false;   // non-finite gradient: no update
  double step_ms = 0;
  double tokens_per_s = 0;
  double flops = 0;   // model FLOPs of the step (Model::FlopsPerSequence × accum)
  double tflops = 0;  // flops / step time
  PhaseTimes phases;
  // Data-parallel steps (issue 24; unset for one rank): ranks, the bytes each rank contributed to
  // the gradient reduction, and — filled in by the rank host on rank 0 (distributed/) — the
  // slowest rank's index and step time and the fastest rank's step time. With an overlapped
  // reducer (bucketed_reducer.h) also the number of buckets.
  std::optional<int64_t> ranks;
  std::optional<int64_t> allreduce_bytes;
  std::optional<int64_t> allreduce_buckets;  // overlapped reduction: buckets reduced (overlap)
  std::optional<int64_t> slowest_rank;
  std::optional<double> slowest_rank_ms;
  std::optional<double> fastest_rank_ms;
};

class Trainer {
 public:
  // Compiles the kernels once through `backend` (not owned; must outlive the trainer), loads data
  // and the initial model. INVALID_ARGUMENT for a bad spec (ValidateSpec), bad data or model file,
  // or an init model whose shape differs from spec.model (seq may differ).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainSpec& spec,
                                                         backend::Backend* backend);
  // The same from inputs already read (ReadTrainerInputs(spec, /*with_init=*/true),
  // trainer_inputs.h): no file is read, so the caller can read them off the device executor.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainSpec& spec, TrainerInputs in,
                                                         backend::Backend* backend);
  // Restores config, weights, optimizer, loss-scale state, RNG, data cursor and step from our
  // checkpoint format; `extra_steps` > 0 raises the total step count. Resuming reproduces the
  // uninterrupted run exactly in fp32 mode (and in ane mode: every step is deterministic).
  static absl::StatusOr<std::unique_ptr<Trainer>> Resume(const std::string& checkpoint_path,
                                                         backend::Backend* backend,
                                                         int64_t extra_steps = 0);
  // The same from a checkpoint already read (ReadCheckpoint), so that the caller can read it off
  // the device executor; the second also from its inputs already read
  // (ReadTrainerInputs(checkpoint.spec, /*with_init=*/false)): no file is read.
  static absl::StatusOr<std::unique_ptr<Trainer>> Resume(Checkpoint checkpoint,
                                                         backend::Backend* backend,
                                                         int64_t extra_steps = 0);
  static absl::StatusOr<std::unique_ptr<Trainer>> Resume(Checkpoint checkpoint, TrainerInputs in,
                                                         backend::Backend* backend,
                                                         int64_t extra_steps = 0);
  ~Trainer();

  // One optimizer step (with accumulation); FAILED_PRECONDITION when done.
  absl::StatusOr<StepReport> Step();
  int64_t step() const { return state_.step; }
  int64_t total_steps() const { return state_.total_steps; }
  bool done() const { return state_.step >= state_.total_steps; }
  const TrainSpec& spec() const { return spec_; }
  const TrainState& state() const { return state_; }

  // Atomic (temporary file, fsync, rename), CRC per section (model_io.h).
  absl::Status SaveCheckpoint(const std::string& path) const;
  // A copy of what SaveCheckpoint writes (the Adam moments only `with_optimizer`), to be written
  // by another thread while this trainer trains on (an export).
  Checkpoint CopyCheckpoint(bool with_optimizer) const;
  absl::Status ExportLlama2c(const std::string& path) const;

  // Mean loss of the model on `n` sequential windows starting at token 0 (forward only).
  absl::StatusOr<double> EvalLoss(int n);
  // The loss of the current weights on the spec's held-out data (evaluate.h HeldOutFor, at most
  // spec().eval_batches windows), forward only: no parameter, optimizer, data-cursor or RNG state
  // changes, so training continues exactly as without it. The separate held-out file is opened
  // by Create/Resume when eval_every > 0, else on the first call.
  absl::StatusOr<EvalReport> EvalHeldOut();
  const std::vector<float>& params() const { return params_; }
  const Model& model() const { return *model_; }
  // Wall time the backend spent compiling this trainer's kernels when it was created (ms).
  double compile_ms() const { return model_->compile_ms(); }

  // Data-parallel training (issue 24): `reducer` (not owned; must outlive the trainer or be
  // replaced first; null = one rank) reduces each step's gradients and loss over the ranks and
  // decides this trainer's data shard (gradient_reducer.h). Set before the first Step.
  void SetGradientReducer(GradientReducer* reducer) { reducer_ = reducer; }
  // Makes the spec's rank count `ranks` (the job's world size), before the first Step. A step
  // takes spec().ranks × spec().accum sequences; with `keep_batch` (a resumed checkpoint) a
  // different `ranks` keeps that number by changing accum — the same sequences in the same order,
  // so the run continues exactly (bit for bit between 2 ranks and accumulation of 2) — or is
  // refused when `ranks` does not divide it. Without `keep_batch` (a new job) a different
  // `ranks` is refused. INVALID_ARGUMENT names both counts.
  absl::Status AdoptRanks(int ranks, bool keep_batch);

  // Records measured spans of every later step into `spans` (not owned; must outlive the trainer
  // or be replaced first; null stops): "step" enclosing "zero_grads", per micro-step "forward" and
  // "backward" with their phases and kernels, the dW tasks on the worker thread, "optimizer" and
  // "stage_weights". Spans of step N are tagged N.
  void SetSpanLog(SpanLog* spans) {
    spans_ = spans;
    model_->SetSpanLog(spans);
  }
  // Model::SetKernelYield: called between the kernel evaluations of every later step and
  // evaluation, and between the slices of the step's long CPU passes (clearing the gradients,
  // waiting for the dW GEMMs, the optimizer, staging the weights: each slice a few ms), so an
  // interactive call waits at most about one kernel; empty (the default) = none.
  void SetKernelYield(std::function<void()> yield) {
    yield_ = yield;
    model_->SetKernelYield(std::move(yield));
  }

 private:
  Trainer() = default;
  absl::Status Init(backend::Backend* backend, TrainerInputs in);
  absl::Status OpenHeldOut();
  void Update(double lr, double mult);
  // fn over [0, n) in slices of 4M elements, each split across two threads (Model::ParallelFor),
  // with the kernel yield before each slice. For elementwise passes only (the cut points move).
  void ForSlices(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
  absl::Status RunMicroSteps(int rank, StepReport* r, double* loss_sum);
  void ArmOverlap(bool add_micro);
  absl::Status Reduce(StepReport* r, double* loss_sum);

  TrainSpec spec_;
  TrainState state_;
  bool dynamic_scale_ = true;
  std::unique_ptr<TokenData> data_;
  std::unique_ptr<TokenData> val_data_;  // val_data_path's tokens, when evaluating on them
  std::vector<uint32_t> window_;         // the current micro-step's seq + 1 tokens
  std::unique_ptr<Model> model_;
  std::vector<float> params_, grads_, adam_m_, adam_v_;
  std::vector<float> micro_grads_;  // micro-steps after the first (accum > 1), then added
  GradientReducer* reducer_ = nullptr;
  SpanLog* spans_ = nullptr;
  std::function<void()> yield_;  // SetKernelYield; empty = none
};

// Synthetic story corpus (our own small grammar, common/synth_stories.h), deterministic from the
// seed; used by `anectl data synth` and tests.
std::string SynthesizeStories(uint64_t seed, size_t bytes);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_TRAINER_H_
