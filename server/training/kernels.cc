#include "server/training/kernels.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mil/blob_writer.h"
#include "common/mil/builder.h"
#include "common/status_macros.h"

namespace anerd::training {
namespace {

using mil::Builder;
using mil::DType;
using mil::TensorType;
using mil::Value;

constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr float kMaskNegative = -65504.0f;  // fp16 lowest finite

TensorType Fp16(std::vector<int64_t> shape) { return TensorType{DType::kFp16, std::move(shape)}; }

// A new builder with the kernel's single input `x` of shape [1, channels, 1, spatial].
Value StartKernel(Builder* b, int64_t channels, int64_t spatial) {
  return b->Input("x", Fp16({1, channels, 1, spatial}));
}

// Slices columns [offset, offset+size) of all channels of x [1,C,1,SP].
Value SliceColumns(Builder* b, const std::string& name, const Value& x, int64_t offset,
                   int64_t size) {
  const int64_t c = x.type.shape.size() == 4 ? x.type.shape[1] : 0;
  return b->SliceBySize(name, x, {0, 0, 0, offset}, {1, c, 1, size});
}

// Slices channels [offset, offset+size) of x [1,C,1,S].
Value SliceChannels(Builder* b, const std::string& name, const Value& x, int64_t offset,
                    int64_t size) {
  const int64_t s = x.type.shape.size() == 4 ? x.type.shape[3] : 0;
  return b->SliceBySize(name, x, {0, offset, 0, 0}, {1, size, 1, s});
}

// act [1,IC,1,S] -> transposed activation [1,1,S,IC] (shared by several projections).
Value ActT(Builder* b, const std::string& p, const Value& act) {
  const int64_t ic = act.type.shape[1], s = act.type.shape[3];
  Value a2 = b->Reshape(p + "_a2", act, {1, 1, ic, s});
  return b->Transpose(p + "_a3", a2, {0, 1, 3, 2});
}

// y[o,t] = sum_i Wstaged[i,o] act[i,t] with Wstaged in columns [w_off, w_off+oc) of x.
// `act_t` is ActT(act). Returns [1,OC,1,S] named `out` (default "<p>_y").
Value StagedMatmul(Builder* b, const std::string& p, const Value& x, const Value& act_t,
                   int64_t w_off, int64_t oc, const std::string& out = "") {
  if (!act_t.valid()) return Value{};
  const int64_t s = act_t.type.shape[2], ic = act_t.type.shape[3];
  Value wt = SliceColumns(b, p + "_wt", x, w_off, oc);
  Value w = b->Reshape(p + "_w", wt, {1, 1, ic, oc});
  Value yh = b->Matmul(p + "_yh", act_t, w);  // [1,1,S,OC]
  Value yt = b->Transpose(p + "_yt", yh, {0, 1, 3, 2});
  return b->Reshape(out.empty() ? p + "_y" : out, yt, {1, oc, 1, s});
}

// [1,N*HD,1,S] -> [1,N,S,HD].
Value SplitHeads(Builder* b, const std::string& p, const Value& flat, int64_t n, int64_t hd) {
  const int64_t s = flat.valid() ? flat.type.shape[3] : 0;
  Value r = b->Reshape(p + "_hr", flat, {1, n, hd, s});
  return b->Transpose(p + "_h", r, {0, 1, 3, 2});
}

// [1,N,S,HD] -> [1,N*HD,1,S].
Value MergeHeads(Builder* b, const std::string& p, const Value& heads) {
  if (!heads.valid()) return Value{};
  const auto& sh = heads.type.shape;
  Value t = b->Transpose(p + "_mt", heads, {0, 1, 3, 2});
  return b->Reshape(p + "_flat", t, {1, sh[1] * sh[3], 1, sh[2]});
}

// [1,N,S,S] <-> [1,N*S,1,S].
Value FlattenScores(Builder* b, const std::string& name, const Value& s4) {
  if (!s4.valid()) return Value{};
  const auto& sh = s4.type.shape;
  return b->Reshape(name, s4, {1, sh[1] * sh[2], 1, sh[3]});
}

// RoPE of x [1,N,S,HD]: x*cos + rotate(x)*sin. Interleaved: rotate(x0,x1) = (-x1,x0) per pair;
// half (Hugging Face rotate_half): rotate(x) = concat(-x[HD/2:], x[:HD/2]).
Value Rope(Builder* b, const std::string& p, const Value& x, const Value& cos, const Value& sin,
           const Value& minus_one, bool half) {
  if (!x.valid()) return Value{};
  const int64_t n = x.type.shape[1], s = x.type.shape[2], hd = x.type.shape[3];
  Value rot;
  if (half) {
    Value lo = b->SliceBySize(p + "_lo", x, {0, 0, 0, 0}, {1, n, s, hd / 2});
    Value hi = b->SliceBySize(p + "_hi", x, {0, 0, 0, hd / 2}, {1, n, s, hd / 2});
    Value neg = b->Mul(p + "_nhi", hi, minus_one);
    rot = b->Concat(p + "_rot", {neg, lo}, 3);
  } else {
    const int64_t pairs = s * hd / 2;
    Value xp = b->Reshape(p + "_pairs", x, {1, n, pairs, 2});
    Value even = b->SliceBySize(p + "_even", xp, {0, 0, 0, 0}, {1, n, pairs, 1});
    Value odd = b->SliceBySize(p + "_odd", xp, {0, 0, 0, 1}, {1, n, pairs, 1});
    Value neg = b->Mul(p + "_nodd", odd, minus_one);
    Value rp = b->Concat(p + "_rotp", {neg, even}, 3);
    rot = b->Reshape(p + "_rot", rp, {1, n, s, hd});
  }
  Value xc = b->Mul(p + "_xcos", x, cos);
  Value rs = b->Mul(p + "_rsin", rot, sin);
  return b->Add(p + "_rope", xc, rs);
}

// Per-head RMSNorm of x [1,N,S,HD] over HD with weights w [1,1,1,HD] (docs/ANE_NOTES.md §3.5).
Value HeadRmsNorm(Builder* b, const std::string& p, const Value& x, const Value& w,
                  const Value& inv_hd, const Value& eps, const Value& minus_half) {
  if (!x.valid()) return Value{};
  Value sq = b->Mul(p + "_sq", x, x);
  Value ss = b->ReduceSum(p + "_ss", sq, {-1}, /*keep_dims=*/true);
  Value ms = b->Mul(p + "_ms", ss, inv_hd);
  Value me = b->Add(p + "_me", ms, eps);
  Value r = b->Pow(p + "_rinv", me, minus_half);
  Value xn = b->Mul(p + "_xr", x, r);
  return b->Mul(p + "_normed", xn, w);
}

// Repeats KV heads of kv [1,KVH,S,HD] to [1,KVH*R,S,HD]; head h of the result is KV head h / R.
Value TileKv(Builder* b, const std::string& p, const Value& kv, int64_t ratio) {
  if (ratio == 1 || !kv.valid()) return kv;
  const int64_t kvh = kv.type.shape[1], s = kv.type.shape[2], hd = kv.type.shape[3];
  std::vector<Value> parts;
  for (int64_t j = 0; j < kvh; ++j) {
    Value head = b->SliceBySize(absl::StrCat(p, "_kvh", j), kv, {0, j, 0, 0}, {1, 1, s, hd});
    for (int64_t r = 0; r < ratio; ++r) parts.push_back(head);
  }
  return b->Concat(p + "_tiled", parts, 1);
}

// Causal attention probabilities softmax(q·kᵀ·scale + mask) for q, k [1,NH,S,HD].
Value AttentionProbs(Builder* b, const Value& q, const Value& k, const Value& scale,
                     const Value& mask) {
  Value sc1 = b->Matmul("scores", q, k, /*transpose_x=*/false, /*transpose_y=*/true);
  Value sc2 = b->Mul("scores_scaled", sc1, scale);
  Value masked = b->Add("scores_masked", sc2, mask);
  return b->Softmax("probs", masked, -1);
}

Value MaskConst(Builder* b, int64_t seq) {
  return b->ConstBlob("mask", Fp16({1, 1, seq, seq}), kMaskPath, 64);
}

Value ScaleConst(Builder* b, const ModelShape& m) {
  return b->ConstFp16("attn_scale", 1.0 / std::sqrt(static_cast<double>(m.head_dim)));
}

absl::StatusOr<Kernel> FinishKernel(const Builder& b, KernelLayout layout) {
  Kernel kernel;
  ANERD_ASSIGN_OR_RETURN(kernel.program, b.Finish());
  kernel.layout = std::move(layout);
  return kernel;
}

// Adds blocks laid end to end starting at 0; returns the total size.
int64_t Lay(std::vector<Block>* blocks, std::vector<std::pair<std::string, int64_t>> sizes) {
  int64_t offset = 0;
  for (auto& [name, size] : sizes) {
    blocks->push_back(Block{std::move(name), offset, size});
    offset += size;
  }
  return offset;
}

KernelLayout SpatialLayout(std::string kernel, int64_t channels,
                           std::vector<std::pair<std::string, int64_t>> slots, int64_t seq,
                           std::vector<std::pair<std::string, int64_t>> outs) {
  KernelLayout l;
  l.kernel = std::move(kernel);
  l.in_channels = channels;
  l.in_spatial = Lay(&l.in_slots, std::move(slots));
  l.out_spatial = seq;
  l.out_channels = Lay(&l.out_blocks, std::move(outs));
  return l;
}

// The plain dynamic matmul kernel: input [1,IC,1,S+OC] (act at 0, staged weight at S).
absl::StatusOr<Kernel> DynMatmulKernel(const ModelShape& m, std::string kernel, int64_t ic,
                                       int64_t oc, std::string act, std::string weight,
                                       std::string out) {
  ANERD_RETURN_IF_ERROR(m.Validate());
  KernelLayout layout =
      SpatialLayout(std::move(kernel), ic, {{act, m.seq}, {weight, oc}}, m.seq, {{out, oc}});
  Builder b;
  Value x = StartKernel(&b, ic, layout.in_spatial);
  Value a = SliceColumns(&b, act, x, 0, m.seq);
  b.Output(StagedMatmul(&b, "mm", x, ActT(&b, act, a), m.seq, oc, out));
  return FinishKernel(b, std::move(layout));
}

// Two staged matmuls summed: input [1,C,1,2S+2D] = a1, a2, W_a, W_b; out D = W_aᵀa1 + W_bᵀa2.
absl::StatusOr<Kernel> DualMatmulKernel(const ModelShape& m, std::string kernel, int64_t c,
                                        const std::string& a1, const std::string& a2,
                                        const std::string& w1, const std::string& w2,
                                        std::string out) {
  ANERD_RETURN_IF_ERROR(m.Validate());
  const int64_t s = m.seq, d = m.dim;
  KernelLayout layout =
      SpatialLayout(std::move(kernel), c, {{a1, s}, {a2, s}, {w1, d}, {w2, d}}, s, {{out, d}});
  Builder b;
  Value x = StartKernel(&b, c, layout.in_spatial);
  Value y1 = StagedMatmul(&b, w1, x, ActT(&b, a1, SliceColumns(&b, a1, x, 0, s)), 2 * s, d);
  Value y2 = StagedMatmul(&b, w2, x, ActT(&b, a2, SliceColumns(&b, a2, x, s, s)), 2 * s + d, d);
  b.Output(b.Add(out, y1, y2));
  return FinishKernel(b, std::move(layout));
}

}  // namespace

absl::Status ModelShape::Validate() const {
  for (int64_t v : {dim, hidden, heads, kv_heads, head_dim, seq}) {
    if (v < 1 || v > kMaxDim) {
      return absl::InvalidArgumentError(
          absl::StrCat("model shape: sizes must lie in [1, ", kMaxDim, "]"));
    }
  }
  if (head_dim % 2 != 0) return absl::InvalidArgumentError("model shape: head_dim must be even");
  if (!(rope_theta > 0) || !std::isfinite(rope_theta) || !(norm_eps > 0) ||
      !std::isfinite(norm_eps)) {
    return absl::InvalidArgumentError("model shape: rope_theta and norm_eps must be positive");
  }
  if (qk_norm && dim < head_dim) {
    return absl::InvalidArgumentError("model shape: qk_norm needs dim >= head_dim");
  }
  if (heads % kv_heads != 0) {
    return absl::InvalidArgumentError("model shape: kv_heads must divide heads");
  }
  return absl::OkStatus();
}

const Block* KernelLayout::FindSlot(absl::string_view name) const {
  for (const Block& blk : in_slots) {
    if (blk.name == name) return &blk;
  }
  return nullptr;
}

const Block* KernelLayout::FindOutput(absl::string_view name) const {
  for (const Block& blk : out_blocks) {
    if (blk.name == name) return &blk;
  }
  return nullptr;
}

std::vector<float> CausalMask(int64_t seq) {
  std::vector<float> mask(seq * seq, 0.0f);
  for (int64_t t = 0; t < seq; ++t) {
    for (int64_t t2 = t + 1; t2 < seq; ++t2) mask[t * seq + t2] = kMaskNegative;
  }
  return mask;
}

void RopeTables(int64_t seq, int64_t head_dim, double base, bool half, std::vector<float>* cos,
                std::vector<float>* sin) {
  cos->assign(seq * head_dim, 0.0f);
  sin->assign(seq * head_dim, 0.0f);
  const float fbase = static_cast<float>(base);
  for (int64_t p = 0; p < seq; ++p) {
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      const float freq = std::pow(fbase, static_cast<float>(2 * i) / head_dim);
      const float theta = static_cast<float>(p) / freq;
      const float c = std::cos(theta), s = std::sin(theta);
      const int64_t a = half ? i : 2 * i, b = half ? i + head_dim / 2 : 2 * i + 1;
      (*cos)[p * head_dim + a] = (*cos)[p * head_dim + b] = c;
      (*sin)[p * head_dim + a] = (*sin)[p * head_dim + b] = s;
    }
  }
}

