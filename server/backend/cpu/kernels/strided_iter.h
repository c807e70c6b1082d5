// Row iteration over several strided operands sharing one shape: dims are coalesced where every
// operand allows it, then `fn(offsets)` is called once per row of the innermost coalesced dim
// (all rows, or a range of them so that callers can split the rows between threads). Internal to
// the CPU kernels.
#ifndef ANERD_SERVER_BACKEND_CPU_KERNELS_STRIDED_ITER_H_
#define ANERD_SERVER_BACKEND_CPU_KERNELS_STRIDED_ITER_H_

#include <cstdint>
#include <vector>

namespace anerd::backend::cpu {

struct RowLoop {
  std::vector<int64_t> shape;                 // coalesced, outer dims; last = inner
  std::vector<std::vector<int64_t>> strides;  // per operand, coalesced

  RowLoop(const std::vector<int64_t>& shape, const std::vector<std::vector<int64_t>>& strides) {
    const size_t k = strides.size();
    this->strides.resize(k);
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      bool merge = !this->shape.empty();
      for (size_t o = 0; merge && o < k; ++o) {
        merge = this->strides[o].back() == strides[o][d] * shape[d];
      }
      if (merge) {
        this->shape.back() *= shape[d];
        for (size_t o = 0; o < k; ++o) this->strides[o].back() = strides[o][d];
      } else {
        this->shape.push_back(shape[d]);
        for (size_t o = 0; o < k; ++o) this->strides[o].push_back(strides[o][d]);
      }
    }
    if (this->shape.empty()) {
      this->shape.push_back(1);
      for (size_t o = 0; o < k; ++o) this->strides[o].push_back(1);
    }
  }

  int64_t inner() const { return shape.back(); }
  int64_t inner_stride(size_t o) const { return strides[o].back(); }

  // Number of rows (product of the outer dims).
  int64_t num_rows() const {
    int64_t n = 1;
    for (size_t d = 0; d + 1 < shape.size(); ++d) n *= shape[d];
    return n;
  }

  // fn(const int64_t* offsets) per row.
  template <typename Fn>
  void ForEachRow(Fn&& fn) const {
    ForRows(0, num_rows(), fn);
  }

  // fn(const int64_t* offsets) for rows [begin, end) in row-major order.
  template <typename Fn>
  void ForRows(int64_t begin, int64_t end, Fn&& fn) const {
    const int outer = static_cast<int>(shape.size()) - 1;
    const size_t k = strides.size();
    std::vector<int64_t> idx(outer, 0), off(k, 0);
    int64_t rem = begin;
    for (int d = outer - 1; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
      for (size_t o = 0; o < k; ++o) off[o] += idx[d] * strides[o][d];
    }
    for (int64_t row = begin; row < end; ++row) {
      fn(off.data());
      for (int d = outer - 1; d >= 0; --d) {
        for (size_t o = 0; o < k; ++o) off[o] += strides[o][d];
        if (++idx[d] < shape[d]) break;
        for (size_t o = 0; o < k; ++o) off[o] -= strides[o][d] * shape[d];
        idx[d] = 0;
      }
    }
  }
};

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_KERNELS_STRIDED_ITER_H_
