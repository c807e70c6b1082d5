// A direct double-precision implementation of the model's forward pass and loss, written from the
// architecture description (config.h) independently of the engine: position-major activations,
// naive loops. Used by the gradient check and the op tests.
#ifndef ANERD_TESTS_TRAINING_REFERENCE_MODEL_H_
#define ANERD_TESTS_TRAINING_REFERENCE_MODEL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "server/training/config.h"
#include "server/training/model.h"

namespace anerd::training::testing {

using Vec = std::vector<double>;

// y = W x for W [out][in] stored at p + off.
inline Vec MatVec(const std::vector<double>& p, int64_t off, int64_t out, int64_t in,
                  const Vec& x) {
  Vec y(out, 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) y[o] += p[off + o * in + i] * x[i];
  }
  return y;
}

inline Vec RmsNorm(const Vec& x, const std::vector<double>& p, int64_t off, double eps = 1e-5) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double r = 1.0 / std::sqrt(ss / x.size() + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * r * p[off + i];
  return y;
}

// RoPE of one head vector at position t: pair j = (2j, 2j+1), or (j, j+HD/2) when `half` (Hugging
// Face rotate_half), turns by t / base^(2j/HD).
inline void Rope(double* v, int64_t hd, int64_t t, double base = 10000.0, bool half = false) {
  for (int64_t j = 0; j < hd / 2; ++j) {
    const double theta = t / std::pow(base, static_cast<double>(2 * j) / hd);
    const int64_t ia = half ? j : 2 * j, ib = half ? j + hd / 2 : 2 * j + 1;
    const double c = std::cos(theta), s = std::sin(theta), a = v[ia], b = v[ib];
    v[ia] = a * c - b * s;
    v[ib] = b * c + a * s;
  }
}

// QK-norm: RMSNorm of one head vector [HD] with weights at p + off.
inline void HeadNorm(double* v, int64_t hd, const std::vector<double>& p, int64_t off, double eps) {
  const Vec y = RmsNorm(Vec(v, v + hd), p, off, eps);
  std::copy(y.begin(), y.end(), v);
}

// Mean cross-entropy of the model on (tokens, targets), S = c.seq each.
inline double ReferenceLoss(const ModelConfig& c, double alpha, const std::vector<double>& p,
                            const uint32_t* tokens, const uint32_t* targets) {
  const ParamLayout lay(c);
  const int64_t S = c.seq, D = c.dim, H = c.hidden, HD = c.head_dim, QD = c.q_dim(),
                KVD = c.kv_dim();
  const int64_t R = c.heads / c.kv_heads;
  const bool half = c.rope_style == ModelConfig::RopeStyle::kHalf;
  const double eps = c.norm_eps;
  std::vector<Vec> x(S);
  for (int64_t t = 0; t < S; ++t)
    x[t] = Vec(p.begin() + tokens[t] * D, p.begin() + tokens[t] * D + D);
  for (int l = 0; l < c.layers; ++l) {
    const ParamLayout::Layer& w = lay.layer(l);
    std::vector<Vec> q(S), k(S), v(S);
    for (int64_t t = 0; t < S; ++t) {
      const Vec xn = RmsNorm(x[t], p, w.rms_att, eps);
      q[t] = MatVec(p, w.wq, QD, D, xn);
      k[t] = MatVec(p, w.wk, KVD, D, xn);
      v[t] = MatVec(p, w.wv, KVD, D, xn);
      for (int h = 0; c.qk_norm && h < c.heads; ++h) HeadNorm(&q[t][h * HD], HD, p, w.q_norm, eps);
      for (int h = 0; c.qk_norm && h < c.kv_heads; ++h) {
        HeadNorm(&k[t][h * HD], HD, p, w.k_norm, eps);
      }
      for (int h = 0; h < c.heads; ++h) Rope(&q[t][h * HD], HD, t, c.rope_theta, half);
      for (int h = 0; h < c.kv_heads; ++h) Rope(&k[t][h * HD], HD, t, c.rope_theta, half);
    }
    for (int64_t t = 0; t < S; ++t) {
      Vec att(QD, 0.0);
      for (int h = 0; h < c.heads; ++h) {
        const int64_t kh = h / R;
        Vec sc(t + 1);
        double mx = -1e300;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int64_t d = 0; d < HD; ++d) dot += q[t][h * HD + d] * k[u][kh * HD + d];
          sc[u] = dot / std::sqrt(static_cast<double>(HD));
          mx = std::max(mx, sc[u]);
        }
        double sum = 0;
        for (double& s : sc) sum += (s = std::exp(s - mx));
        for (int64_t u = 0; u <= t; ++u) {
          for (int64_t d = 0; d < HD; ++d) att[h * HD + d] += sc[u] / sum * v[u][kh * HD + d];
        }
      }
      const Vec o = MatVec(p, w.wo, D, QD, att);
      Vec x2(D);
      for (int64_t d = 0; d < D; ++d) x2[d] = x[t][d] + alpha * o[d];
      const Vec x2n = RmsNorm(x2, p, w.rms_ffn, eps);
      const Vec h1 = MatVec(p, w.w1, H, D, x2n), h3 = MatVec(p, w.w3, H, D, x2n);
      Vec gate(H);
      for (int64_t i = 0; i < H; ++i) gate[i] = h1[i] / (1 + std::exp(-h1[i])) * h3[i];
      const Vec f = MatVec(p, w.w2, D, H, gate);
      for (int64_t d = 0; d < D; ++d) x2[d] += alpha * f[d];
      x[t] = x2;  // safe: attention of later positions uses q/k/v computed above
    }
  }
  double loss = 0;
  for (int64_t t = 0; t < S; ++t) {
    const Vec xf = RmsNorm(x[t], p, lay.rms_final(), eps);
    const Vec logits = MatVec(p, lay.classifier(), c.vocab, D, xf);
    double mx = -1e300, sum = 0;
    for (double z : logits) mx = std::max(mx, z);
    for (double z : logits) sum += std::exp(z - mx);
    loss -= logits[targets[t]] - mx - std::log(sum);
  }
  return loss / S;
}

}  // namespace anerd::training::testing

#endif  // ANERD_TESTS_TRAINING_REFERENCE_MODEL_H_
