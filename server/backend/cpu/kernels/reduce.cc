// Reductions, softmax and layer norm over contiguous inputs; fp32 accumulation.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "server/backend/cpu/kernels/kernels.h"

namespace anerd::backend::cpu {
namespace {

// Splits `shape` around dims [a0, a1) into outer * mid * inner.
void Split3(const std::vector<int64_t>& shape, int a0, int a1, int64_t* outer, int64_t* mid,
            int64_t* inner) {
  *outer = *mid = *inner = 1;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    (i < a0 ? *outer : i < a1 ? *mid : *inner) *= shape[i];
  }
}

// Reduces the middle dim of (outer, mid, inner) contiguous x into (outer, inner).
void ReduceMid(ReduceKind kind, const float* x, int64_t outer, int64_t mid, int64_t inner,
               float* out) {
  for (int64_t o = 0; o < outer; ++o) {
    float* dst = out + o * inner;
    const float* src = x + o * mid * inner;
    if (kind == ReduceKind::kMax) {
      std::fill(dst, dst + inner, -std::numeric_limits<float>::infinity());
      for (int64_t m = 0; m < mid; ++m) {
        for (int64_t i = 0; i < inner; ++i) dst[i] = std::max(dst[i], src[m * inner + i]);
      }
    } else {
      std::fill(dst, dst + inner, 0.0f);
      for (int64_t m = 0; m < mid; ++m) {
        for (int64_t i = 0; i < inner; ++i) dst[i] += src[m * inner + i];
      }
    }
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

void Softmax(const float* x, const std::vector<int64_t>& shape, int axis, float* out) {
  int64_t outer, mid, inner;
  Split3(shape, axis, axis + 1, &outer, &mid, &inner);
  std::vector<float> mx(inner), sum(inner);
  for (int64_t o = 0; o < outer; ++o) {
    const float* src = x + o * mid * inner;
    float* dst = out + o * mid * inner;
    std::fill(mx.begin(), mx.end(), -std::numeric_limits<float>::infinity());
    for (int64_t m = 0; m < mid; ++m) {
      for (int64_t i = 0; i < inner; ++i) mx[i] = std::max(mx[i], src[m * inner + i]);
    }
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (int64_t m = 0; m < mid; ++m) {
      for (int64_t i = 0; i < inner; ++i) {
        const float e = std::exp(src[m * inner + i] - mx[i]);
        dst[m * inner + i] = e;
        sum[i] += e;
      }
    }
    for (int64_t i = 0; i < inner; ++i) sum[i] = 1.0f / sum[i];
    for (int64_t m = 0; m < mid; ++m) {
      for (int64_t i = 0; i < inner; ++i) dst[m * inner + i] *= sum[i];
    }
  }
}

void LayerNorm(const float* x, const std::vector<int64_t>& shape, int first_axis,
               const float* gamma, const float* beta, float epsilon, float* out) {
  int64_t outer, n, inner;
  Split3(shape, first_axis, static_cast<int>(shape.size()), &outer, &n, &inner);
  for (int64_t o = 0; o < outer; ++o) {
    const float* src = x + o * n;
    float* dst = out + o * n;
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
}

}  // namespace anerd::backend::cpu
