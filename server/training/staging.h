// Moving weights and activations between the trainer's fp32 arrays and the fp16 surfaces of the
// training kernels, and the dW accumulation the CPU does beside them. Pure functions of their
// arguments; callers own every buffer and give its sizes (no bounds are checked here).
#ifndef ANERD_SERVER_TRAINING_STAGING_H_
#define ANERD_SERVER_TRAINING_STAGING_H_

#include <cstdint>
#include <vector>

namespace anerd::training {

// dst[r·ld + c] = fp16(src[r·cols + c]) for r < rows, c < cols.
void PutRows(uint16_t* dst, int64_t ld, const float* src, int64_t rows, int64_t cols);

// Stages Wᵀ for W [out][in]: dst[i·ld + o] = fp16(W[o][i]), through 32×32 tiles held in `scratch`.
void PutTransposed(uint16_t* dst, int64_t ld, const float* w, int64_t out, int64_t in,
                   std::vector<float>* scratch);

// dW[out][in] += dy[out][seq] · x[in][seq]ᵀ (single-precision GEMM on the BLAS in use).
void AccumulateDw(const float* dy, const float* x, int64_t out, int64_t in, int64_t seq, float* dw);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_STAGING_H_
