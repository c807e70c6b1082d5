#include "server/backend/cpu/view.h"

namespace anerd::backend::cpu {

int64_t View::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool View::IsContiguous() const {
  int64_t expect = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (shape[i] == 1) continue;
    if (strides[i] != expect) return false;
    expect *= shape[i];
  }
  return true;
}

std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

View ContiguousView(int buf, std::vector<int64_t> shape) {
  View v;
  v.buf = buf;
  v.strides = RowMajorStrides(shape);
  v.shape = std::move(shape);
  return v;
}

std::optional<View> ReshapeView(const View& v, const std::vector<int64_t>& shape) {
  // Drop size-1 dims of the source; then match groups of source dims (each group contiguous in
  // memory) with groups of target dims of equal element count.
  std::vector<int64_t> sd, ss;
  for (int i = 0; i < v.rank(); ++i) {
    if (v.shape[i] != 1) {
      sd.push_back(v.shape[i]);
      ss.push_back(v.strides[i]);
    }
  }
  View out;
  out.buf = v.buf;
  out.offset = v.offset;
  out.shape = shape;
  out.strides.assign(shape.size(), 0);
  size_t si = 0, ti = 0;
  while (ti < shape.size()) {
    if (shape[ti] == 1) {
      out.strides[ti++] = 0;
      continue;
    }
    if (si >= sd.size()) return std::nullopt;
    // Grow a source group and a target group until their products match.
    size_t s_end = si + 1, t_end = ti + 1;
    int64_t sp = sd[si], tp = shape[ti];
    while (sp != tp) {
      if (sp < tp) {
        if (s_end >= sd.size()) return std::nullopt;
        if (ss[s_end - 1] != ss[s_end] * sd[s_end]) return std::nullopt;  // not mergeable
        sp *= sd[s_end++];
      } else {
        if (t_end >= shape.size()) return std::nullopt;
        tp *= shape[t_end++];
      }
    }
    // Source dims si..s_end-1 merge into one run with innermost stride ss[s_end-1].
    int64_t stride = ss[s_end - 1];
    for (size_t t = t_end; t-- > ti;) {
      out.strides[t] = stride;
      stride *= shape[t];
    }
    si = s_end;
    ti = t_end;
  }
  if (si != sd.size()) return std::nullopt;
  return out;
}

View TransposeView(const View& v, const std::vector<int64_t>& perm) {
  View out;
  out.buf = v.buf;
  out.offset = v.offset;
  for (int64_t p : perm) {
    out.shape.push_back(v.shape[p]);
    out.strides.push_back(v.strides[p]);
  }
  return out;
}

View SliceView(const View& v, const std::vector<int64_t>& begin, const std::vector<int64_t>& step,
               const std::vector<int64_t>& size, const std::vector<bool>& squeeze) {
  View out;
  out.buf = v.buf;
  out.offset = v.offset;
  for (int i = 0; i < v.rank(); ++i) {
    out.offset += begin[i] * v.strides[i];
    if (squeeze[i]) continue;
    out.shape.push_back(size[i]);
    out.strides.push_back(v.strides[i] * step[i]);
  }
  return out;
}

View BroadcastView(const View& v, const std::vector<int64_t>& shape) {
  View out;
  out.buf = v.buf;
  out.offset = v.offset;
  out.shape = shape;
  out.strides.assign(shape.size(), 0);
  const int lead = static_cast<int>(shape.size()) - v.rank();
  for (int i = 0; i < v.rank(); ++i) {
    if (v.shape[i] != 1) out.strides[lead + i] = v.strides[i];
  }
  return out;
}

}  // namespace anerd::backend::cpu
