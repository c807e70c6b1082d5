// Elementwise groups: one pass over the output, block by block (blocks split between two threads,
// parallel.h); each step of a fused chain runs over a block held in cache. Per element the
// arithmetic is the same whether or not steps are fused, which keeps planned and reference
// execution bit-identical.
#include <algorithm>
#include <cmath>

#include "common/fp16.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/cpu/kernels/strided_iter.h"
#include "server/backend/cpu/view.h"

namespace anerd::backend::cpu {
namespace {

constexpr int64_t kBlock = 1024;

// r[i] = f(a[i], exp(scale * a[i])) in chunks, exp vectorised (ExpArray); r may alias a.
template <typename F>
void WithExp(const float* a, float* r, int64_t n, float scale, F f) {
  constexpr int64_t kChunk = 256;
  float e[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = std::min(kChunk, n - i0);
    for (int64_t i = 0; i < m; ++i) e[i] = scale * a[i0 + i];
    ExpArray(e, e, m);
    for (int64_t i = 0; i < m; ++i) r[i0 + i] = f(a[i0 + i], e[i]);
  }
}

void Unary(EwOp op, const float* a, float* r, int64_t n, float p0, float p1) {
  switch (op) {
    case EwOp::kSqrt:
      for (int64_t i = 0; i < n; ++i) r[i] = std::sqrt(a[i]);
      return;
    case EwOp::kRsqrt:
      for (int64_t i = 0; i < n; ++i) r[i] = 1.0f / std::sqrt(a[i] + p0);
      return;
    case EwOp::kExp:
      ExpArray(a, r, n);
      return;
    case EwOp::kLog:
      for (int64_t i = 0; i < n; ++i) r[i] = std::log(a[i] + p0);
      return;
    case EwOp::kTanh:
      for (int64_t i = 0; i < n; ++i) r[i] = std::tanh(a[i]);
      return;
    case EwOp::kSigmoid:
      WithExp(a, r, n, -1.0f, [](float, float e) { return 1.0f / (1.0f + e); });
      return;
    case EwOp::kRelu:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] > 0.0f ? a[i] : 0.0f;
      return;
    case EwOp::kSilu:
      WithExp(a, r, n, -1.0f, [](float x, float e) { return x / (1.0f + e); });
      return;
    case EwOp::kGeluExact:
      for (int64_t i = 0; i < n; ++i) r[i] = 0.5f * a[i] * (1.0f + std::erf(a[i] * 0.70710678f));
      return;
    case EwOp::kGeluTanh:
      for (int64_t i = 0; i < n; ++i) {
        const float x = a[i];
        r[i] = 0.5f * x * (1.0f + std::tanh(0.79788456f * (x + 0.044715f * x * x * x)));
      }
      return;
    case EwOp::kGeluSigmoid:
      WithExp(a, r, n, -1.702f, [](float x, float e) { return x / (1.0f + e); });
      return;
    case EwOp::kClip:
      for (int64_t i = 0; i < n; ++i) r[i] = std::min(std::max(a[i], p0), p1);
      return;
    case EwOp::kCastToInt:
      for (int64_t i = 0; i < n; ++i) r[i] = std::trunc(a[i]);
      return;
    case EwOp::kCastToBool:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] != 0.0f ? 1.0f : 0.0f;
      return;
    default:
      std::copy(a, a + n, r);
      return;
  }
}

void Binary(EwOp op, const float* a, const float* b, float* r, int64_t n) {
  switch (op) {
    case EwOp::kAdd:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] + b[i];
      return;
    case EwOp::kSub:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] - b[i];
      return;
    case EwOp::kMul:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] * b[i];
      return;
    case EwOp::kDiv:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] / b[i];
      return;
    case EwOp::kMax:
      for (int64_t i = 0; i < n; ++i) r[i] = std::max(a[i], b[i]);
      return;
    case EwOp::kMin:
      for (int64_t i = 0; i < n; ++i) r[i] = std::min(a[i], b[i]);
      return;
    case EwOp::kPow:
      for (int64_t i = 0; i < n; ++i) r[i] = std::pow(a[i], b[i]);
      return;
    default:
      return;
  }
}

void Ternary(const EwStep& s, const float* a, const float* b, const float* c, float* r, int64_t n) {
  switch (s.op) {
    case EwOp::kSelect:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] != 0.0f ? b[i] : c[i];
      return;
    case EwOp::kQuantize:
      for (int64_t i = 0; i < n; ++i) {
        const float q = std::nearbyint(a[i] / b[i]) + c[i];
        r[i] = std::min(std::max(q, s.p0), s.p1);
      }
      return;
    case EwOp::kDequantize:
      for (int64_t i = 0; i < n; ++i) r[i] = (a[i] - c[i]) * b[i];
      return;
    default:
      return;
  }
}

int Arity(EwOp op) {
  if (op >= EwOp::kSelect) return 3;
  if (op >= EwOp::kAdd) return 2;
  return 1;
}

void RunStep(const EwStep& s, const float* const* in, float* r, int64_t n) {
  switch (Arity(s.op)) {
    case 1:
      Unary(s.op, in[0], r, n, s.p0, s.p1);
      break;
    case 2:
      Binary(s.op, in[0], in[1], r, n);
      break;
    default:
      Ternary(s, in[0], in[1], in[2], r, n);
      break;
  }
  if (s.rounding == Rounding::kFp16) RoundToHalfInPlace(r, n);
}

int64_t PartScratch(const EwGroup& group, int num_leaves) {
  return kBlock * (num_leaves + static_cast<int64_t>(group.steps.size()));
}

