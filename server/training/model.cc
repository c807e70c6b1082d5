#include "server/training/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"
#include "common/mil/verifier.h"
#include "common/status_macros.h"
#include "server/training/cpu_ops.h"
#include "server/training/data.h"
#include "server/training/dw_worker.h"
#include "server/training/kernels.h"
#include "server/training/model_impl.h"
#include "server/training/staging.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::training {

using model_internal::Timer;

absl::Status Model::Impl::Compile(backend::NumericsMode numerics, backend::Backend* backend) {
  const ModelShape shape = c_.Shape();
  ANERD_RETURN_IF_ERROR(shape.Validate());
  ANERD_ASSIGN_OR_RETURN(std::vector<Kernel> kernels, AllKernels(shape, alpha_));
  ANERD_ASSIGN_OR_RETURN(mil::WeightFiles constants, KernelConstants(shape));
  backend::CompileOptions options;
  options.numerics = numerics;
  inputs_.resize(kNumKernels);
  for (int k = 0; k < kNumKernels; ++k) {
    ANERD_ASSIGN_OR_RETURN(mil::VerifiedProgram verified,
                           mil::VerifyProgram(kernels[k].program, constants));
    absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> compiled_or;
    {
      Timer timer(&compile_ms_, nullptr, "compile");
      compiled_or = backend->Compile(verified, options);
    }
    ANERD_ASSIGN_OR_RETURN(auto compiled, std::move(compiled_or));
    programs_.push_back(std::move(compiled));
    layouts_.push_back(kernels[k].layout);
    const KernelLayout& kl = layouts_.back();
    const mil::TensorType type{mil::DType::kFp16, {1, kl.in_channels, 1, kl.in_spatial}};
    const int copies = HasWeights(k) ? c_.layers : 1;
    for (int l = 0; l < copies; ++l) {
      std::vector<NamedTensor> in;
      in.push_back(NamedTensor{"x", Tensor(type)});
      inputs_[k].push_back(std::move(in));
    }
  }
  const int64_t d = c_.dim, s = c_.seq, h = c_.hidden, qd = c_.q_dim(), kvd = c_.kv_dim();
  st_.resize(c_.layers);
  for (LayerState& ls : st_) {
    for (auto* v : {&ls.x, &ls.xn, &ls.x2, &ls.x2n, &ls.dffn, &ls.dout}) v->resize(d * s);
    for (auto* v : {&ls.rinv_att, &ls.rinv_ffn}) v->resize(s);
    for (auto* v : {&ls.attn_out, &ls.q_rope, &ls.dq}) v->resize(qd * s);
    for (auto* v : {&ls.k_rope, &ls.v, &ls.dk, &ls.dv}) v->resize(kvd * s);
    for (auto* v : {&ls.h1, &ls.h3, &ls.gate, &ls.dh1, &ls.dh3}) v->resize(h * s);
    if (c_.qk_norm) {
      ls.q_raw.resize(qd * s);
      ls.k_raw.resize(kvd * s);
    }
  }
  RopeTables(s, c_.head_dim, shape.rope_theta, shape.rope_half, &rope_cos_, &rope_sin_);
  x_final_.resize(d * s);
  xf_.resize(d * s);
  dx0_.resize(d * s);
  rinv_final_.resize(s);
  targets_.resize(s);
  return absl::OkStatus();
}

void Model::Impl::SetCompaction(std::vector<uint32_t> ids) {
  compact_ids_ = std::move(ids);
  full_to_compact_.assign(c_.vocab, -1);
  for (size_t i = 0; i < compact_ids_.size(); ++i) full_to_compact_[compact_ids_[i]] = i;
  cembed_.assign(compact_ids_.size() * c_.dim, 0.0f);
  dcembed_.assign(compact_ids_.size() * c_.dim, 0.0f);
  if (compact_ids_.empty()) full_to_compact_.clear();
}

