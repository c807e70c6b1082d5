// Decoder: the fp32 forward with a KV cache (decoder.h). Layer math follows the training engine
// (server/training/model.h's data flow) through its CPU ops (cpu_ops.h), position by position.
#include "server/generation/decoder.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/generation/matvec.h"
#include "server/generation/parallel_rows.h"
#include "server/training/cpu_ops.h"
#include "server/training/kernels.h"

namespace anerd::generation {
namespace {

using training::ModelConfig;

// y [m][n] = W [m][k] · x [k][n] (row-major), rows split over the row pool: the custom
// matrix-vector kernel when n = 1 (decode), single-threaded cblas GEMMs on row blocks otherwise.
void MatMul(const float* w, const float* x, int64_t m, int64_t k, int64_t n, float* y) {
  if (n == 1) return MatVec(w, x, m, k, y);
  ParallelRows(m, std::max<int64_t>(16, MatVecGrain(k) / n), [&](int64_t begin, int64_t end) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, end - begin, n, k, 1.0f, w + begin * k,
                k, x, n, 0.0f, y + begin * n, n);
  });
}

float Silu(float a) { return a * (1.0f / (1.0f + std::exp(-a))); }

// run.c's softmax over x[0, n): max-subtracted expf, float sum in order.
void SoftmaxRow(float* x, int64_t n) {
  float max_val = x[0];
  for (int64_t i = 1; i < n; ++i) max_val = std::max(max_val, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  for (int64_t i = 0; i < n; ++i) x[i] /= sum;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Create(
    const ModelConfig& config, std::shared_ptr<const std::vector<float>> params,
    const DecoderOptions& options) {
  if (absl::Status s = training::ValidateConfig(config); !s.ok()) return s;
  const int64_t want = training::ParamLayout(config).total();
  if (params == nullptr || static_cast<int64_t>(params->size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat("params: has ",
                                                   params == nullptr ? 0 : params->size(),
                                                   " floats but the model config needs ", want));
  }
  if (options.max_context < 0 || options.max_context > kMaxDecoderContext) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_context: must be in [0, ", kMaxDecoderContext, "], got ", options.max_context));
  }
  const int64_t ctx = options.max_context > 0 ? options.max_context : config.seq;
  // Both sides are far below 2^63: layers, kv_dim and ctx are bounded (ValidateConfig, above).
  // The cache, plus the RoPE tables [ctx][HD] ×2.
  const double bytes = 2.0 * config.layers * static_cast<double>(config.kv_dim()) * ctx * 4 +
                       2.0 * ctx * config.head_dim * 4;
  if (bytes > static_cast<double>(options.max_cache_bytes)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("max_context: a KV cache of ", ctx, " positions needs ", bytes,
                     " bytes, over the limit of ", options.max_cache_bytes));
  }
  return std::unique_ptr<Decoder>(new Decoder(config, std::move(params), ctx));
}

Decoder::Decoder(const ModelConfig& config, std::shared_ptr<const std::vector<float>> params,
                 int64_t max_context)
    : c_(config),
      layout_(config),
      params_(std::move(params)),
      p_(params_->data()),
      ctx_(max_context),
      k_cache_(config.layers * config.kv_dim() * max_context),
      v_cache_(k_cache_.size()),
      logits_(config.vocab) {
  training::RopeTables(ctx_, c_.head_dim, c_.rope_theta,
                       c_.rope_style == ModelConfig::RopeStyle::kHalf, &rope_cos_, &rope_sin_);
}

absl::StatusOr<absl::Span<const float>> Decoder::Prefill(absl::Span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size()), d = c_.dim;
  if (n == 0) return absl::InvalidArgumentError("tokens: empty");
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c_.vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens[", i, "]: id ", tokens[i], " outside the vocabulary [0, ", c_.vocab, ")"));
    }
  }
  if (n > ctx_ - pos_) {
    return absl::OutOfRangeError(absl::StrCat("context: ", n, " tokens at position ", pos_,
                                              " pass the context of ", ctx_, " positions"));
  }
  int64_t m = 0;  // the last chunk's length: x_ is [D][m]
  for (int64_t begin = 0; begin < n; begin += m) {
    m = std::min(kPrefillChunk, n - begin);
    RunChunk(tokens.subspan(begin, m));
  }
  xl_.resize(d);
  for (int64_t c = 0; c < d; ++c) xl_[c] = x_[c * m + m - 1];
  training::RmsNormForward(xl_.data(), p_ + layout_.rms_final(), d, 1, xl_.data(), rinv_.data(),
                           static_cast<float>(c_.norm_eps));
  MatMul(p_ + layout_.classifier(), xl_.data(), c_.vocab, d, 1, logits_.data());
  return absl::MakeConstSpan(logits_);
}

