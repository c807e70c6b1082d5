// The training model: parameters layout, initialisation, and one sequence's forward/backward pass
// through the ten dynamic kernels (kernels.h) on a backend plus the CPU ops (cpu_ops.h).
//
// Data flow per layer (activations [C][S] fp32 on the CPU, kernel I/O fp16):
//   xn = rmsnorm(x, rms_att) -> sdpaFwd (projections, QK-norm, RoPE, attention) -> attn_out,
//   q_rope, k_rope, v (and q_raw, k_raw with QK-norm) -> woFwd -> o;
//   x2 = x + α·o; x2n = rmsnorm(x2, rms_ffn) -> ffnFused -> x_next = x2 + α·W2(silu(W1 x2n)⊙W3
//   x2n).
// Backward mirrors it (docs/ANE_NOTES.md §5.4 with the exact RMSNorm gradient): dx kernels on the
// backend, RMSNorm/SiLU/RoPE/QK-norm/GQA backward on the CPU, and every weight-gradient GEMM (dW +=
// dY·Xᵀ, cblas) queued to one worker thread, overlapped with the following kernel evaluations.
//
// Weights are staged once into per-layer kernel inputs (StageWeights) and must be re-staged after
// every change of the parameters; only activation slots are written per pass.
// Thread-safety: a Model is used by one thread at a time (it owns the worker thread internally).
#ifndef ANERD_SERVER_TRAINING_MODEL_H_
#define ANERD_SERVER_TRAINING_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/training/config.h"

namespace anerd::training {

class SpanLog;

// One parameter tensor inside the flat fp32 parameter array.
struct ParamGroup {
  std::string name;  // "embed", "layers.0.wq", ..., "rms_final"
  int64_t offset = 0;
  int64_t size = 0;
  bool decay = false;  // weight decay applies (matrices and the embedding)
};

// Flat layout: embed [V][D]; per layer wq [QD][D], wk [KVD][D], wv [KVD][D], wo [D][QD],
// w1 [H][D], w2 [D][H], w3 [H][D], rms_att [D], rms_ffn [D], then with qk_norm q_norm [HD] and
// k_norm [HD]; then rms_final [D]; then, untied, lm_head [V][D]. Matrices are PyTorch layout
// W[out][in]. Default configs keep exactly the layout they had before the architecture fields.
class ParamLayout {
 public:
  struct Layer {
    int64_t wq, wk, wv, wo, w1, w2, w3, rms_att, rms_ffn;
    int64_t q_norm = -1, k_norm = -1;  // -1 without qk_norm
  };
  explicit ParamLayout(const ModelConfig& config);
  int64_t embed() const { return 0; }
  const Layer& layer(int l) const { return layers_[l]; }
  int64_t rms_final() const { return rms_final_; }
  // The classifier [V][D]: lm_head when untied, else the embedding.
  int64_t classifier() const { return classifier_; }
  int64_t total() const { return total_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

 private:
  std::vector<Layer> layers_;
  std::vector<ParamGroup> groups_;
  int64_t rms_final_ = 0;
  int64_t classifier_ = 0;
  int64_t total_ = 0;
};

// From-scratch initialisation, deterministic in `seed`: matrices U(−1,1)/√fan_in, with wo and w2
// further scaled by 1/√(2·layers); embedding (then lm_head) U(−1,1)·0.02; norm weights 1.
void InitParams(const ModelConfig& config, uint64_t seed, float* params);

struct PhaseTimes {
  double kernel_ms = 0;   // backend evaluations (the seed's "ane")
  double io_ms = 0;       // staging kernel inputs (incl. weight re-staging) and reading outputs
  double rms_ms = 0;      // RMSNorm forward/backward
  double elem_ms = 0;     // embedding, residual adds, SiLU/RoPE/GQA backward
  double cls_ms = 0;      // classifier forward/backward GEMMs and cross-entropy
  double dw_wait_ms = 0;  // waiting for the weight-gradient worker
  double optim_ms = 0;    // clipping, AdamW
  // Exposed (waited-for) gradient reduction over ranks (issue 24); unset for one rank.
  std::optional<double> allreduce_ms;
  // The device's own execution time of the kernel evaluations (part of kernel_ms), summed while
  // every evaluation reported one (backend::RunTiming::hardware_us); unset as soon as one did not
  // (cpu). `hw_simulated` when the values are ane-sim's model.
  std::optional<double> kernel_hw_ms;
  bool hw_simulated = false;
  bool kernel_hw_incomplete = false;  // an evaluation without a device time was seen
  // kernel_ms split by pass: the forward kernels (sdpaFwd, woFwd, ffnFused) and the backward
  // ones; set once a kernel of that pass ran (unset in step events logged before they existed).
  // Last, so positional initialisers of the older fields keep their meaning.
  std::optional<double> kernel_fwd_ms;
  std::optional<double> kernel_bwd_ms;
  // Overlapped reduction only (issue 24 item 2; unset otherwise): the reduction's whole time on
  // the communication thread, and the part of it hidden behind the backward pass (total minus
  // the exposed allreduce_ms, >= 0).
  std::optional<double> allreduce_total_ms;
  std::optional<double> allreduce_hidden_ms;