void Model::Impl::StageLayer(int l, const float* p, std::vector<float>* scratch) {
  const ParamLayout::Layer& w = layout_.layer(l);
  const int64_t d = c_.dim, h = c_.hidden, qd = c_.q_dim(), kvd = c_.kv_dim();
  auto sp = [this](int k) { return Lay(k).in_spatial; };
  PutTransposed(In(kSdpaFwd, l) + SlotOffset(kSdpaFwd, "wq_t"), sp(kSdpaFwd), p + w.wq, qd, d,
                scratch);
  PutTransposed(In(kSdpaFwd, l) + SlotOffset(kSdpaFwd, "wk_t"), sp(kSdpaFwd), p + w.wk, kvd, d,
                scratch);
  PutTransposed(In(kSdpaFwd, l) + SlotOffset(kSdpaFwd, "wv_t"), sp(kSdpaFwd), p + w.wv, kvd, d,
                scratch);
  PutTransposed(In(kWoFwd, l) + SlotOffset(kWoFwd, "wo_t"), sp(kWoFwd), p + w.wo, d, qd, scratch);
  PutTransposed(In(kFfnFused, l) + SlotOffset(kFfnFused, "w1_t"), sp(kFfnFused), p + w.w1, h, d,
                scratch);
  PutTransposed(In(kFfnFused, l) + SlotOffset(kFfnFused, "w3_t"), sp(kFfnFused), p + w.w3, h, d,
                scratch);
  PutRows(In(kFfnFused, l) + SlotOffset(kFfnFused, "w2"), sp(kFfnFused), p + w.w2, d, h);
  PutRows(In(kFfnBwdW2t, l) + SlotOffset(kFfnBwdW2t, "w2"), sp(kFfnBwdW2t), p + w.w2, d, h);
  PutRows(In(kFfnBwdW13t, l) + SlotOffset(kFfnBwdW13t, "w1"), sp(kFfnBwdW13t), p + w.w1, h, d);
  PutRows(In(kFfnBwdW13t, l) + SlotOffset(kFfnBwdW13t, "w3"), sp(kFfnBwdW13t), p + w.w3, h, d);
  PutRows(In(kWotBwd, l) + SlotOffset(kWotBwd, "wo"), sp(kWotBwd), p + w.wo, d, qd);
  PutRows(In(kQBwd, l) + SlotOffset(kQBwd, "wq"), sp(kQBwd), p + w.wq, qd, d);
  PutRows(In(kKvBwd, l) + SlotOffset(kKvBwd, "wk"), sp(kKvBwd), p + w.wk, kvd, d);
  PutRows(In(kKvBwd, l) + SlotOffset(kKvBwd, "wv"), sp(kKvBwd), p + w.wv, kvd, d);
  if (c_.qk_norm) {  // column 0: q-norm weights, column 1: k-norm weights, channels [0, HD)
    uint16_t* slot = In(kSdpaFwd, l) + SlotOffset(kSdpaFwd, "qk_norm");
    for (int64_t i = 0; i < c_.head_dim; ++i) {
      slot[i * sp(kSdpaFwd)] = FloatToHalf(p[w.q_norm + i]);
      slot[i * sp(kSdpaFwd) + 1] = FloatToHalf(p[w.k_norm + i]);
    }
  }
}

void Model::Impl::StageWeights(const float* params, PhaseTimes* t) {
  Timer timer(&t->io_ms, spans_, "io");
  // Two layers at a time, one per thread, with a yield between pairs (issue 22: staging all
  // layers at once held interactive calls off for ~0.25 s). Each layer is staged on its own, so
  // the grouping does not change a bit.
  for (int first = 0; first < c_.layers; first += 2) {
    Yield();
    ParallelFor(std::min(2, c_.layers - first), [this, params, first](int64_t begin, int64_t end) {
      std::vector<float> scratch;
      for (int64_t l = begin; l < end; ++l)
        StageLayer(first + static_cast<int>(l), params, &scratch);
    });
  }
  for (size_t i = 0; i < compact_ids_.size(); ++i) {
    std::memcpy(&cembed_[i * c_.dim],
                params + layout_.classifier() + int64_t{compact_ids_[i]} * c_.dim,
                c_.dim * sizeof(float));
  }
}

void Model::Impl::PutAct(int k, int l, const char* name, const float* act, int64_t rows,
                         PhaseTimes* t) {
  Timer timer(&t->io_ms, spans_, "io");
  const KernelLayout& kl = Lay(k);
  const int64_t off = kl.FindSlot(name)->offset;
  if (kl.slots_on_channels) {
    FloatToHalfArray(act, In(k, l) + off * kl.in_spatial, rows * kl.in_spatial);
  } else {
    PutRows(In(k, l) + off, kl.in_spatial, act, rows, c_.seq);
  }
}

void Model::Impl::GetOut(int k, const Tensor& out, const char* name, float* dst, PhaseTimes* t) {
  Timer timer(&t->io_ms, spans_, "io");
  const Block* b = Lay(k).FindOutput(name);
  const auto* src = static_cast<const uint16_t*>(out.data());
  HalfToFloatArray(src + b->offset * c_.seq, dst, b->size * c_.seq);
}

absl::StatusOr<backend::Tensor> Model::Impl::Run(int k, int l, PhaseTimes* t) {
  if (yield_) yield_();  // between two kernel evaluations, outside the kernel's time
  double ms = 0;
  absl::StatusOr<backend::RunResult> run;
  {
    Timer timer(&ms, spans_, KernelName(k), HasWeights(k) ? l : -1);
    run = programs_[k]->Run(inputs_[k][HasWeights(k) ? l : 0]);
  }
  t->kernel_ms += ms;
  std::optional<double>& pass = IsForwardKernel(k) ? t->kernel_fwd_ms : t->kernel_bwd_ms;
  pass = pass.value_or(0) + ms;
  ANERD_ASSIGN_OR_RETURN(backend::RunResult r, std::move(run));
  t->AddKernelHardware(r.timing);
  if (r.outputs.size() != 1) return absl::InternalError("training kernel: expected one output");
  return std::move(r.outputs[0].tensor);
}