void Decoder::RunChunk(absl::Span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size()), d = c_.dim;
  const int64_t qd = c_.q_dim(), kvd = c_.kv_dim(), h = c_.hidden;
  for (auto* v : {&x_, &xn_, &o_}) v->resize(d * n);
  att_.resize(qd * n);
  qkv_.resize((qd + 2 * kvd) * n);
  for (auto* v : {&h1_, &h3_}) v->resize(h * n);
  for (auto* v : {&qt_, &hout_}) v->resize(n * c_.head_dim);
  scores_.resize(std::max(n, int64_t{c_.heads}) * (pos_ + n));
  rinv_.resize(n);
  const float* embed = p_ + layout_.embed();
  for (int64_t t = 0; t < n; ++t) {
    const float* row = embed + int64_t{tokens[t]} * d;
    for (int64_t c = 0; c < d; ++c) x_[c * n + t] = row[c];
  }
  for (int l = 0; l < c_.layers; ++l) Layer(l, n);
  pos_ += n;
}

void Decoder::Layer(int l, int64_t n) {
  const training::ParamLayout::Layer& w = layout_.layer(l);
  const int64_t d = c_.dim, hd = c_.head_dim, qd = c_.q_dim(), kvd = c_.kv_dim(), h = c_.hidden;
  const float eps = static_cast<float>(c_.norm_eps), alpha = static_cast<float>(c_.residual_scale);
  const bool half = c_.rope_style == ModelConfig::RopeStyle::kHalf;
  float* q = qkv_.data();
  float* k = q + qd * n;
  float* v = k + kvd * n;
  training::RmsNormForward(x_.data(), p_ + w.rms_att, d, n, xn_.data(), rinv_.data(), eps);
  if (w.wk == w.wq + qd * d && w.wv == w.wk + kvd * d) {  // ParamLayout's order: one read
    MatMul(p_ + w.wq, xn_.data(), qd + 2 * kvd, d, n, q);
  } else {
    MatMul(p_ + w.wq, xn_.data(), qd, d, n, q);
    MatMul(p_ + w.wk, xn_.data(), kvd, d, n, k);
    MatMul(p_ + w.wv, xn_.data(), kvd, d, n, v);
  }
  if (c_.qk_norm) {
    training::HeadRmsNormForward(q, p_ + w.q_norm, c_.heads, hd, n, eps, q);
    training::HeadRmsNormForward(k, p_ + w.k_norm, c_.kv_heads, hd, n, eps, k);
  }
  const float* cos = rope_cos_.data() + pos_ * hd;  // tables start at this call's position
  const float* sin = rope_sin_.data() + pos_ * hd;
  training::RopeForward(q, c_.heads, hd, n, cos, sin, half);
  training::RopeForward(k, c_.kv_heads, hd, n, cos, sin, half);
  for (int64_t j = 0; j < c_.kv_heads; ++j) {
    float* kc = KCache(l, j) + pos_ * hd;
    float* vc = VCache(l, j) + pos_ * hd;
    for (int64_t e = 0; e < hd; ++e) {
      const float* ks = k + (j * hd + e) * n;
      const float* vs = v + (j * hd + e) * n;
      for (int64_t t = 0; t < n; ++t) {
        kc[t * hd + e] = ks[t];
        vc[t * hd + e] = vs[t];
      }
    }
  }
  if (n == 1) {
    AttentionStep(l);
  } else {
    Attention(l, n);
  }
  MatMul(p_ + w.wo, att_.data(), d, qd, n, o_.data());
  for (int64_t i = 0; i < d * n; ++i) x_[i] += alpha * o_[i];
  training::RmsNormForward(x_.data(), p_ + w.rms_ffn, d, n, xn_.data(), rinv_.data(), eps);
  if (n == 1) {
    // W1 and W3 rows of the same range in one pass, then SwiGLU on them while they are hot.
    const float *w1 = p_ + w.w1, *w3 = p_ + w.w3, *xn = xn_.data();
    float *h1 = h1_.data(), *h3 = h3_.data();
    ParallelRows(h, MatVecGrain(d), [&](int64_t begin, int64_t end) {
      MatVecRows(w1, xn, d, begin, end, h1);
      MatVecRows(w3, xn, d, begin, end, h3);
      for (int64_t i = begin; i < end; ++i) h1[i] = Silu(h1[i]) * h3[i];
    });
  } else {
    MatMul(p_ + w.w1, xn_.data(), h, d, n, h1_.data());
    MatMul(p_ + w.w3, xn_.data(), h, d, n, h3_.data());
    for (int64_t i = 0; i < h * n; ++i) h1_[i] = Silu(h1_[i]) * h3_[i];
  }
  MatMul(p_ + w.w2, h1_.data(), d, h, n, o_.data());
  for (int64_t i = 0; i < d * n; ++i) x_[i] += alpha * o_[i];
}

