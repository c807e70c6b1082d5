// One decoder layer of the training model (Model::Impl, model_impl.h): the forward through
// sdpaFwd, woFwd and ffnFused, and the backward through the dx kernels, with the CPU's RMSNorm,
// SiLU, RoPE, QK-norm and GQA backward and the weight-gradient GEMMs queued to the dW worker.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/status_macros.h"
#include "server/training/cpu_ops.h"
#include "server/training/model_impl.h"
#include "server/training/staging.h"

namespace anerd::training {

using model_internal::Timer;

absl::Status Model::Impl::ForwardLayer(int l, const float* p, const float* x, float* x_next,
                                       PhaseTimes* t) {
  const ParamLayout::Layer& w = layout_.layer(l);
  LayerState& a = st_[l];
  const int64_t d = c_.dim, s = c_.seq;
  std::copy(x, x + d * s, a.x.begin());
  {
    Timer timer(&t->rms_ms, spans_, "rms");
    RmsNormForward(a.x.data(), p + w.rms_att, d, s, a.xn.data(), a.rinv_att.data(), eps_);
  }
  PutAct(kSdpaFwd, l, "xnorm", a.xn.data(), d, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o1, Run(kSdpaFwd, l, t));
  GetOut(kSdpaFwd, o1, "attn_out", a.attn_out.data(), t);
  GetOut(kSdpaFwd, o1, "q_rope", a.q_rope.data(), t);
  GetOut(kSdpaFwd, o1, "k_rope", a.k_rope.data(), t);
  GetOut(kSdpaFwd, o1, "v", a.v.data(), t);
  if (c_.qk_norm) {
    GetOut(kSdpaFwd, o1, "q_raw", a.q_raw.data(), t);
    GetOut(kSdpaFwd, o1, "k_raw", a.k_raw.data(), t);
  }
  PutAct(kWoFwd, l, "attn_out", a.attn_out.data(), c_.q_dim(), t);
  ANERD_ASSIGN_OR_RETURN(Tensor o2, Run(kWoFwd, l, t));
  tmp1_.resize(d * s);
  GetOut(kWoFwd, o2, "o_out", tmp1_.data(), t);
  {
    Timer timer(&t->elem_ms, spans_, "elem");
    for (int64_t i = 0; i < d * s; ++i) a.x2[i] = a.x[i] + alpha_ * tmp1_[i];
  }
  {
    Timer timer(&t->rms_ms, spans_, "rms");
    RmsNormForward(a.x2.data(), p + w.rms_ffn, d, s, a.x2n.data(), a.rinv_ffn.data(), eps_);
  }
  PutAct(kFfnFused, l, "x2norm", a.x2n.data(), d, t);
  PutAct(kFfnFused, l, "x2", a.x2.data(), d, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o3, Run(kFfnFused, l, t));
  GetOut(kFfnFused, o3, "x_next", x_next, t);
  GetOut(kFfnFused, o3, "h1", a.h1.data(), t);
  GetOut(kFfnFused, o3, "h3", a.h3.data(), t);
  GetOut(kFfnFused, o3, "gate", a.gate.data(), t);
  return absl::OkStatus();
}

absl::Status Model::Impl::AttentionBackward(int l, const float* p, float* g, const float* da,
                                            PhaseTimes* t) {
  LayerState& a = st_[l];
  const int64_t s = c_.seq, qd = c_.q_dim(), nh = c_.heads, kvh = c_.kv_heads, hd = c_.head_dim;
  tmp2_.resize(qd * s);
  tmp3_.resize(qd * s);
  {
    Timer timer(&t->elem_ms, spans_, "elem");
    GqaTile(a.k_rope.data(), nh, kvh, hd, s, tmp2_.data());
    GqaTile(a.v.data(), nh, kvh, hd, s, tmp3_.data());
  }
  PutAct(kSdpaBwd1, 0, "q_rope", a.q_rope.data(), qd, t);
  PutAct(kSdpaBwd1, 0, "k_tiled", tmp2_.data(), qd, t);
  PutAct(kSdpaBwd1, 0, "v_tiled", tmp3_.data(), qd, t);
  PutAct(kSdpaBwd1, 0, "da", da, qd, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o1, Run(kSdpaBwd1, 0, t));
  {
    Timer timer(&t->io_ms, spans_, "io");  // probs and dp go to sdpaBwd2 as fp16 bits, unconverted
    const Block* probs = Lay(kSdpaBwd1).FindOutput("probs");
    std::memcpy(In(kSdpaBwd2, 0) + SlotOffset(kSdpaBwd2, "probs") * s,
                static_cast<const uint16_t*>(o1.data()) + probs->offset * s,
                2 * probs->size * s * sizeof(uint16_t));
  }
  PutAct(kSdpaBwd2, 0, "q_rope", a.q_rope.data(), qd, t);
  PutAct(kSdpaBwd2, 0, "k_tiled", tmp2_.data(), qd, t);
  GetOut(kSdpaBwd1, o1, "dv_full", tmp3_.data(), t);
  ANERD_ASSIGN_OR_RETURN(Tensor o2, Run(kSdpaBwd2, 0, t));
  GetOut(kSdpaBwd2, o2, "dq", a.dq.data(), t);
  GetOut(kSdpaBwd2, o2, "dk_full", tmp2_.data(), t);
  Timer timer(&t->elem_ms, spans_, "elem");
  GqaReduce(tmp2_.data(), nh, kvh, hd, s, a.dk.data());
  GqaReduce(tmp3_.data(), nh, kvh, hd, s, a.dv.data());
  RopeBackward(a.dq.data(), nh, hd, s, rope_cos_.data(), rope_sin_.data(), rope_half_);
  RopeBackward(a.dk.data(), kvh, hd, s, rope_cos_.data(), rope_sin_.data(), rope_half_);
  if (c_.qk_norm) {  // dq, dk become the gradients of the projections before the norm
    const ParamLayout::Layer& w = layout_.layer(l);
    HeadRmsNormBackward(a.dq.data(), a.q_raw.data(), p + w.q_norm, nh, hd, s, eps_, g + w.q_norm);
    HeadRmsNormBackward(a.dk.data(), a.k_raw.data(), p + w.k_norm, kvh, hd, s, eps_, g + w.k_norm);
  }
  return absl::OkStatus();
}

absl::Status Model::Impl::BackwardLayer(int l, const float* p, float* g, std::vector<float>* dy,
                                        PhaseTimes* t) {
  const ParamLayout::Layer& w = layout_.layer(l);
  LayerState& a = st_[l];
  const int64_t d = c_.dim, s = c_.seq, h = c_.hidden, qd = c_.q_dim(), kvd = c_.kv_dim();
  {
    Timer timer(&t->elem_ms, spans_, "elem");
    for (int64_t i = 0; i < d * s; ++i) a.dffn[i] = alpha_ * (*dy)[i];
  }
  PutAct(kFfnBwdW2t, l, "dffn", a.dffn.data(), d, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o1, Run(kFfnBwdW2t, l, t));
  tmp1_.resize(std::max(h, qd) * s);
  GetOut(kFfnBwdW2t, o1, "dsilu", tmp1_.data(), t);
  {
    Timer timer(&t->elem_ms, spans_, "elem");
    SiluBackward(tmp1_.data(), a.h1.data(), a.h3.data(), h * s, a.dh1.data(), a.dh3.data());
  }
  worker_.Submit(Traced("dW ffn", l, [&a, g, w, d, s, h] {
    AccumulateDw(a.dffn.data(), a.gate.data(), d, h, s, g + w.w2);
    AccumulateDw(a.dh1.data(), a.x2n.data(), h, d, s, g + w.w1);
    AccumulateDw(a.dh3.data(), a.x2n.data(), h, d, s, g + w.w3);
  }));
  PutAct(kFfnBwdW13t, l, "dh1", a.dh1.data(), h, t);
  PutAct(kFfnBwdW13t, l, "dh3", a.dh3.data(), h, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o2, Run(kFfnBwdW13t, l, t));
  GetOut(kFfnBwdW13t, o2, "dx_ffn", tmp1_.data(), t);
  std::vector<float>& dx2 = dx2_;
  dx2.resize(d * s);
  {
    Timer timer(&t->rms_ms, spans_, "rms");
    RmsNormBackward(tmp1_.data(), a.x2.data(), p + w.rms_ffn, a.rinv_ffn.data(), d, s, dx2.data(),
                    g + w.rms_ffn);
  }
  {
    Timer timer(&t->elem_ms, spans_, "elem");
    for (int64_t i = 0; i < d * s; ++i) {
      dx2[i] += (*dy)[i];
      a.dout[i] = alpha_ * dx2[i];
    }
  }
  worker_.Submit(Traced("dW wo", l, [&a, g, w, d, s, qd] {
    AccumulateDw(a.dout.data(), a.attn_out.data(), d, qd, s, g + w.wo);
  }));
  PutAct(kWotBwd, l, "dx2", a.dout.data(), d, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o3, Run(kWotBwd, l, t));
  GetOut(kWotBwd, o3, "da", tmp1_.data(), t);
  ANERD_RETURN_IF_ERROR(AttentionBackward(l, p, g, tmp1_.data(), t));
  worker_.Submit(Traced("dW qkv", l, [&a, g, w, d, s, qd, kvd] {
    AccumulateDw(a.dq.data(), a.xn.data(), qd, d, s, g + w.wq);
    AccumulateDw(a.dk.data(), a.xn.data(), kvd, d, s, g + w.wk);
    AccumulateDw(a.dv.data(), a.xn.data(), kvd, d, s, g + w.wv);
  }));
  PutAct(kQBwd, l, "dq", a.dq.data(), qd, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o4, Run(kQBwd, l, t));
  PutAct(kKvBwd, l, "dk", a.dk.data(), kvd, t);
  PutAct(kKvBwd, l, "dv", a.dv.data(), kvd, t);
  ANERD_ASSIGN_OR_RETURN(Tensor o5, Run(kKvBwd, l, t));
  GetOut(kQBwd, o4, "dx_q", tmp1_.data(), t);
  tmp2_.resize(d * s);
  GetOut(kKvBwd, o5, "dx_kv", tmp2_.data(), t);
  {
    Timer timer(&t->elem_ms, spans_, "elem");
    for (int64_t i = 0; i < d * s; ++i) tmp1_[i] += tmp2_[i];
  }
  Timer timer(&t->rms_ms, spans_, "rms");
  RmsNormBackward(tmp1_.data(), a.x.data(), p + w.rms_att, a.rinv_att.data(), d, s, dy->data(),
                  g + w.rms_att);
  for (int64_t i = 0; i < d * s; ++i) (*dy)[i] += dx2[i];
  return absl::OkStatus();
}

}  // namespace anerd::training