absl::StatusOr<double> Model::Impl::Forward(const float* p, const uint32_t* tokens,
                                            const uint32_t* targets, float grad_scale,
                                            PhaseTimes* t) {
  const int64_t d = c_.dim, s = c_.seq;
  worker_.Wait();  // a previous pass's tasks read the buffers overwritten below
  tmp2_.resize(d * s);
  {
    Timer timer(&t->elem_ms, spans_, "elem");
    EmbeddingForward(p + layout_.embed(), tokens, d, s, tmp2_.data());
  }
  for (int l = 0; l < c_.layers; ++l) {
    ANERD_RETURN_IF_ERROR(ForwardLayer(l, p, tmp2_.data(), x_final_.data(), t));
    if (l + 1 < c_.layers) std::copy(x_final_.begin(), x_final_.end(), tmp2_.begin());
  }
  {
    Timer timer(&t->rms_ms, spans_, "rms");
    RmsNormForward(x_final_.data(), p + layout_.rms_final(), d, s, xf_.data(), rinv_final_.data(),
                   eps_);
  }
  Timer timer(&t->cls_ms, spans_, "cls");
  const bool compact = !compact_ids_.empty();
  const int64_t vc = compact ? static_cast<int64_t>(compact_ids_.size()) : c_.vocab;
  const float* cls = compact ? cembed_.data() : p + layout_.classifier();
  for (int64_t i = 0; i < s; ++i) {
    const int32_t id = compact ? full_to_compact_[targets[i]] : targets[i];
    if (id < 0) return absl::InvalidArgumentError("target token outside the compacted vocabulary");
    targets_[i] = static_cast<uint32_t>(id);
  }
  logits_.resize(s * vc);
  // Positions split across the two threads: logits rows [b, e) = xf[:, b:e]ᵀ·clsᵀ, then their loss.
  double part[2] = {0, 0};
  ParallelForYielding(s, [&](int64_t b, int64_t e) {
    if (b == e) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, e - b, vc, d, 1.0f, xf_.data() + b, s, cls,
                d, 0.0f, logits_.data() + b * vc, vc);
    const double frac = static_cast<double>(e - b) / s;
    part[b == 0 ? 0 : 1] = frac * CrossEntropy(logits_.data() + b * vc, targets_.data() + b, e - b,
                                               vc, static_cast<float>(grad_scale * frac));
  });
  return part[0] + part[1];
}

absl::Status Model::Impl::Backward(const float* p, const uint32_t* tokens, float* g,
                                   PhaseTimes* t) {
  const int64_t d = c_.dim, s = c_.seq;
  const bool compact = !compact_ids_.empty();
  const int64_t vc = compact ? static_cast<int64_t>(compact_ids_.size()) : c_.vocab;
  const float* cls = compact ? cembed_.data() : p + layout_.classifier();
  float* dcls = compact ? dcembed_.data() : g + layout_.classifier();
  std::vector<float> dy(d * s);
  Yield();  // between the forward's classifier GEMMs and the backward's (issue 22)
  {
    Timer timer(&t->cls_ms, spans_, "cls");
    tmp1_.resize(d * s);
    ParallelForYielding(s, [&](int64_t b, int64_t e) {
      if (b == e) return;
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, d, e - b, vc, 1.0f, cls, d,
                  logits_.data() + b * vc, vc, 0.0f, tmp1_.data() + b, s);
    });
    worker_.Submit(Traced("dW classifier", -1, [this, dcls, vc, d, s] {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, vc, d, s, 1.0f, logits_.data(), vc,
                  xf_.data(), s, 1.0f, dcls, d);
    }));
  }
  {
    Timer timer(&t->rms_ms, spans_, "rms");
    RmsNormBackward(tmp1_.data(), x_final_.data(), p + layout_.rms_final(), rinv_final_.data(), d,
                    s, dy.data(), g + layout_.rms_final());
  }
  // Overlap seam: the final norm, with an uncompacted untied classifier (their layout tail).
  const bool classifier_last = compact && !c_.tied_embeddings;
  const int64_t tail_end =
      c_.tied_embeddings || compact ? layout_.rms_final() + d : layout_.total();
  GradsFinalAfterDw(layout_.rms_final(), tail_end - layout_.rms_final());
  for (int l = c_.layers - 1; l >= 0; --l) {
    ANERD_RETURN_IF_ERROR(BackwardLayer(l, p, g, &dy, t));
    const int64_t end = l + 1 < c_.layers ? layout_.layer(l + 1).wq : layout_.rms_final();
    GradsFinalAfterDw(layout_.layer(l).wq, end - layout_.layer(l).wq);  // overlap seam
  }
  std::copy(dy.begin(), dy.end(), dx0_.begin());
  worker_.Submit(Traced("dW embedding", -1, [this, tokens, g, d, s] {
    EmbeddingBackward(dx0_.data(), tokens, d, s, g + layout_.embed());
  }));
  {
    Timer timer(&t->dw_wait_ms, spans_, "dw_wait");
    WaitForDw();
  }
  if (compact) {
    Timer timer(&t->cls_ms, spans_, "cls");
    for (int64_t i = 0; i < vc; ++i) {
      float* dst = g + layout_.classifier() + int64_t{compact_ids_[i]} * d;
      float* src = &dcembed_[i * d];
      for (int64_t k = 0; k < d; ++k) dst[k] += src[k];
      std::fill(src, src + d, 0.0f);
    }
  }
  if (grads_final_) {  // overlap seam: the last writes are done (the worker is idle)
    grads_final_(layout_.embed(), int64_t{c_.vocab} * d);
    if (classifier_last) grads_final_(layout_.classifier(), int64_t{c_.vocab} * d);
  }
  return absl::OkStatus();
}

