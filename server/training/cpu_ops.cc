#include "server/training/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace anerd::training {

void RmsNormForward(const float* x, const float* w, int64_t dim, int64_t seq, float* y, float* rinv,
                    float eps) {
  std::vector<float> ss(seq, 0.0f);
  for (int64_t c = 0; c < dim; ++c) {
    const float* xc = x + c * seq;
    for (int64_t t = 0; t < seq; ++t) ss[t] += xc[t] * xc[t];
  }
  for (int64_t t = 0; t < seq; ++t) rinv[t] = 1.0f / std::sqrt(ss[t] / dim + eps);
  for (int64_t c = 0; c < dim; ++c) {
    const float* xc = x + c * seq;
    float* yc = y + c * seq;
    for (int64_t t = 0; t < seq; ++t) yc[t] = xc[t] * rinv[t] * w[c];
  }
}

void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rinv,
                     int64_t dim, int64_t seq, float* dx, float* dw) {
  std::vector<float> dot(seq, 0.0f);
  for (int64_t c = 0; c < dim; ++c) {
    const float* xc = x + c * seq;
    const float* dyc = dy + c * seq;
    float acc = 0.0f;
    for (int64_t t = 0; t < seq; ++t) {
      dot[t] += dyc[t] * w[c] * xc[t];
      acc += dyc[t] * xc[t] * rinv[t];
    }
    dw[c] += acc;
  }
  for (int64_t t = 0; t < seq; ++t) dot[t] *= rinv[t] * rinv[t] / dim;
  for (int64_t c = 0; c < dim; ++c) {
    const float* xc = x + c * seq;
    const float* dyc = dy + c * seq;
    float* dxc = dx + c * seq;
    for (int64_t t = 0; t < seq; ++t) dxc[t] = rinv[t] * (w[c] * dyc[t] - xc[t] * dot[t]);
  }
}

void HeadRmsNormForward(const float* x, const float* w, int64_t heads, int64_t head_dim,
                        int64_t seq, float eps, float* y) {
  for (int64_t h = 0; h < heads; ++h) {
    RmsNormForward(x + h * head_dim * seq, w, head_dim, seq, y + h * head_dim * seq,
                   std::vector<float>(seq).data(), eps);
  }
}

void HeadRmsNormBackward(float* d, const float* x, const float* w, int64_t heads, int64_t head_dim,
                         int64_t seq, float eps, float* dw) {
  std::vector<float> y(head_dim * seq), rinv(seq), dy(head_dim * seq);
  for (int64_t h = 0; h < heads; ++h) {
    const float* xh = x + h * head_dim * seq;
    float* dh = d + h * head_dim * seq;
    RmsNormForward(xh, w, head_dim, seq, y.data(), rinv.data(), eps);  // recomputes r
    std::copy(dh, dh + head_dim * seq, dy.begin());
    RmsNormBackward(dy.data(), xh, w, rinv.data(), head_dim, seq, dh, dw);
  }
}

namespace {

// Applies the rotation (a, b) -> (a·c − sgn·b·s, b·c + sgn·a·s) to every pair; the pairs are
// (i, i+1) for even i, or (i, i+HD/2) for i < HD/2 when `half`. The tables hold pair i's angle at
// column i either way.
void Rotate(float* x, int64_t heads, int64_t head_dim, int64_t seq, const float* cos,
            const float* sin, float sgn, bool half) {
  const int64_t step = half ? 1 : 2, end = half ? head_dim / 2 : head_dim;
  const int64_t partner = half ? head_dim / 2 : 1;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < end; i += step) {
      float* a = x + (h * head_dim + i) * seq;
      float* b = a + partner * seq;
      for (int64_t t = 0; t < seq; ++t) {
        const float c = cos[t * head_dim + i], s = sgn * sin[t * head_dim + i];
        const float a0 = a[t], b0 = b[t];
        a[t] = a0 * c - b0 * s;
        b[t] = b0 * c + a0 * s;
      }
    }
  }
}

}  // namespace

