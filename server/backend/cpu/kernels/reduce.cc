// Reductions, softmax and layer norm over contiguous inputs; fp32 accumulation. Independent rows
// are split across two threads (parallel.h); per element the arithmetic never depends on the split.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/fp16.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"

namespace anerd::backend::cpu {
namespace {

// Rows of a fused chain evaluated per batch before they are reduced (about 16 KB: in L1).
int64_t RowsPerBatch(int64_t row_len) {
  return std::max<int64_t>(1, 4096 / std::max<int64_t>(row_len, 1));
}

// Rows of `row_floats` each per ParallelFor part (at least 1).
int64_t PartRows(int64_t row_floats) {
  return std::max<int64_t>(1, kParallelMinElements / std::max<int64_t>(row_floats, 1));
}

// Splits `shape` around dims [a0, a1) into outer * mid * inner.
void Split3(const std::vector<int64_t>& shape, int a0, int a1, int64_t* outer, int64_t* mid,
            int64_t* inner) {
  *outer = *mid = *inner = 1;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    (i < a0 ? *outer : i < a1 ? *mid : *inner) *= shape[i];
  }
}

// Reduces the middle dim of (outer, mid, inner) contiguous x into (outer, inner), outer rows
// [o0, o1). Per output element the accumulation order is always m = 0, 1, ...
void ReduceMidRows(ReduceKind kind, const float* x, int64_t o0, int64_t o1, int64_t mid,
                   int64_t inner, float* out) {
  const bool max = kind == ReduceKind::kMax;
  const float init = max ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (int64_t o = o0; o < o1; ++o) {
    float* dst = out + o * inner;
    const float* src = x + o * mid * inner;
    if (inner == 1) {  // one contiguous row: a scalar accumulator
      float acc = init;
      for (int64_t m = 0; m < mid; ++m) acc = max ? std::max(acc, src[m]) : acc + src[m];
      *dst = acc;
      continue;
    }
    std::fill(dst, dst + inner, init);
    for (int64_t m = 0; m < mid; ++m) {
      const float* row = src + m * inner;
      if (max) {
        for (int64_t i = 0; i < inner; ++i) dst[i] = std::max(dst[i], row[i]);
      } else {
        for (int64_t i = 0; i < inner; ++i) dst[i] += row[i];
      }
    }
  }
}

void ReduceMid(ReduceKind kind, const float* x, int64_t outer, int64_t mid, int64_t inner,
               float* out) {
  ParallelFor(outer, PartRows(mid * inner), [&](int, int64_t o0, int64_t o1) {
    ReduceMidRows(kind, x, o0, o1, mid, inner, out);
  });
}

// Max of n floats, ignoring NaNs (as a sequential std::max from -inf does). Eight independent
// lanes, so it vectorises; only the sign of a zero maximum can differ from the sequential loop,
// and x - (+0) and x - (-0) give the same exp.
float RowMax(const float* src, int64_t n) {
  constexpr int kLanes = 8;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lane[j] = lane[j] < src[i + j] ? src[i + j] : lane[j];
  }
  float mx = -std::numeric_limits<float>::infinity();
  for (; i < n; ++i) mx = std::max(mx, src[i]);
  for (int j = 0; j < kLanes; ++j) mx = std::max(mx, lane[j]);
  return mx;
}

// Sum of n floats in a fixed order that vectorises: eight interleaved lanes (lane j adds the
// elements i = j mod 8 in order), the lanes added in order, then the tail.
float RowSum(const float* src, int64_t n) {
  constexpr int kLanes = 8;
  float lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lane[j] += src[i + j];
  }
  float sum = 0.0f;
  for (int j = 0; j < kLanes; ++j) sum += lane[j];
  for (; i < n; ++i) sum += src[i];
  return sum;
}

// Softmax of one contiguous row (dst may equal src): every pass vectorises, exp included
// (ExpArray; entries that underflow come out as +0 and add nothing to the sum).
void SoftmaxRow(const float* src, int64_t n, float* dst, Rounding rounding) {
  const float mx = RowMax(src, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i] - mx;
  ExpArray(dst, dst, n);
  const float inv = 1.0f / RowSum(dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] *= inv;
  if (rounding == Rounding::kFp16) RoundToHalfInPlace(dst, n);
}

// Softmax over the middle dim of one (mid, inner) block, inner > 1; mx and sum hold inner floats.
void SoftmaxBlock(const float* src, int64_t mid, int64_t inner, float* dst, float* mx, float* sum) {
  std::fill(mx, mx + inner, -std::numeric_limits<float>::infinity());
  for (int64_t m = 0; m < mid; ++m) {
    for (int64_t i = 0; i < inner; ++i) mx[i] = std::max(mx[i], src[m * inner + i]);
  }
  std::fill(sum, sum + inner, 0.0f);
  for (int64_t m = 0; m < mid; ++m) {
    float* row = dst + m * inner;
    for (int64_t i = 0; i < inner; ++i) row[i] = src[m * inner + i] - mx[i];
    ExpArray(row, row, inner);
    for (int64_t i = 0; i < inner; ++i) sum[i] += row[i];
  }
  for (int64_t i = 0; i < inner; ++i) sum[i] = 1.0f / sum[i];
  for (int64_t m = 0; m < mid; ++m) {
    for (int64_t i = 0; i < inner; ++i) dst[m * inner + i] *= sum[i];
  }
}

