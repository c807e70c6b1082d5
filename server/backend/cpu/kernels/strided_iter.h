// Row iteration over several strided operands sharing one shape: dims are coalesced where every
// operand allows it, then `fn(offsets, inner, inner_strides)` is called once per row of the
// innermost coalesced dim. Internal to the CPU kernels.
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

  // fn(const int64_t* offsets) per row.
  template <typename Fn>
  void ForEachRow(Fn&& fn) const {
    const int outer = static_cast<int>(shape.size()) - 1;
    const size_t k = strides.size();
    std::vector<int64_t> idx(outer, 0), off(k, 0);
    while (true) {
      fn(off.data());
      int d = outer - 1;
      for (; d >= 0; --d) {
        for (size_t o = 0; o < k; ++o) off[o] += strides[o][d];
        if (++idx[d] < shape[d]) break;
        for (size_t o = 0; o < k; ++o) off[o] -= strides[o][d] * shape[d];
        idx[d] = 0;
      }
      if (d < 0) return;
    }
  }
};

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_KERNELS_STRIDED_ITER_H_
