// CPU kernels: fp32 compute over strided inputs, contiguous outputs. Every kernel's results are a
// pure function of its arguments (they may run on the shared pool, never depend on it). All
// parallelism goes through ParallelFor
// (parallel.h: the calling thread plus one sleeping helper): GEMMs run as single-threaded
// cblas_sgemm blocks spread over it (gemm.cc), the other kernels split large passes into
// independent chunks; results are identical however many threads run them. fp16 rounding of
// results is the caller's job (RoundInPlace) except inside fused elementwise groups, which round
// after every step as planned, and in Softmax.
#ifndef ANERD_SERVER_BACKEND_CPU_KERNELS_KERNELS_H_
#define ANERD_SERVER_BACKEND_CPU_KERNELS_KERNELS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"

namespace anerd::backend::cpu {

// A strided read-only tensor in memory (shape/strides in elements).
struct Strided {
  const float* data = nullptr;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int64_t NumElements() const;
};

// ---- data movement (movement.cc) -----------------------------------------------------------
// Copies `src` into contiguous row-major `dst`.
void CopyStrided(const Strided& src, float* dst);
// Copies `src` into `dst` laid out with `dst_strides` (same shape as src).
void CopyToStrided(const Strided& src, float* dst, const std::vector<int64_t>& dst_strides);
// Writes `src` into the region of contiguous `dst` (shape dst_shape) starting at `axis_offset`
// along `axis` (src has dst's shape except along axis).
void CopyIntoAxis(const Strided& src, float* dst, const std::vector<int64_t>& dst_shape, int axis,
                  int64_t axis_offset);
// out = x gathered along `axis` by `indices` (float-held integers; negatives wrap).
// INVALID_ARGUMENT if an index is out of range.
absl::Status Gather(const Strided& x, const Strided& indices, int axis, float* out);

// ---- elementwise (elementwise.cc) --------------------------------------------------------------
enum class EwOp : uint8_t {
  // unary (operand 0)
  kSqrt,
  kRsqrt,
  kExp,
  kLog,
  kTanh,
  kSigmoid,
  kRelu,
  kSilu,
  kGeluExact,
  kGeluTanh,
  kGeluSigmoid,
  kClip,
  kCastToInt,
  kCastToBool,
  kIdentity,
  // binary (operands 0, 1)
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMax,
  kMin,
  kPow,
  // ternary
  kSelect,      // operand0 != 0 ? operand1 : operand2
  kQuantize,    // clip(rne(x / scale) + zp, lo, hi): operands x, scale, zp
  kDequantize,  // (x - zp) * scale: operands x, scale, zp
};

// How a step's result is rounded (the declared dtype in the numerics mode).
enum class Rounding : uint8_t { kNone, kFp16 };

struct EwStep {
  EwOp op = EwOp::kIdentity;
  // Operand i: >= 0 is leaf index, < 0 is -(k+1) for the result of step k.
  int operands[3] = {0, 0, 0};
  float p0 = 0, p1 = 0;  // op parameters (epsilon, clip bounds, quantize range)
  Rounding rounding = Rounding::kNone;
};

// A chain of elementwise steps evaluated in one pass over the output (shape `shape`); leaves are
// strided inputs already broadcast to `shape`. The last step is the result. Executing a one-step
// group per op gives bit-identical results to executing a fused group.
struct EwGroup {
  std::vector<int64_t> shape;
  std::vector<EwStep> steps;
};
// Scratch needed by RunEwGroup, in floats.
int64_t EwScratchFloats(const EwGroup& group, int num_leaves);
void RunEwGroup(const EwGroup& group, const std::vector<Strided>& leaves, float* out,
                float* scratch);
// Evaluates parts of a group: output elements [begin, end) in row-major order, written to
// out[0, end - begin). Values are the ones RunEwGroup computes. Holds references to its arguments.
// Run is const and may be called concurrently on disjoint ranges with separate scratch.
struct RowLoop;
class EwRangeRunner {
 public:
  EwRangeRunner(const EwGroup& group, const std::vector<Strided>& leaves);
  ~EwRangeRunner();
  int64_t ScratchFloats() const;  // per concurrent Run
  void Run(int64_t begin, int64_t end, float* out, float* scratch) const;

