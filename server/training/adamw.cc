// AdamW (cpu_ops.h): the fused update of parameters and both moments from the gradients.
//
// The step is memory bound once vectorised: per element it reads w, g, m, v and writes w, m, v
// (28 bytes), against one division and one square root. The compiler's own vectorisation stops
// at the target's baseline (SSE, four lanes); the AVX2 path below doubles the lanes where the CPU
// has them. Both paths compute
//   gi = g·mult; m = β1·m + (1−β1)·gi; v = β2·v + ((1−β2)·gi)·gi;
//   w = w − lr·((m·c1)/(√(v·c2) + eps) + wd·w)
// with the same roundings in the same order (this file is compiled with -ffp-contract=off, so no
// multiply-add is fused on either path; sqrt and division are correctly rounded on both).
#include <cmath>
#include <cstdint>

#include "server/training/cpu_ops.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ANERD_ADAMW_AVX2 1
#endif

namespace anerd::training {
namespace {

// The update's constants in float, as every path uses them.
struct Coeffs {
  float b1, b2, omb1, omb2, c1, c2, lr, eps, wd, mult;
};

Coeffs MakeCoeffs(const AdamWParams& p) {
  Coeffs k;
  k.b1 = static_cast<float>(p.beta1);
  k.b2 = static_cast<float>(p.beta2);
  k.omb1 = 1.0f - k.b1;
  k.omb2 = 1.0f - k.b2;
  k.c1 = static_cast<float>(1.0 / (1.0 - std::pow(p.beta1, static_cast<double>(p.t))));
  k.c2 = static_cast<float>(1.0 / (1.0 - std::pow(p.beta2, static_cast<double>(p.t))));
  k.lr = static_cast<float>(p.lr);
  k.eps = static_cast<float>(p.eps);
  k.wd = static_cast<float>(p.weight_decay);
  k.mult = static_cast<float>(p.grad_mult);
  return k;
}

void Portable(float* __restrict w, const float* __restrict g, float* __restrict m,
              float* __restrict v, int64_t n, const Coeffs& k) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * k.mult;
    const float mi = k.b1 * m[i] + k.omb1 * gi;
    const float vi = k.b2 * v[i] + k.omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float mh = mi * k.c1, vh = vi * k.c2;
    w[i] = w[i] - k.lr * (mh / (std::sqrt(vh) + k.eps) + k.wd * w[i]);
  }
}

#ifdef ANERD_ADAMW_AVX2
__attribute__((target("avx2"))) void Avx2(float* w, const float* g, float* m, float* v, int64_t n,
                                          const Coeffs& k) {
  const __m256 b1 = _mm256_set1_ps(k.b1), b2 = _mm256_set1_ps(k.b2);
  const __m256 omb1 = _mm256_set1_ps(k.omb1), omb2 = _mm256_set1_ps(k.omb2);
  const __m256 c1 = _mm256_set1_ps(k.c1), c2 = _mm256_set1_ps(k.c2);
  const __m256 lr = _mm256_set1_ps(k.lr), eps = _mm256_set1_ps(k.eps);
  const __m256 wd = _mm256_set1_ps(k.wd), mult = _mm256_set1_ps(k.mult);
  const int64_t body = n - n % 8;
  for (int64_t i = 0; i < body; i += 8) {
    const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), mult);
    const __m256 mi =
        _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(omb1, gi));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                    _mm256_mul_ps(_mm256_mul_ps(omb2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 mh = _mm256_mul_ps(mi, c1);
    const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, c2)), eps);
    const __m256 wi = _mm256_loadu_ps(w + i);
    const __m256 step =
        _mm256_mul_ps(lr, _mm256_add_ps(_mm256_div_ps(mh, den), _mm256_mul_ps(wd, wi)));
    _mm256_storeu_ps(w + i, _mm256_sub_ps(wi, step));
  }
  Portable(w + body, g + body, m + body, v + body, n - body, k);
}

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

}  // namespace

void AdamW(float* w, const float* g, float* m, float* v, int64_t n, const AdamWParams& p) {
  const Coeffs k = MakeCoeffs(p);
#ifdef ANERD_ADAMW_AVX2
  if (HasAvx2()) return Avx2(w, g, m, v, n, k);
#endif
  Portable(w, g, m, v, n, k);
}

void AdamWPortable(float* w, const float* g, float* m, float* v, int64_t n, const AdamWParams& p) {
  Portable(w, g, m, v, n, MakeCoeffs(p));
}

}  // namespace anerd::training