absl::StatusOr<mil::WeightFiles> KernelConstants(const ModelShape& shape) {
  ANERD_RETURN_IF_ERROR(shape.Validate());
  std::vector<float> cos, sin;
  RopeTables(shape.seq, shape.head_dim, shape.rope_theta, shape.rope_half, &cos, &sin);
  mil::WeightFiles files;
  ANERD_RETURN_IF_ERROR(files.Add(kMaskPath, mil::BuildFp16Blob(CausalMask(shape.seq))));
  ANERD_RETURN_IF_ERROR(files.Add(kRopeCosPath, mil::BuildFp16Blob(cos)));
  ANERD_RETURN_IF_ERROR(files.Add(kRopeSinPath, mil::BuildFp16Blob(sin)));
  return files;
}

absl::StatusOr<Kernel> SdpaFwd(const ModelShape& m) {
  ANERD_RETURN_IF_ERROR(m.Validate());
  const int64_t s = m.seq, d = m.dim, qd = m.q_dim(), kvd = m.kv_dim(), hd = m.head_dim;
  std::vector<std::pair<std::string, int64_t>> slots = {
      {"xnorm", s}, {"wq_t", qd}, {"wk_t", kvd}, {"wv_t", kvd}};
  std::vector<std::pair<std::string, int64_t>> outs = {
      {"attn_out", qd}, {"q_rope", qd}, {"k_rope", kvd}, {"v", kvd}, {"xnorm", d}};
  if (m.qk_norm) {
    slots.emplace_back("qk_norm", 2);
    outs.emplace_back("q_raw", qd);
    outs.emplace_back("k_raw", kvd);
  }
  KernelLayout layout = SpatialLayout("sdpaFwd", d, std::move(slots), s, std::move(outs));
  Builder b;
  Value x = StartKernel(&b, d, layout.in_spatial);
  Value mask = MaskConst(&b, s);
  Value cos = b.ConstBlob("rope_cos", Fp16({1, 1, s, hd}), kRopeCosPath, 64);
  Value sin = b.ConstBlob("rope_sin", Fp16({1, 1, s, hd}), kRopeSinPath, 64);
  Value minus_one = b.ConstFp16("minus_one", -1.0);
  Value scale = ScaleConst(&b, m);
  Value xn = SliceColumns(&b, "xn", x, 0, s);
  Value xt = ActT(&b, "xn", xn);
  Value q = StagedMatmul(&b, "q", x, xt, s, qd);
  Value k = StagedMatmul(&b, "k", x, xt, s + qd, kvd);
  Value v = StagedMatmul(&b, "v", x, xt, s + qd + kvd, kvd);
  Value qw, kw, inv_hd, eps, minus_half;  // QK-norm weights and constants
  if (m.qk_norm) {
    const int64_t col = s + qd + 2 * kvd;
    inv_hd = b.ConstFp16("inv_hd", 1.0 / static_cast<double>(hd));
    eps = b.ConstFp16("qk_eps", m.norm_eps);
    minus_half = b.ConstFp16("minus_half", -0.5);
    qw = b.Reshape("q_norm_w", b.SliceBySize("q_norm_slot", x, {0, 0, 0, col}, {1, hd, 1, 1}),
                   {1, 1, 1, hd});
    kw = b.Reshape("k_norm_w", b.SliceBySize("k_norm_slot", x, {0, 0, 0, col + 1}, {1, hd, 1, 1}),
                   {1, 1, 1, hd});
  }
  // Default configs emit exactly the op sequence they did before QK-norm existed (snapshots).
  Value qh = SplitHeads(&b, "q", q, m.heads, hd);
  if (m.qk_norm) qh = HeadRmsNorm(&b, "q_norm", qh, qw, inv_hd, eps, minus_half);
  Value qr = Rope(&b, "q", qh, cos, sin, minus_one, m.rope_half);
  Value kh = SplitHeads(&b, "k", k, m.kv_heads, hd);
  if (m.qk_norm) kh = HeadRmsNorm(&b, "k_norm", kh, kw, inv_hd, eps, minus_half);
  Value kr = Rope(&b, "k", kh, cos, sin, minus_one, m.rope_half);
  Value vh = SplitHeads(&b, "v", v, m.kv_heads, hd);
  Value probs = AttentionProbs(&b, qr, TileKv(&b, "k", kr, m.gqa_ratio()), scale, mask);
  Value attn = b.Matmul("attn", probs, TileKv(&b, "v", vh, m.gqa_ratio()));
  std::vector<Value> parts = {MergeHeads(&b, "attn", attn), MergeHeads(&b, "q_rope", qr),
                              MergeHeads(&b, "k_rope", kr), v, xn};
  if (m.qk_norm) {
    parts.push_back(q);
    parts.push_back(k);
  }
  b.Output(b.Concat("out", parts, 1));
  return FinishKernel(b, std::move(layout));
}

