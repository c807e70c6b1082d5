// Data movement: strided copies (rows split between two threads, parallel.h), concat placement,
// gather.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/cpu/kernels/strided_iter.h"
#include "server/backend/cpu/view.h"

namespace anerd::backend::cpu {

int64_t Strided::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void CopyToStrided(const Strided& src, float* dst, const std::vector<int64_t>& dst_strides) {
  RowLoop loop(src.shape, {src.strides, dst_strides});
  const int64_t n = loop.inner();
  const int64_t ss = loop.inner_stride(0), ds = loop.inner_stride(1);
  if (loop.num_rows() == 1) {  // one long row: split it
    ParallelFor(n, kParallelMinElements, [&](int, int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) dst[i * ds] = src.data[i * ss];
    });
    return;
  }
  const int64_t min_rows = std::max<int64_t>(1, kParallelMinElements / std::max<int64_t>(n, 1));
  ParallelFor(loop.num_rows(), min_rows, [&](int, int64_t r0, int64_t r1) {
    loop.ForRows(r0, r1, [&](const int64_t* off) {
      const float* s = src.data + off[0];
      float* d = dst + off[1];
      if (ss == 1 && ds == 1) {
        std::memcpy(d, s, n * sizeof(float));
      } else {
        for (int64_t i = 0; i < n; ++i) d[i * ds] = s[i * ss];
      }
    });
  });
}

void CopyStrided(const Strided& src, float* dst) {
  CopyToStrided(src, dst, RowMajorStrides(src.shape));
}

void CopyIntoAxis(const Strided& src, float* dst, const std::vector<int64_t>& dst_shape, int axis,
                  int64_t axis_offset) {
  const std::vector<int64_t> strides = RowMajorStrides(dst_shape);
  CopyToStrided(src, dst + axis_offset * strides[axis], strides);
}

absl::Status Gather(const Strided& x, const Strided& indices, int axis, float* out) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= x.shape[i];
  for (size_t i = axis + 1; i < x.shape.size(); ++i) inner *= x.shape[i];
  const int64_t dim = x.shape[axis];
  std::vector<float> idx(indices.NumElements());
  CopyStrided(indices, idx.data());
  std::vector<int64_t> xs_outer(x.shape.begin(), x.shape.begin() + axis);
  // Index x through its own strides: element (o, j, i) with o split over outer dims.
  std::vector<int64_t> inner_shape(x.shape.begin() + axis + 1, x.shape.end());
  std::vector<int64_t> inner_strides(x.strides.begin() + axis + 1, x.strides.end());
  const std::vector<int64_t> outer_strides(x.strides.begin(), x.strides.begin() + axis);
  float* o = out;
  for (int64_t oi = 0; oi < outer; ++oi) {
    int64_t base = 0, rem = oi;
    for (int d = axis - 1; d >= 0; --d) {
      base += (rem % x.shape[d]) * outer_strides[d];
      rem /= x.shape[d];
    }
    for (float fj : idx) {
      int64_t j = static_cast<int64_t>(fj);
      if (j < 0) j += dim;
      if (j < 0 || j >= dim) {
        return absl::InvalidArgumentError(absl::StrCat("gather index ", static_cast<int64_t>(fj),
                                                       " out of range [", -dim, ", ", dim, ")"));
      }
      Strided row{x.data + base + j * x.strides[axis], inner_shape, inner_strides};
      CopyStrided(row, o);
      o += inner;
    }
  }
  return absl::OkStatus();
}

}  // namespace anerd::backend::cpu
