// MatVecRows / MatVec (matvec.h).
#include "server/generation/matvec.h"

#include <algorithm>

#include "server/generation/parallel_rows.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ANERD_MATVEC_AVX2 1
#endif

namespace anerd::generation {
namespace {

// Eight partial sums per row (lanes c mod 8 over the first cols - cols mod 8 columns), added
// pairwise, then the tail in order: the AVX2 kernel below sums in the same order (with fused
// multiply-adds; here the compiler decides).
float DotPortable(const float* w, const float* x, int64_t cols) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t body = cols - cols % 8;
  for (int64_t c = 0; c < body; c += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += w[c + j] * x[c + j];
  }
  float sum = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
  for (int64_t c = body; c < cols; ++c) sum += w[c] * x[c];
  return sum;
}

void RowsPortable(const float* w, const float* x, int64_t cols, int64_t begin, int64_t end,
                  float* y) {
  for (int64_t r = begin; r < end; ++r) y[r] = DotPortable(w + r * cols, x, cols);
}

#ifdef ANERD_MATVEC_AVX2
__attribute__((target("avx2,fma"))) inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Four rows per pass, each with one 8-wide accumulator over the body (the x loads are shared),
// then the tail in order.
__attribute__((target("avx2,fma"))) void RowsAvx2(const float* w, const float* x, int64_t cols,
                                                  int64_t begin, int64_t end, float* y) {
  const int64_t body = cols - cols % 8;
  int64_t r = begin;
  for (; r + 4 <= end; r += 4) {
    const float* w0 = w + r * cols;
    const float* w1 = w0 + cols;
    const float* w2 = w1 + cols;
    const float* w3 = w2 + cols;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t c = 0; c < body; c += 8) {
      const __m256 xv = _mm256_loadu_ps(x + c);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + c), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + c), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + c), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + c), xv, a3);
    }
    float s[4] = {HorizontalSum(a0), HorizontalSum(a1), HorizontalSum(a2), HorizontalSum(a3)};
    const float* rows[4] = {w0, w1, w2, w3};
    for (int i = 0; i < 4; ++i) {
      for (int64_t c = body; c < cols; ++c) s[i] += rows[i][c] * x[c];
      y[r + i] = s[i];
    }
  }
  for (; r < end; ++r) {
    const float* wr = w + r * cols;
    __m256 a = _mm256_setzero_ps();
    for (int64_t c = 0; c < body; c += 8) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(wr + c), _mm256_loadu_ps(x + c), a);
    }
    float s = HorizontalSum(a);
    for (int64_t c = body; c < cols; ++c) s += wr[c] * x[c];
    y[r] = s;
  }
}

bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

}  // namespace

void MatVecRows(const float* w, const float* x, int64_t cols, int64_t begin, int64_t end,
                float* y) {
#ifdef ANERD_MATVEC_AVX2
  if (HasAvx2Fma()) return RowsAvx2(w, x, cols, begin, end, y);
#endif
  RowsPortable(w, x, cols, begin, end, y);
}

void MatVecRowsPortable(const float* w, const float* x, int64_t cols, int64_t begin, int64_t end,
                        float* y) {
  RowsPortable(w, x, cols, begin, end, y);
}

int64_t MatVecGrain(int64_t cols) {
  return std::max<int64_t>(4, (16 * 1024) / std::max<int64_t>(cols, 1));
}

void MatVec(const float* w, const float* x, int64_t rows, int64_t cols, float* y) {
  ParallelRows(rows, MatVecGrain(cols),
               [&](int64_t begin, int64_t end) { MatVecRows(w, x, cols, begin, end, y); });
}

}  // namespace anerd::generation