absl::StatusOr<Kernel> QkvFwd(const ModelShape& m) {
  ANERD_RETURN_IF_ERROR(m.Validate());
  const int64_t s = m.seq, d = m.dim, qd = m.q_dim(), kvd = m.kv_dim();
  KernelLayout layout =
      SpatialLayout("qkvFwd", d, {{"xnorm", s}, {"wq_t", qd}, {"wk_t", kvd}, {"wv_t", kvd}}, s,
                    {{"q", qd}, {"k", kvd}, {"v", kvd}});
  Builder b;
  Value x = StartKernel(&b, d, layout.in_spatial);
  Value xt = ActT(&b, "xn", SliceColumns(&b, "xn", x, 0, s));
  Value q = StagedMatmul(&b, "q", x, xt, s, qd);
  Value k = StagedMatmul(&b, "k", x, xt, s + qd, kvd);
  Value v = StagedMatmul(&b, "v", x, xt, s + qd + kvd, kvd);
  b.Output(b.Concat("out", {q, k, v}, 1));
  return FinishKernel(b, std::move(layout));
}

absl::StatusOr<Kernel> WoFwd(const ModelShape& m) {
  return DynMatmulKernel(m, "woFwd", m.q_dim(), m.dim, "attn_out", "wo_t", "o_out");
}