void Decoder::AttentionStep(int l) {
  const int64_t hd = c_.head_dim, total = pos_ + 1, ratio = c_.heads / c_.kv_heads;
  const float scale = std::sqrt(static_cast<float>(hd));
  const float* q = qkv_.data();
  auto heads = [&](int64_t begin, int64_t end) {
    for (int64_t head = begin; head < end; ++head) {
      const float* keys = KCache(l, head / ratio);
      const float* values = VCache(l, head / ratio);
      float* row = scores_.data() + head * total;
      MatVecRows(keys, q + head * hd, hd, 0, total, row);  // keys [total][HD] · q
      for (int64_t p = 0; p < total; ++p) row[p] /= scale;
      SoftmaxRow(row, total);
      float* out = att_.data() + head * hd;
      std::fill(out, out + hd, 0.0f);
      for (int64_t p = 0; p < total; ++p) {
        const float a = row[p];
        const float* vp = values + p * hd;
        for (int64_t e = 0; e < hd; ++e) out[e] += a * vp[e];
      }
    }
  };
  // A head reads 2·total·HD cached floats; split only when a chunk is worth handing out.
  ParallelRows(c_.heads, std::max<int64_t>(1, (16 * 1024) / (2 * total * hd)), heads);
}

void Decoder::Attention(int l, int64_t n) {
  const int64_t hd = c_.head_dim, total = pos_ + n, ratio = c_.heads / c_.kv_heads;
  const float scale = std::sqrt(static_cast<float>(hd));
  for (int64_t head = 0; head < c_.heads; ++head) {
    const float* keys = KCache(l, head / ratio);
    const float* values = VCache(l, head / ratio);
    for (int64_t e = 0; e < hd; ++e) {
      const float* qs = qkv_.data() + (head * hd + e) * n;
      for (int64_t t = 0; t < n; ++t) qt_[t * hd + e] = qs[t];
    }
    // scores [n][total] = q [n][HD] · keysᵀ; row t attends to positions [0, pos_ + t].
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, total, hd, 1.0f, qt_.data(), hd, keys,
                hd, 0.0f, scores_.data(), total);
    for (int64_t t = 0; t < n; ++t) {
      float* row = scores_.data() + t * total;
      const int64_t visible = pos_ + t + 1;
      for (int64_t p = 0; p < visible; ++p) row[p] /= scale;
      SoftmaxRow(row, visible);
      std::fill(row + visible, row + total, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, total, 1.0f, scores_.data(),
                total, values, hd, 0.0f, hout_.data(), hd);
    for (int64_t e = 0; e < hd; ++e) {
      float* out = att_.data() + (head * hd + e) * n;
      for (int64_t t = 0; t < n; ++t) out[t] = hout_[t * hd + e];
    }
  }
}

}  // namespace anerd::generation
