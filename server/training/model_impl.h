// Internal to the training model (model.cc, model_layer.cc): the kernel ids, the per-layer saved
// state and Model::Impl. Not part of the training API; include model.h instead.
// Thread-safety: as Model (one thread at a time; the DwWorker runs queued weight-gradient tasks).
#ifndef ANERD_SERVER_TRAINING_MODEL_IMPL_H_
#define ANERD_SERVER_TRAINING_MODEL_IMPL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/training/dw_worker.h"
#include "server/training/kernels.h"
#include "server/training/model.h"
#include "server/training/span_log.h"

namespace anerd::training {
namespace model_internal {

// Adds the elapsed wall time in ms to *acc when destroyed, and records it as a span named `name`
// in `spans` (when not null): the phase totals and the trace come from the same clock readings.
class Timer {
 public:
  using Clock = SpanLog::Clock;
  Timer(double* acc, SpanLog* spans, const char* name, int32_t layer = -1)
      : acc_(acc), spans_(spans), name_(name), layer_(layer), start_(Clock::now()) {}
  ~Timer() {
    const Clock::time_point end = Clock::now();
    *acc_ += std::chrono::duration<double, std::milli>(end - start_).count();
    if (spans_ != nullptr) spans_->Record(name_, layer_, start_, end);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

 private:
  double* acc_;
  SpanLog* spans_;
  const char* name_;
  int32_t layer_;
  Clock::time_point start_;
};

}  // namespace model_internal

class Model::Impl {
 public:
  using NamedTensor = backend::NamedTensor;
  using Tensor = backend::Tensor;
  enum KernelId {
    kSdpaFwd,
    kWoFwd,
    kFfnFused,
    kFfnBwdW2t,
    kFfnBwdW13t,
    kWotBwd,
    kSdpaBwd1,
    kSdpaBwd2,
    kQBwd,
    kKvBwd,
    kNumKernels
  };

  static bool HasWeights(int k) { return k != kSdpaBwd1 && k != kSdpaBwd2; }
  // The kernel's name in traces (kernels.h).
  static const char* KernelName(int k) {
    static constexpr const char* kNames[kNumKernels] = {
        "kernel sdpaFwd",    "kernel woFwd",  "kernel ffnFused", "kernel ffnBwdW2t",
        "kernel ffnBwdW13t", "kernel wotBwd", "kernel sdpaBwd1", "kernel sdpaBwd2",
        "kernel qBwd",       "kernel kvBwd"};
    return k >= 0 && k < kNumKernels ? kNames[k] : "kernel";
  }
  SpanLog* spans() const { return spans_; }
  void set_spans(SpanLog* spans) { spans_ = spans; }
  void set_kernel_yield(std::function<void()> yield) { yield_ = std::move(yield); }
  void set_grads_final_hook(Model::GradientsFinalHook hook) { grads_final_ = std::move(hook); }
  // Gives way to queued interactive calls (the kernel yield) when one is set.
  void Yield() const {
    if (yield_) yield_();
  }
  // Waits for the dW worker's queued tasks, yielding every ~2 ms meanwhile (issue 22: a
  // long backlog of dW GEMMs would otherwise hold interactive calls off for its whole length).
  void WaitForDw() {
    if (yield_) {
      while (!worker_.WaitFor(std::chrono::microseconds(2000))) yield_();
    }
    worker_.Wait();
  }
  // `fn` as a dW worker task that records itself as the span `name` (on the worker's thread).
  template <typename F>
  std::function<void()> Traced(const char* name, int32_t layer, F fn) {
    return [spans = spans_, name, layer, fn = std::move(fn)]() mutable {
      ScopedSpan span(spans, name, layer);
      fn();
    };
  }

  // Per-layer saved forward activations and backward temporaries read by the dW worker.
  struct LayerState {
    std::vector<float> x, xn, x2, x2n, rinv_att, rinv_ffn;
    std::vector<float> attn_out, q_rope, k_rope, v, h1, h3, gate;
    std::vector<float> q_raw, k_raw;  // projections before the QK-norm (qk_norm only)
    std::vector<float> dffn, dh1, dh3, dout, dq, dk, dv;
  };

  Impl(const ModelConfig& c, double alpha)
      : c_(c),
        layout_(c),
        alpha_(static_cast<float>(alpha)),
        eps_(static_cast<float>(c.norm_eps)),
        rope_half_(c.rope_style == ModelConfig::RopeStyle::kHalf) {}