void LayerNormRow(const float* src, int64_t n, const float* gamma, const float* beta, float epsilon,
                  float* dst) {
  float mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += src[i];
  mean /= static_cast<float>(n);
  float var = 0;
  for (int64_t i = 0; i < n; ++i) var += (src[i] - mean) * (src[i] - mean);
  var /= static_cast<float>(n);
  const float r = 1.0f / std::sqrt(var + epsilon);
  for (int64_t i = 0; i < n; ++i) {
    float y = (src[i] - mean) * r;
    if (gamma != nullptr) y *= gamma[i];
    if (beta != nullptr) y += beta[i];
    dst[i] = y;
  }
}

}  // namespace

void Reduce(ReduceKind kind, const float* x, const std::vector<int64_t>& shape,
            const std::vector<int>& axes, float* out, float* scratch) {
  // Reduce runs of adjacent axes one run at a time, innermost first, ping-ponging through scratch.
  std::vector<int64_t> cur = shape;
  const float* src = x;
  int64_t count = 1;
  for (int a : axes) count *= shape[a];
  int i = static_cast<int>(axes.size()) - 1;
  std::vector<float> tmp;
  while (i >= 0) {
    int lo = i;
    while (lo > 0 && axes[lo - 1] == axes[lo] - 1) --lo;
    int64_t outer, mid, inner;
    Split3(cur, axes[lo], axes[i] + 1, &outer, &mid, &inner);
    const bool last = lo == 0;
    float* dst = last ? out : (src == scratch ? nullptr : scratch);
    if (dst == nullptr) {  // src is scratch: reduce into a temporary, then copy back
      tmp.assign(outer * inner, 0.0f);
      dst = tmp.data();
    }
    ReduceMid(kind == ReduceKind::kMax ? kind : ReduceKind::kSum, src, outer, mid, inner, dst);
    if (!last && dst == tmp.data()) {
      std::memcpy(scratch, tmp.data(), tmp.size() * sizeof(float));
      dst = scratch;
    }
    for (int a = lo; a <= i; ++a) cur[axes[a]] = 1;
    src = dst;
    i = lo - 1;
  }
  if (kind == ReduceKind::kMean) {
    int64_t n = 1;
    for (int64_t d : cur) n *= d;
    const float inv = 1.0f / static_cast<float>(count);
    for (int64_t j = 0; j < n; ++j) out[j] *= inv;
  }
}

void Softmax(const float* x, const std::vector<int64_t>& shape, int axis, float* out,
             Rounding rounding) {
  int64_t outer, mid, inner;
  Split3(shape, axis, axis + 1, &outer, &mid, &inner);
  ParallelFor(outer, PartRows(mid * inner), [&](int, int64_t o0, int64_t o1) {
    std::vector<float> mx(inner), sum(inner);
    for (int64_t o = o0; o < o1; ++o) {
      const float* src = x + o * mid * inner;
      float* dst = out + o * mid * inner;
      if (inner == 1) {
        SoftmaxRow(src, mid, dst, rounding);
        continue;
      }
      SoftmaxBlock(src, mid, inner, dst, mx.data(), sum.data());
      if (rounding == Rounding::kFp16) RoundToHalfInPlace(dst, mid * inner);
    }
  });
}

void SoftmaxOfGroup(const EwRangeRunner& input, int64_t rows, int64_t row_len, float* out,
                    float* scratch, Rounding rounding) {
  const int64_t part_scratch = input.ScratchFloats();
  const int64_t batch = RowsPerBatch(row_len);
  ParallelFor(rows, PartRows(row_len), [&](int part, int64_t r0, int64_t r1) {
    for (int64_t b = r0; b < r1; b += batch) {
      const int64_t b1 = std::min(r1, b + batch);
      input.Run(b * row_len, b1 * row_len, out + b * row_len, scratch + part * part_scratch);
      for (int64_t r = b; r < b1; ++r) {
        SoftmaxRow(out + r * row_len, row_len, out + r * row_len, rounding);
      }
    }
  });
}

int64_t ReduceOfGroupScratchFloats(const EwGroup& group, int num_leaves, int64_t row_len) {
  return EwScratchFloats(group, num_leaves) + 2 * RowsPerBatch(row_len) * row_len;
}

void ReduceOfGroup(ReduceKind kind, const EwRangeRunner& input, int64_t rows, int64_t row_len,
                   float* out, float* scratch) {
  const int64_t batch = RowsPerBatch(row_len);
  const int64_t part_scratch = input.ScratchFloats() + batch * row_len;
  const ReduceKind acc = kind == ReduceKind::kMax ? kind : ReduceKind::kSum;
  const float inv = 1.0f / static_cast<float>(row_len);  // as Reduce: count of reduced elements
  ParallelFor(rows, PartRows(row_len), [&](int part, int64_t r0, int64_t r1) {
    float* vals = scratch + part * part_scratch;
    for (int64_t b = r0; b < r1; b += batch) {
      const int64_t b1 = std::min(r1, b + batch);
      input.Run(b * row_len, b1 * row_len, vals, vals + batch * row_len);
      ReduceMidRows(acc, vals, 0, b1 - b, row_len, 1, out + b);
    }
    if (kind != ReduceKind::kMean) return;
    for (int64_t r = r0; r < r1; ++r) out[r] *= inv;
  });
}

void LayerNorm(const float* x, const std::vector<int64_t>& shape, int first_axis,
               const float* gamma, const float* beta, float epsilon, float* out) {
  int64_t outer, n, inner;
  Split3(shape, first_axis, static_cast<int>(shape.size()), &outer, &n, &inner);
  ParallelFor(outer, PartRows(n), [&](int, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) LayerNormRow(x + o * n, n, gamma, beta, epsilon, out + o * n);
  });
}

}  // namespace anerd::backend::cpu
