// KvCache: the cache writes and the causal GQA attention over it (kv_cache.h).
#include "server/generation/kv_cache.h"

#include <algorithm>
#include <cmath>

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::generation {
namespace {

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

KvCache::KvCache(const training::ModelConfig& config, int64_t max_context)
    : heads_(config.heads),
      kvh_(config.kv_heads),
      hd_(config.head_dim),
      ctx_(max_context),
      k_(config.layers * config.kv_dim() * max_context),
      v_(k_.size()) {}

double KvCache::Bytes(const training::ModelConfig& config, int64_t max_context) {
  return 2.0 * config.layers * static_cast<double>(config.kv_dim()) * max_context * sizeof(float);
}

void KvCache::Append(int l, int64_t pos, int64_t n, const float* k, const float* v) {
  for (int64_t j = 0; j < kvh_; ++j) {
    float* kc = K(l, j) + pos * hd_;
    float* vc = V(l, j) + pos * hd_;
    for (int64_t e = 0; e < hd_; ++e) {
      const float* ks = k + (j * hd_ + e) * n;
      const float* vs = v + (j * hd_ + e) * n;
      for (int64_t t = 0; t < n; ++t) {
        kc[t * hd_ + e] = ks[t];
        vc[t * hd_ + e] = vs[t];
      }
    }
  }
}

void KvCache::Attend(int l, int64_t pos, int64_t n, const float* q, float* out) {
  const int64_t total = pos + n, ratio = heads_ / kvh_;
  const float scale = std::sqrt(static_cast<float>(hd_));
  qt_.resize(n * hd_);
  hout_.resize(n * hd_);
  scores_.resize(n * total);
  for (int64_t head = 0; head < heads_; ++head) {
    for (int64_t e = 0; e < hd_; ++e) {
      const float* qs = q + (head * hd_ + e) * n;
      for (int64_t t = 0; t < n; ++t) qt_[t * hd_ + e] = qs[t];
    }
    // scores [n][total] = q [n][HD] · keysᵀ; row t sees positions [0, pos + t].
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, total, hd_, 1.0f, qt_.data(), hd_,
                K(l, head / ratio), hd_, 0.0f, scores_.data(), total);
    for (int64_t t = 0; t < n; ++t) {
      float* row = scores_.data() + t * total;
      const int64_t visible = pos + t + 1;
      for (int64_t p = 0; p < visible; ++p) row[p] /= scale;
      SoftmaxRow(row, visible);
      std::fill(row + visible, row + total, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd_, total, 1.0f, scores_.data(),
                total, V(l, head / ratio), hd_, 0.0f, hout_.data(), hd_);
    for (int64_t e = 0; e < hd_; ++e) {
      float* o = out + (head * hd_ + e) * n;
      for (int64_t t = 0; t < n; ++t) o[t] = hout_[t * hd_ + e];
    }
  }
}

}  // namespace anerd::generation