// One thread's state for RunBlock: its scratch (PartScratch floats) and operand pointers.
struct BlockState {
  float* scratch;
  std::vector<const float*> leaf_ptr;
  std::vector<float*> step_out;
};

// Runs every step of `group` over the n <= kBlock elements at `start` of the row whose operand
// offsets are `off`; the last step writes dst[0, n).
void RunBlock(const EwGroup& group, const std::vector<Strided>& leaves, const RowLoop& loop,
              const int64_t* off, int64_t start, int64_t n, float* dst, BlockState* st) {
  const size_t nl = leaves.size(), ns = group.steps.size();
  float* const scratch = st->scratch;
  std::vector<const float*>& leaf_ptr = st->leaf_ptr;
  std::vector<float*>& step_out = st->step_out;
  for (size_t l = 0; l < nl; ++l) {
    const int64_t stride = loop.inner_stride(l + 1);
    const float* src = leaves[l].data + off[l + 1] + start * stride;
    float* buf = scratch + l * kBlock;
    if (stride == 1) {
      leaf_ptr[l] = src;
    } else if (stride == 0) {
      std::fill(buf, buf + n, *src);
      leaf_ptr[l] = buf;
    } else {
      for (int64_t i = 0; i < n; ++i) buf[i] = src[i * stride];
      leaf_ptr[l] = buf;
    }
  }
  for (size_t k = 0; k < ns; ++k) {
    const EwStep& s = group.steps[k];
    const float* in[3];
    for (int j = 0; j < 3; ++j) {
      const int o = s.operands[j];
      in[j] = o >= 0 ? leaf_ptr[o] : step_out[-o - 1];
    }
    step_out[k] = k + 1 == ns ? dst : scratch + (nl + k) * kBlock;
    RunStep(s, in, step_out[k], n);
  }
}

}  // namespace

int64_t EwScratchFloats(const EwGroup& group, int num_leaves) {
  return 2 * PartScratch(group, num_leaves);  // one region per ParallelFor part
}

void RunEwGroup(const EwGroup& group, const std::vector<Strided>& leaves, float* out,
                float* scratch) {
  std::vector<std::vector<int64_t>> strides;
  strides.push_back(RowMajorStrides(group.shape));
  for (const Strided& l : leaves) strides.push_back(l.strides);
  const RowLoop loop(group.shape, strides);
  const int64_t blocks = (loop.inner() + kBlock - 1) / kBlock;  // per row
  const int64_t part_scratch = PartScratch(group, static_cast<int>(leaves.size()));
  // Work units are (row, block) pairs in row-major order; each part takes a contiguous run.
  const int64_t unit = std::max<int64_t>(1, std::min(kBlock, loop.inner()));  // floats per unit
  ParallelFor(
      loop.num_rows() * blocks, kParallelMinElements / unit, [&](int part, int64_t u0, int64_t u1) {
        BlockState st{scratch + part * part_scratch, std::vector<const float*>(leaves.size()),
                      std::vector<float*>(group.steps.size())};
        const int64_t r0 = u0 / blocks, r1 = (u1 + blocks - 1) / blocks;
        int64_t row = r0;
        loop.ForRows(r0, r1, [&](const int64_t* off) {
          const int64_t b0 = row == r0 ? u0 % blocks : 0;
          const int64_t b1 = row == r1 - 1 ? u1 - row * blocks : blocks;
          for (int64_t b = b0; b < b1; ++b) {
            RunBlock(group, leaves, loop, off, b * kBlock,
                     std::min(kBlock, loop.inner() - b * kBlock), out + off[0] + b * kBlock, &st);
          }
          ++row;
        });
      });
}

void RoundInPlace(Rounding rounding, float* data, int64_t n) {
  if (rounding != Rounding::kFp16) return;
  ParallelFor(n, kParallelMinElements,
              [&](int, int64_t i0, int64_t i1) { RoundToHalfInPlace(data + i0, i1 - i0); });
}

EwRangeRunner::EwRangeRunner(const EwGroup& group, const std::vector<Strided>& leaves)
    : group_(group), leaves_(leaves) {
  std::vector<std::vector<int64_t>> strides;
  strides.push_back(RowMajorStrides(group.shape));
  for (const Strided& l : leaves) strides.push_back(l.strides);
  loop_ = std::make_unique<RowLoop>(group.shape, strides);
}

EwRangeRunner::~EwRangeRunner() = default;

int64_t EwRangeRunner::ScratchFloats() const {
  return PartScratch(group_, static_cast<int>(leaves_.size()));
}

void EwRangeRunner::Run(int64_t begin, int64_t end, float* out, float* scratch) const {
  const int64_t inner = loop_->inner();
  if (begin >= end || inner == 0) return;
  BlockState st{scratch, std::vector<const float*>(leaves_.size()),
                std::vector<float*>(group_.steps.size())};
  const int64_t r0 = begin / inner, r1 = (end - 1) / inner + 1;
  int64_t row = r0;
  loop_->ForRows(r0, r1, [&](const int64_t* off) {
    const int64_t lo = std::max(begin - row * inner, int64_t{0});
    const int64_t hi = std::min(end - row * inner, inner);
    for (int64_t start = lo; start < hi; start += kBlock) {
      RunBlock(group_, leaves_, *loop_, off, start, std::min(kBlock, hi - start),
               out + (row * inner + start - begin), &st);
    }
    ++row;
  });
}

}  // namespace anerd::backend::cpu