  void AddKernelHardware(const backend::RunTiming& timing) {
    if (kernel_hw_incomplete) return;
    if (!timing.hardware_us.has_value()) {
      kernel_hw_incomplete = true;
      kernel_hw_ms.reset();
      return;
    }
    kernel_hw_ms = kernel_hw_ms.value_or(0) + *timing.hardware_us / 1000.0;
    hw_simulated = timing.hardware_simulated;
  }
};

class Model {
 public:
  // Generates and compiles the ten kernels once through `backend` (not owned; must outlive the
  // model). `alpha` is the residual branch scale. Errors from generation/verification/compile.
  static absl::StatusOr<std::unique_ptr<Model>> Create(const ModelConfig& config, double alpha,
                                                       backend::NumericsMode numerics,
                                                       backend::Backend* backend);
  ~Model();

  const ModelConfig& config() const;
  const ParamLayout& layout() const;

  // Restricts the classifier to `ids` (sorted, distinct, < vocab); empty = full vocabulary. All
  // targets passed later must be in `ids`. Call StageWeights afterwards.
  void SetCompaction(std::vector<uint32_t> ids);
  // Copies the parameters into the kernels' weight slots (and the compact classifier).
  void StageWeights(const float* params, PhaseTimes* times);

  // One sequence: forward, loss, backward. grads += d(loss·grad_scale)/dparams. Returns the mean
  // cross-entropy over the S positions. Tokens/targets are S ids < vocab.
  absl::StatusOr<double> ForwardBackward(const float* params, const uint32_t* tokens,
                                         const uint32_t* targets, float grad_scale, float* grads,
                                         PhaseTimes* times);
  // Forward and loss only.
  absl::StatusOr<double> Loss(const float* params, const uint32_t* tokens, const uint32_t* targets,
                              PhaseTimes* times);

  // Runs fn(begin, end) over [0, n) split in two halves, the second on the worker thread (after
  // its queued tasks); returns when both halves are done. Used for the optimizer and re-staging.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // Model FLOPs of one sequence's forward+backward (docs/ANE_NOTES.md §6.3 "static" form,
  // GQA-aware): 3·fwd + sdpa + 3·cls with fwd = 2·S·L·(matrix params), sdpa = L·2·NH·5·S²·HD, cls =
  // 2·V·D·S.
  double FlopsPerSequence() const;
  // Wall time spent in the backend's Compile calls while the model was created (ms).
  double compile_ms() const;

  // Records measured spans (span_log.h) of every later pass into `spans` (not owned; must outlive
  // the model or be replaced first; null stops recording): phases, kernels by name, dW tasks.
  void SetSpanLog(SpanLog* spans);

  // Called before every kernel evaluation, on the thread running the pass (a no-op when empty,
  // the default). The session's executor passes one that runs its queued interactive tasks there,
  // so they wait for one kernel, not a whole step (server/engine/device_executor.h Yield). It must
  // not touch this model; its time counts in the step but in no phase.
  void SetKernelYield(std::function<void()> yield);

  // The overlap seam (issue 24 item 2): during later ForwardBackward calls, `hook(offset, count)`
  // is called for ranges of the parameter array whose gradients in that pass's `grads` are final
  // (every write of the pass to them, the dW GEMMs included, is done): together they cover
  // [0, layout().total()) exactly once per pass, in backward order (the final norm with an untied
  // classifier, then layer L-1 ... 0, then the embedding; with vocabulary compaction an untied
  // classifier last). Called on the dW worker thread or the pass's thread, never concurrently,
  // all before ForwardBackward returns; the hook must not touch the model. Empty (the default):
  // none, and the pass does nothing extra.
  using GradientsFinalHook = std::function<void(int64_t offset, int64_t count)>;
  void SetGradientsFinalHook(GradientsFinalHook hook);

 private:
  class Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_MODEL_H_
