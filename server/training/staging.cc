#include "server/training/staging.h"

#include <algorithm>

#include "common/fp16.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::training {

// dst[r·ld + c] = fp16(src[r·cols + c]).
void PutRows(uint16_t* dst, int64_t ld, const float* src, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) FloatToHalfArray(src + r * cols, dst + r * ld, cols);
}

// Stages Wᵀ for W [out][in]: dst[i·ld + o] = W[o][i]. Tiles of 32×32: rows of W are read
// contiguously and each staged row segment is converted and written contiguously (large
// power-of-two strides in a whole-matrix transpose thrash the caches).
void PutTransposed(uint16_t* dst, int64_t ld, const float* w, int64_t out, int64_t in,
                   std::vector<float>* scratch) {
  constexpr int64_t kB = 32;
  scratch->resize(kB * kB);
  float* tile = scratch->data();
  for (int64_t o0 = 0; o0 < out; o0 += kB) {
    const int64_t no = std::min(kB, out - o0);
    for (int64_t i0 = 0; i0 < in; i0 += kB) {
      const int64_t ni = std::min(kB, in - i0);
      for (int64_t o = 0; o < no; ++o) {
        const float* row = w + (o0 + o) * in + i0;
        for (int64_t i = 0; i < ni; ++i) tile[i * kB + o] = row[i];
      }
      for (int64_t i = 0; i < ni; ++i)
        FloatToHalfArray(tile + i * kB, dst + (i0 + i) * ld + o0, no);
    }
  }
}

// dW[out][in] += dy[out][S] · x[in][S]ᵀ.
void AccumulateDw(const float* dy, const float* x, int64_t out, int64_t in, int64_t seq,
                  float* dw) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(out), static_cast<int>(in),
              static_cast<int>(seq), 1.0f, dy, static_cast<int>(seq), x, static_cast<int>(seq),
              1.0f, dw, static_cast<int>(in));
}

}  // namespace anerd::training