absl::StatusOr<Kernel> FfnFused(const ModelShape& m, double alpha) {
  ANERD_RETURN_IF_ERROR(m.Validate());
  const int64_t s = m.seq, d = m.dim, h = m.hidden;
  KernelLayout layout =
      SpatialLayout("ffnFused", d, {{"x2norm", s}, {"x2", s}, {"w1_t", h}, {"w3_t", h}, {"w2", h}},
                    s, {{"x_next", d}, {"h1", h}, {"h3", h}, {"gate", h}});
  Builder b;
  Value x = StartKernel(&b, d, layout.in_spatial);
  Value xn = SliceColumns(&b, "x2norm", x, 0, s);
  Value x2 = SliceColumns(&b, "x2", x, s, s);
  Value xt = ActT(&b, "x2norm", xn);
  Value h1 = StagedMatmul(&b, "h1", x, xt, 2 * s, h);
  Value h3 = StagedMatmul(&b, "h3", x, xt, 2 * s + h, h);
  Value sig = b.Sigmoid("h1_sigmoid", h1);
  Value silu = b.Mul("h1_silu", h1, sig);
  Value gate = b.Mul("gate", silu, h3);
  // W2 is staged as-is ([D][H] in channels x columns): y = W2 · gate directly.
  Value w2s = SliceColumns(&b, "w2_slot", x, 2 * s + 2 * h, h);
  Value w2 = b.Reshape("w2", w2s, {1, 1, d, h});
  Value g2 = b.Reshape("gate_m", gate, {1, 1, h, s});
  Value y = b.Reshape("ffn_out", b.Matmul("ffn_mm", w2, g2), {1, d, 1, s});
  Value scaled = b.Mul("ffn_scaled", y, b.ConstFp16("alpha", alpha));
  Value next = b.Add("x_next", x2, scaled);
  b.Output(b.Concat("out", {next, h1, h3, gate}, 1));
  return FinishKernel(b, std::move(layout));
}

