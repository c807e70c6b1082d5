// Strided views over CPU backend buffers. A View names a buffer (an index into the compiled
// program's buffer table), an element offset and per-dimension element strides; strides may be 0
// (broadcast) or negative (reversed slices). Reshape, transpose, slice and split produce views
// instead of copies whenever the result stays expressible with strides. Pure value types.
#ifndef ANERD_SERVER_BACKEND_CPU_VIEW_H_
#define ANERD_SERVER_BACKEND_CPU_VIEW_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace anerd::backend::cpu {

struct View {
  int buf = -1;  // buffer id
  int64_t offset = 0;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;

  int rank() const { return static_cast<int>(shape.size()); }
  int64_t NumElements() const;
  // True when elements are laid out row-major without gaps (dims of size 1 ignored).
  bool IsContiguous() const;
};

std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& shape);
View ContiguousView(int buf, std::vector<int64_t> shape);
// The same elements with a new row-major shape, if expressible with strides (no copy).
std::optional<View> ReshapeView(const View& v, const std::vector<int64_t>& shape);
// out.shape[i] = v.shape[perm[i]]; perm must be a permutation.
View TransposeView(const View& v, const std::vector<int64_t>& perm);
// Elements begin[i] + k*step[i] for k < size[i]; dims listed in `squeeze` (size 1) are dropped.
View SliceView(const View& v, const std::vector<int64_t>& begin, const std::vector<int64_t>& step,
               const std::vector<int64_t>& size, const std::vector<bool>& squeeze);
// NumPy broadcast of `v` to `shape` (trailing alignment; broadcast dims get stride 0).
View BroadcastView(const View& v, const std::vector<int64_t>& shape);

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_VIEW_H_