  absl::Status Compile(backend::NumericsMode numerics, backend::Backend* backend);
  void SetCompaction(std::vector<uint32_t> ids);
  void StageWeights(const float* params, PhaseTimes* t);
  absl::StatusOr<double> Forward(const float* params, const uint32_t* tokens,
                                 const uint32_t* targets, float grad_scale, PhaseTimes* t);
  absl::Status Backward(const float* params, const uint32_t* tokens, float* grads, PhaseTimes* t);
  double Flops() const;
  double compile_ms() const { return compile_ms_; }
  static bool IsForwardKernel(int k) { return k == kSdpaFwd || k == kWoFwd || k == kFfnFused; }
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t mid = n / 2;
    worker_.Submit([&fn, mid, n] { fn(mid, n); });
    try {
      fn(0, mid);
    } catch (...) {
      worker_.Wait();  // the worker's half still uses `fn`; its own exception is dropped
      throw;
    }
    worker_.Wait();
  }
  // ParallelFor with both halves run off the calling thread (on the dW worker and on `helper_`)
  // while the caller gives way to interactive calls every ~2 ms until both are done (issue 22:
  // the classifier's GEMMs, ~100 ms each quiet, were the longest hold between yield points).
  // The same two calls as ParallelFor, so the same bits; the dW worker must be idle on entry (its
  // half would otherwise wait behind a backlog). Without a kernel yield this is ParallelFor.
  void ParallelForYielding(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
  const ModelConfig& config() const { return c_; }
  const ParamLayout& layout() const { return layout_; }

 private:
  uint16_t* In(int k, int l) {
    return static_cast<uint16_t*>(inputs_[k][HasWeights(k) ? l : 0][0].tensor.mutable_data());
  }
  const KernelLayout& Lay(int k) const { return layouts_[k]; }
  int64_t SlotOffset(int k, const char* name) const { return Lay(k).FindSlot(name)->offset; }
  // Writes act [rows][S] into kernel k's slot `name` for layer l.
  void PutAct(int k, int l, const char* name, const float* act, int64_t rows, PhaseTimes* t);
  // Copies output block `name` of `out` (kernel k) into dst [size][S].
  void GetOut(int k, const Tensor& out, const char* name, float* dst, PhaseTimes* t);
  absl::StatusOr<Tensor> Run(int k, int l, PhaseTimes* t);
  void StageLayer(int l, const float* p, std::vector<float>* scratch);
  absl::Status ForwardLayer(int l, const float* p, const float* x, float* x_next, PhaseTimes* t);
  absl::Status BackwardLayer(int l, const float* p, float* grads, std::vector<float>* dy,
                             PhaseTimes* t);
  // The overlap seam (Model::SetGradientsFinalHook): reports [offset, offset + count) final once
  // the dW tasks already submitted for it are done, by queueing the report behind them on the
  // worker (which runs its tasks in order). A scheduler that runs dW tasks elsewhere must make
  // the report wait for them too. No-op without a hook.
  void GradsFinalAfterDw(int64_t offset, int64_t count);
  absl::Status AttentionBackward(int l, const float* p, float* grads, const float* da,
                                 PhaseTimes* t);

  ModelConfig c_;
  ParamLayout layout_;
  float alpha_;
  float eps_;  // RMSNorm epsilon (every norm)
  bool rope_half_;
  std::vector<KernelLayout> layouts_;
  std::vector<std::unique_ptr<backend::CompiledProgram>> programs_;
  std::vector<std::vector<std::vector<NamedTensor>>> inputs_;  // [kernel][layer or 0]
  std::vector<LayerState> st_;
  std::vector<float> x_final_, xf_, rinv_final_, logits_, dx0_;
  std::vector<uint32_t> compact_ids_;     // empty = full vocab
  std::vector<int32_t> full_to_compact_;  // when compacting
  std::vector<float> cembed_, dcembed_;   // compact classifier rows and their gradient
  std::vector<uint32_t> targets_;         // (compact) targets of the current pass
  std::vector<float> tmp1_, tmp2_, tmp3_, dx2_;
  std::vector<float> rope_cos_, rope_sin_;  // [S][HD]
  DwWorker worker_;
  DwWorker helper_;              // runs the caller's half in ParallelForYielding; idle otherwise
  SpanLog* spans_ = nullptr;     // not owned; null when not tracing
  std::function<void()> yield_;  // Model::SetKernelYield; empty = none
  Model::GradientsFinalHook grads_final_;  // Model::SetGradientsFinalHook; empty = none
  double compile_ms_ = 0;                  // backend Compile calls in Compile()
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_MODEL_IMPL_H_