absl::StatusOr<Kernel> FfnBwdW2t(const ModelShape& m) {
  return DynMatmulKernel(m, "ffnBwdW2t", m.dim, m.hidden, "dffn", "w2", "dsilu");
}

absl::StatusOr<Kernel> FfnBwdW13t(const ModelShape& m) {
  return DualMatmulKernel(m, "ffnBwdW13t", m.hidden, "dh1", "dh3", "w1", "w3", "dx_ffn");
}

absl::StatusOr<Kernel> WotBwd(const ModelShape& m) {
  return DynMatmulKernel(m, "wotBwd", m.dim, m.q_dim(), "dx2", "wo", "da");
}

absl::StatusOr<Kernel> SdpaBwd1(const ModelShape& m) {
  ANERD_RETURN_IF_ERROR(m.Validate());
  const int64_t s = m.seq, qd = m.q_dim(), sc = m.score_channels(), nh = m.heads, hd = m.head_dim;
  KernelLayout layout =
      SpatialLayout("sdpaBwd1", 4 * qd, {}, s, {{"dv_full", qd}, {"probs", sc}, {"dp", sc}});
  layout.slots_on_channels = true;
  layout.in_spatial = s;
  Lay(&layout.in_slots, {{"q_rope", qd}, {"k_tiled", qd}, {"v_tiled", qd}, {"da", qd}});
  Builder b;
  Value x = StartKernel(&b, 4 * qd, s);
  Value mask = MaskConst(&b, s);
  Value scale = ScaleConst(&b, m);
  Value q = SplitHeads(&b, "q", SliceChannels(&b, "q", x, 0, qd), nh, hd);
  Value k = SplitHeads(&b, "k", SliceChannels(&b, "k", x, qd, qd), nh, hd);
  Value v = SplitHeads(&b, "v", SliceChannels(&b, "v", x, 2 * qd, qd), nh, hd);
  Value da = SplitHeads(&b, "da", SliceChannels(&b, "da", x, 3 * qd, qd), nh, hd);
  Value probs = AttentionProbs(&b, q, k, scale, mask);
  Value dv = b.Matmul("dv", probs, da, /*transpose_x=*/true, /*transpose_y=*/false);
  Value dp = b.Matmul("dp", da, v, /*transpose_x=*/false, /*transpose_y=*/true);
  b.Output(b.Concat("out",
                    {MergeHeads(&b, "dv", dv), FlattenScores(&b, "probs_flat", probs),
                     FlattenScores(&b, "dp_flat", dp)},
                    1));
  return FinishKernel(b, std::move(layout));
}