void RopeForward(float* x, int64_t heads, int64_t head_dim, int64_t seq, const float* cos,
                 const float* sin, bool half) {
  Rotate(x, heads, head_dim, seq, cos, sin, 1.0f, half);
}

void RopeBackward(float* dx, int64_t heads, int64_t head_dim, int64_t seq, const float* cos,
                  const float* sin, bool half) {
  Rotate(dx, heads, head_dim, seq, cos, sin, -1.0f, half);
}

void SiluBackward(const float* dgate, const float* h1, const float* h3, int64_t n, float* dh1,
                  float* dh3) {
  for (int64_t i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + std::exp(-h1[i]));
    dh3[i] = dgate[i] * h1[i] * sig;
    dh1[i] = dgate[i] * h3[i] * sig * (1.0f + h1[i] * (1.0f - sig));
  }
}

void GqaTile(const float* kv, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t seq,
             float* tiled) {
  const int64_t r = heads / kv_heads, block = head_dim * seq;
  for (int64_t h = 0; h < heads; ++h) {
    std::memcpy(tiled + h * block, kv + (h / r) * block, block * sizeof(float));
  }
}

void GqaReduce(const float* full, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t seq,
               float* kv) {
  const int64_t r = heads / kv_heads, block = head_dim * seq;
  for (int64_t j = 0; j < kv_heads; ++j) {
    float* out = kv + j * block;
    std::memcpy(out, full + j * r * block, block * sizeof(float));
    for (int64_t k = 1; k < r; ++k) {
      const float* src = full + (j * r + k) * block;
      for (int64_t i = 0; i < block; ++i) out[i] += src[i];
    }
  }
}

void EmbeddingForward(const float* embed, const uint32_t* tokens, int64_t dim, int64_t seq,
                      float* x) {
  for (int64_t t = 0; t < seq; ++t) {
    const float* row = embed + int64_t{tokens[t]} * dim;
    for (int64_t d = 0; d < dim; ++d) x[d * seq + t] = row[d];
  }
}

void EmbeddingBackward(const float* dx, const uint32_t* tokens, int64_t dim, int64_t seq,
                       float* dembed) {
  for (int64_t t = 0; t < seq; ++t) {
    float* row = dembed + int64_t{tokens[t]} * dim;
    for (int64_t d = 0; d < dim; ++d) row[d] += dx[d * seq + t];
  }
}

double CrossEntropy(float* logits, const uint32_t* targets, int64_t seq, int64_t vocab,
                    float grad_scale) {
  double loss = 0;
  const float g = grad_scale / static_cast<float>(seq);
  for (int64_t t = 0; t < seq; ++t) {
    float* row = logits + t * vocab;
    const float mx = *std::max_element(row, row + vocab);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      row[v] = std::exp(row[v] - mx);
      sum += row[v];
    }
    const float inv = static_cast<float>(1.0 / sum);
    loss -= std::log(std::max(static_cast<double>(row[targets[t]]) / sum, 1e-30));
    for (int64_t v = 0; v < vocab; ++v) row[v] *= inv * g;
    row[targets[t]] -= g;
  }
  return loss / seq;
}

double SumSquares(const float* g, int64_t n) {
  // Eight float lanes per block of 4096 (vectorisable), blocks summed in double.
  constexpr int64_t kBlock = 4096;
  double acc = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = b;
    for (; i + 8 <= e; i += 8) {
      for (int k = 0; k < 8; ++k) lane[k] += g[i + k] * g[i + k];
    }
    for (; i < e; ++i) lane[0] += g[i] * g[i];
    for (float l : lane) acc += l;
  }
  return acc;
}

void Scale(float* g, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) g[i] *= s;
}

double ScheduledLr(bool cosine, double lr, double min_lr, int64_t warmup, int64_t step,
                   int64_t total) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (!cosine || total <= warmup) return lr;
  const double frac = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  return min_lr + 0.5 * (1.0 + std::cos(M_PI * std::min(frac, 1.0))) * (lr - min_lr);
}

}  // namespace anerd::training
