// Matrix-vector kernels of the generation decoder: y = W·x for row-major fp32 W, the whole cost of
// decoding one token (memory bound: every weight is read once per token).
//
// MatVecRows computes rows [begin, end) on the calling thread: on x86-64 with AVX2 and FMA (checked
// at run time; the build does not assume them) four rows at a time with two 8-wide fused
// multiply-add accumulators each, elsewhere a portable loop with eight partial sums per row that
// compilers vectorise (NEON on arm64). Each dot product sums in a fixed order that depends only on
// `cols`, never on the row range or the thread count — float reassociation of the sequential sum,
// nothing else. MatVec splits the rows over ParallelRows (parallel_rows.h).
// Thread-safety: pure functions of their arguments (outputs must not alias inputs).
#ifndef ANERD_SERVER_GENERATION_MATVEC_H_
#define ANERD_SERVER_GENERATION_MATVEC_H_

#include <cstdint>

namespace anerd::generation {

// y[r] = Σ_c w[r·cols + c] · x[c] for r in [begin, end).
void MatVecRows(const float* w, const float* x, int64_t cols, int64_t begin, int64_t end, float* y);

// MatVecRows with the portable kernel whatever the CPU: what machines without AVX2/FMA run,
// exposed so that tests on x86 check it too.
void MatVecRowsPortable(const float* w, const float* x, int64_t cols, int64_t begin, int64_t end,
                        float* y);

// y [rows] = W [rows][cols] · x [cols], on the row pool.
void MatVec(const float* w, const float* x, int64_t rows, int64_t cols, float* y);

// Rows per pool chunk for a matrix of `cols` columns: at least ~64 KB of weights, so a chunk
// costs far more than handing it out.
int64_t MatVecGrain(int64_t cols);

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_MATVEC_H_