absl::StatusOr<Kernel> SdpaBwd2(const ModelShape& m) {
  ANERD_RETURN_IF_ERROR(m.Validate());
  const int64_t s = m.seq, qd = m.q_dim(), sc = m.score_channels(), nh = m.heads, hd = m.head_dim;
  KernelLayout layout =
      SpatialLayout("sdpaBwd2", 2 * sc + 2 * qd, {}, s, {{"dq", qd}, {"dk_full", qd}});
  layout.slots_on_channels = true;
  layout.in_spatial = s;
  Lay(&layout.in_slots, {{"probs", sc}, {"dp", sc}, {"q_rope", qd}, {"k_tiled", qd}});
  Builder b;
  Value x = StartKernel(&b, 2 * sc + 2 * qd, s);
  Value scale = ScaleConst(&b, m);
  Value probs = b.Reshape("probs", SliceChannels(&b, "probs_flat", x, 0, sc), {1, nh, s, s});
  Value dp = b.Reshape("dp", SliceChannels(&b, "dp_flat", x, sc, sc), {1, nh, s, s});
  Value q = SplitHeads(&b, "q", SliceChannels(&b, "q", x, 2 * sc, qd), nh, hd);
  Value k = SplitHeads(&b, "k", SliceChannels(&b, "k", x, 2 * sc + qd, qd), nh, hd);
  Value pdp = b.Mul("pdp", probs, dp);
  Value spdp = b.ReduceSum("pdp_sum", pdp, {-1}, /*keep_dims=*/true);
  Value centred = b.Sub("dp_centred", dp, spdp);
  Value ds0 = b.Mul("ds_unscaled", probs, centred);
  Value ds = b.Mul("ds", ds0, scale);
  Value dq = b.Matmul("dq", ds, k);
  Value dk = b.Matmul("dk", ds, q, /*transpose_x=*/true, /*transpose_y=*/false);
  b.Output(b.Concat("out", {MergeHeads(&b, "dq", dq), MergeHeads(&b, "dk", dk)}, 1));
  return FinishKernel(b, std::move(layout));
}

absl::StatusOr<Kernel> QBwd(const ModelShape& m) {
  return DynMatmulKernel(m, "qBwd", m.q_dim(), m.dim, "dq", "wq", "dx_q");
}

absl::StatusOr<Kernel> KvBwd(const ModelShape& m) {
  return DualMatmulKernel(m, "kvBwd", m.kv_dim(), "dk", "dv", "wk", "wv", "dx_kv");
}

absl::StatusOr<std::vector<Kernel>> AllKernels(const ModelShape& shape, double ffn_alpha) {
  std::vector<Kernel> kernels;
  for (auto* gen : {SdpaFwd, WoFwd}) {
    ANERD_ASSIGN_OR_RETURN(kernels.emplace_back(), gen(shape));
  }
  ANERD_ASSIGN_OR_RETURN(kernels.emplace_back(), FfnFused(shape, ffn_alpha));
  for (auto* gen : {FfnBwdW2t, FfnBwdW13t, WotBwd, SdpaBwd1, SdpaBwd2, QBwd, KvBwd}) {
    ANERD_ASSIGN_OR_RETURN(kernels.emplace_back(), gen(shape));
  }
  return kernels;
}

}  // namespace anerd::training