void Model::Impl::ParallelForYielding(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (!yield_) return ParallelFor(n, fn);
  const int64_t mid = n / 2;
  helper_.Submit([&fn, mid] { fn(0, mid); });
  worker_.Submit([&fn, mid, n] { fn(mid, n); });
  constexpr auto kPoll = std::chrono::microseconds(2000);
  do {
    yield_();  // at least once, while both halves run
  } while (!helper_.WaitFor(kPoll));
  while (!worker_.WaitFor(kPoll)) yield_();
  try {
    helper_.Wait();  // rethrows its half's exception
  } catch (...) {
    worker_.Wait();  // already done; an exception of its own is dropped
    throw;
  }
  worker_.Wait();
}

void Model::Impl::GradsFinalAfterDw(int64_t offset, int64_t count) {
  if (!grads_final_) return;
  worker_.Submit([hook = grads_final_, offset, count] { hook(offset, count); });
}

double Model::Impl::Flops() const {
  const double s = c_.seq, d = c_.dim, l = c_.layers;
  const double mats =
      static_cast<double>(c_.LayerParams() - 2 * c_.dim) - (c_.qk_norm ? 2.0 * c_.head_dim : 0.0);
  const double fwd = 2.0 * s * l * mats;
  const double sdpa = l * 2.0 * c_.heads * 5.0 * s * s * c_.head_dim;
  const double cls = 2.0 * c_.vocab * d * s;
  return 3.0 * fwd + sdpa + 3.0 * cls;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const ModelConfig& config, double alpha,
                                                     backend::NumericsMode numerics,
                                                     backend::Backend* backend) {
  ANERD_RETURN_IF_ERROR(ValidateConfig(config));
  auto impl = std::make_unique<Impl>(config, alpha);
  ANERD_RETURN_IF_ERROR(impl->Compile(numerics, backend));
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->config(); }
const ParamLayout& Model::layout() const { return impl_->layout(); }
void Model::SetCompaction(std::vector<uint32_t> ids) { impl_->SetCompaction(std::move(ids)); }
void Model::StageWeights(const float* params, PhaseTimes* times) {
  impl_->StageWeights(params, times);
}

absl::StatusOr<double> Model::ForwardBackward(const float* params, const uint32_t* tokens,
                                              const uint32_t* targets, float grad_scale,
                                              float* grads, PhaseTimes* times) {
  double loss = 0;
  {
    ScopedSpan span(impl_->spans(), "forward");
    ANERD_ASSIGN_OR_RETURN(loss, impl_->Forward(params, tokens, targets, grad_scale, times));
  }
  ScopedSpan span(impl_->spans(), "backward");
  ANERD_RETURN_IF_ERROR(impl_->Backward(params, tokens, grads, times));
  return loss;
}

absl::StatusOr<double> Model::Loss(const float* params, const uint32_t* tokens,
                                   const uint32_t* targets, PhaseTimes* times) {
  return impl_->Forward(params, tokens, targets, 0.0f, times);
}

void Model::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  impl_->ParallelFor(n, fn);
}

double Model::FlopsPerSequence() const { return impl_->Flops(); }
double Model::compile_ms() const { return impl_->compile_ms(); }

void Model::SetSpanLog(SpanLog* spans) { impl_->set_spans(spans); }
void Model::SetKernelYield(std::function<void()> yield) {
  impl_->set_kernel_yield(std::move(yield));
}
void Model::SetGradientsFinalHook(GradientsFinalHook hook) {
  impl_->set_grads_final_hook(std::move(hook));
}

}  // namespace anerd::training