 private:
  const EwGroup& group_;
  const std::vector<Strided>& leaves_;
  std::unique_ptr<RowLoop> loop_;
};
// exp of n floats (dst may equal src), vectorised, without libm: within 2 ulp of the exact value
// for normal results (tested), +0 below about -103.97, +inf above 88.72, NaN for NaN; the same
// bits from every code path on a platform (no FMA contraction). ExpScalar(x) == ExpArray of {x}.
// Used by exp, softmax and the activations built on exp (exp.cc).
void ExpArray(const float* src, float* dst, int64_t n);
float ExpScalar(float x);
// Applies `rounding` to n contiguous floats in place (RoundToHalfInPlace for kFp16).
void RoundInPlace(Rounding rounding, float* data, int64_t n);

// ---- GEMM (gemm.cc) ----------------------------------------------------------------------------
// A matrix view: element (r, c) at data[r * rs + c * cs].
struct MatRef {
  const float* data = nullptr;
  int64_t rs = 0, cs = 0;
};
struct MatOut {
  float* data = nullptr;
  int64_t rs = 0, cs = 0;
};
// True when cblas can read `m` (rows x cols) directly (one unit stride, the other >= extent).
bool GemmReadable(const MatRef& m, int64_t rows, int64_t cols);
// C (M x N) = A (M x K) * B (K x N) (+ C if accumulate). A and B must be GemmReadable, C must have
// a unit stride in one dimension. Large products are split into blocks of C run on the pool.
void Gemm(int64_t m, int64_t n, int64_t k, const MatRef& a, const MatRef& b, const MatOut& c,
          bool accumulate);
// How many blocks Gemm cuts an M x N x K product into (1 = one cblas call): at most 4, each of at
// least 2^21 multiply-adds and (but the last) 16 rows or columns. A function of the shape only
// (always 1 with Accelerate, whose own threads run its GEMMs).
int64_t GemmBlocks(int64_t m, int64_t n, int64_t k);

// Batched matmul with NumPy batch broadcasting: x [..., M, K] and y [..., K, N] (already logically
// transposed views); out is written with strides out_strides (batch dims then rows, cols; one of
// the last two must be 1). `scratch` holds MatmulScratchFloats floats: room for the operands
// cblas cannot read in place, per ParallelFor part.
struct MatmulArgs {
  Strided x, y;
  std::vector<int64_t> out_shape, out_strides;
};
int64_t MatmulScratchFloats(const MatmulArgs& args);
// `rounding` is applied to each batch's output block right after its GEMM (same values as a
// RoundInPlace pass afterwards, but on cache-resident data).
void Matmul(const MatmulArgs& args, float* out, float* scratch,
            Rounding rounding = Rounding::kNone);

struct ConvParams {
  int64_t groups = 1;
  int64_t stride[2] = {1, 1};
  int64_t dilation[2] = {1, 1};
  int64_t pad[4] = {0, 0, 0, 0};  // top, bottom, left, right
};
// x [N, C, H, W], weight [OC, C/groups, KH, KW] contiguous, bias [OC] or null; out [N, OC, OH, OW].
int64_t ConvScratchFloats(const Strided& x, const std::vector<int64_t>& wshape,
                          const std::vector<int64_t>& out_shape, const ConvParams& p);
void Conv2d(const Strided& x, const float* weight, const std::vector<int64_t>& wshape,
            const float* bias, const ConvParams& p, const std::vector<int64_t>& out_shape,
            float* out, float* scratch);

// ---- reductions and normalisation (reduce.cc) --------------------------------------------------
enum class ReduceKind : uint8_t { kSum, kMean, kMax };
// x contiguous with shape; reduces `axes` (sorted, unique, non-negative); out contiguous with the
// kept dims. `scratch` holds x's element count.
void Reduce(ReduceKind kind, const float* x, const std::vector<int64_t>& shape,
            const std::vector<int>& axes, float* out, float* scratch);
// Softmax over `axis` of contiguous x (numerically stable: subtract max), then `rounding` of out
// (fused into the pass; same values as RoundToHalfInPlace afterwards).
void Softmax(const float* x, const std::vector<int64_t>& shape, int axis, float* out,
             Rounding rounding = Rounding::kNone);
// Softmax over the last axis (length row_len) of the values `input` computes (a fused elementwise
// chain, never materialised), then `rounding`; the same values as RunEwGroup then Softmax.
// `scratch` holds 2 * input.ScratchFloats() floats.
void SoftmaxOfGroup(const EwRangeRunner& input, int64_t rows, int64_t row_len, float* out,
                    float* scratch, Rounding rounding);
// Reduction over the last axis (length row_len) of the values `input` computes, never
// materialised: out[r] for r < rows, with Reduce's arithmetic. `scratch` holds
// ReduceOfGroupScratchFloats(group, num_leaves, row_len) floats.
int64_t ReduceOfGroupScratchFloats(const EwGroup& group, int num_leaves, int64_t row_len);
void ReduceOfGroup(ReduceKind kind, const EwRangeRunner& input, int64_t rows, int64_t row_len,
                   float* out, float* scratch);
// Layer norm over trailing dims [first_axis, rank): gamma/beta (may be null) have those dims.
void LayerNorm(const float* x, const std::vector<int64_t>& shape, int first_axis,
               const float* gamma, const float* beta, float epsilon, float* out);

// ---- attention (attention.cc) ------------------------------------------------------------------
// q [B..., L, E], k [B..., S, E], v [B..., S, Ev] contiguous with equal batch dims; mask null or
// Strided broadcast to [B..., L, S] (bool masks already converted to 0 / -inf). out [B..., L, Ev].
int64_t AttentionScratchFloats(int64_t l, int64_t s);
void Attention(const float* q, const float* k, const float* v, const Strided* mask, int64_t batch,
               int64_t l, int64_t s, int64_t e, int64_t ev, float* out, float* scratch);

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_KERNELS_KERNELS_H_
