// CPU operations of the training step that do not run as backend kernels (docs/ANE_NOTES.md §4.3,
// §5.4).
//
// Activations are fp32, channel-major [C][S] (element (c, t) at c*S + t) like the kernels' I/O.
// Functions write their outputs (`=`) unless documented as accumulating (`+=`). Buffers must not
// alias unless stated. Thread-safety: pure functions of their arguments.
#ifndef ANERD_SERVER_TRAINING_CPU_OPS_H_
#define ANERD_SERVER_TRAINING_CPU_OPS_H_

#include <cstdint>

namespace anerd::training {

inline constexpr float kRmsEps = 1e-5f;

// y = x · r · w per position, r[t] = (mean_c x[c][t]² + eps)^(-1/2); stores r in `rinv` [S].
void RmsNormForward(const float* x, const float* w, int64_t dim, int64_t seq, float* y, float* rinv,
                    float eps = kRmsEps);
// The exact gradient: dx[c][t] = r·(w_c·dy − x_c·r²/D·Σ_j dy_j w_j x_j) (dx written),
// dw[c] += Σ_t dy·x·r. `rinv` from the forward.
void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rinv,
                     int64_t dim, int64_t seq, float* dx, float* dw);

// QK-norm: RMSNorm of every head of a head-split [N·HD][S] buffer over its HD entries, one weight
// vector w [HD] shared by the heads. Forward writes y (may alias x). Backward, given dy = dL/dy
// in place in `d` and the forward's input x, replaces `d` by dL/dx and accumulates dw[HD] +=.
void HeadRmsNormForward(const float* x, const float* w, int64_t heads, int64_t head_dim,
                        int64_t seq, float eps, float* y);
void HeadRmsNormBackward(float* d, const float* x, const float* w, int64_t heads, int64_t head_dim,
                         int64_t seq, float eps, float* dw);

// RoPE over a head-split [N·HD][S] buffer, in place, with the [S][HD] tables of RopeTables
// (kernels.h). Pairs (a, b) are (2i, 2i+1) or, `half`, (i, i+HD/2). Forward: (a, b) ->
// (a·c − b·s, b·c + a·s); backward is its transpose.
void RopeForward(float* x, int64_t heads, int64_t head_dim, int64_t seq, const float* cos,
                 const float* sin, bool half = false);
void RopeBackward(float* dx, int64_t heads, int64_t head_dim, int64_t seq, const float* cos,
                  const float* sin, bool half = false);

// SwiGLU gate = silu(h1)·h3; given dgate: dh1 = dgate·h3·σ·(1 + h1·(1−σ)), dh3 = dgate·silu(h1).
void SiluBackward(const float* dgate, const float* h1, const float* h3, int64_t n, float* dh1,
                  float* dh3);

// GQA with ratio R = heads/kv_heads: tiled head h = kv head h / R. `kv` is [KVH·HD][S], `tiled`
// [NH·HD][S]. Reduce sums the R query heads of each KV head back: kv[j] = Σ_r full[j·R + r].
void GqaTile(const float* kv, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t seq,
             float* tiled);
void GqaReduce(const float* full, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t seq,
               float* kv);

// x[d][t] = E[tok[t]][d] for E [V][D]. Tokens must be < V (checked at data load).
void EmbeddingForward(const float* embed, const uint32_t* tokens, int64_t dim, int64_t seq,
                      float* x);
// dE[tok[t]][d] += dx[d][t].
void EmbeddingBackward(const float* dx, const uint32_t* tokens, int64_t dim, int64_t seq,
                       float* dembed);

// Cross-entropy over rows of logits [S][V] (position-major), targets < V. Replaces `logits` by
// dlogits = (softmax − onehot)·grad_scale/S and returns the mean loss −log p[target] (double).
double CrossEntropy(float* logits, const uint32_t* targets, int64_t seq, int64_t vocab,
                    float grad_scale);

// Σ g² in double (for the global norm); NaN/inf propagate.
double SumSquares(const float* g, int64_t n);
// Scales g by s in place.
void Scale(float* g, int64_t n, float s);

struct AdamWParams {
  double lr = 0;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0;  // decoupled: w -= lr·wd·w
  int64_t t = 1;            // 1-based step for bias correction
  double grad_mult = 1;     // applied to g before the moments (unscale, clip, 1/accum)
};
// m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; w −= lr·(m̂/(√v̂ + eps) + wd·w).
// One pass over the four arrays (adamw.cc): eight lanes with AVX2 where the CPU has it (chosen at
// run time), four (SSE, compiler-vectorised) or scalar elsewhere. Every path evaluates the same
// float operations in the same order without fused multiply-adds, so the results are the same
// bits on every path (tested). Callers split large arrays across threads themselves.
void AdamW(float* w, const float* g, float* m, float* v, int64_t n, const AdamWParams& p);
// The portable path alone (tests and bench/adamw_bench compare it with AdamW).
void AdamWPortable(float* w, const float* g, float* m, float* v, int64_t n, const AdamWParams& p);

// Learning rate at optimizer step `step` (0-based) of `total`: linear warmup lr·(step+1)/warmup
// for step < warmup, then cosine from lr to min_lr over the remaining steps ("cosine") or lr
// ("constant").
double ScheduledLr(bool cosine, double lr, double min_lr, int64_t warmup, int64_t step,
                   int64_t total);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_CPU_OPS_H_
