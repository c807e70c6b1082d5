// Typed shape functions (shape_functions.h). Semantics follow coremltools' iOS15-iOS18 op
// definitions; the messages are the verifier's.
#include "common/mil/shape_functions.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mil/op_registry.h"
#include "common/status_macros.h"

namespace anerd::mil {
namespace {

using Shape = std::vector<int64_t>;

template <typename... A>
absl::Status Err(const A&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

absl::StatusOr<int64_t> ConvOutDim(int64_t in, int64_t k, int64_t stride, int64_t dilation,
                                   const std::string& pad_type, int64_t pad_lo, int64_t pad_hi) {
  int64_t eff = dilation * (k - 1) + 1;
  if (pad_type == "same" || pad_type == "same_lower") return (in + stride - 1) / stride;
  int64_t total = in;
  if (pad_type == "custom") {
    total += pad_lo + pad_hi;
  } else if (pad_type != "valid") {
    return Err("conv: unknown pad_type \"", pad_type, "\" (want valid, same, same_lower, custom)");
  }
  if (total < eff) return Err("conv: kernel extent ", eff, " exceeds padded input ", total);
  return (total - eff) / stride + 1;
}

absl::Status CheckConvOperands(const TensorType& x, const TensorType& w, int64_t groups) {
  if (x.rank() < 3 || x.rank() > 5) return Err("conv: x must have rank 3 to 5, not ", x.rank());
  if (w.rank() != x.rank()) return Err("conv: weight rank ", w.rank(), " != x rank ", x.rank());
  ANERD_RETURN_IF_ERROR(CheckSameDType(x, w, "conv: x and weight"));
  if (groups < 1) return Err("conv: groups must be >= 1, not ", groups);
  if (w.shape[1] * groups != x.shape[1]) {
    return Err("conv: weight expects ", w.shape[1], " input channels per group x ", groups,
               " groups, but x has ", x.shape[1], " channels");
  }
  if (w.shape[0] % groups != 0) {
    return Err("conv: ", w.shape[0], " output channels are not divisible by groups ", groups);
  }
  return absl::OkStatus();
}

absl::Status CheckPositive(const Shape& v, size_t n, absl::string_view what) {
  if (v.size() != n) return Err(what, " needs ", n, " values, not ", v.size());
  for (int64_t e : v) {
    if (e < 1) return Err(what, " values must be >= 1");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSameDType(const TensorType& a, const TensorType& b, absl::string_view what) {
  if (a.dtype == b.dtype) return absl::OkStatus();
  return Err(what, " dtypes differ: ", DTypeName(a.dtype), " vs ", DTypeName(b.dtype));
}

absl::StatusOr<std::vector<int>> NormalizeAxes(const Shape& axes, int rank) {
  std::vector<int> out;
  for (int64_t a : axes) {
    ANERD_ASSIGN_OR_RETURN(int n, NormalizeAxis(a, rank));
    if (std::find(out.begin(), out.end(), n) != out.end()) return Err("axis ", a, " repeated");
    out.push_back(n);
  }
  return out;
}

absl::StatusOr<TensorType> InferConvShape(const TensorType& x, const TensorType& w,
                                          const ConvParams& params, const TensorType* bias) {
  ANERD_RETURN_IF_ERROR(CheckConvOperands(x, w, params.groups));
  const size_t ns = x.rank() - 2;
  const Shape strides = params.strides.value_or(Shape(ns, 1));
  const Shape dilations = params.dilations.value_or(Shape(ns, 1));
  const Shape pad = params.pad.value_or(Shape(2 * ns, 0));
  ANERD_RETURN_IF_ERROR(CheckPositive(strides, ns, "conv: strides"));
  ANERD_RETURN_IF_ERROR(CheckPositive(dilations, ns, "conv: dilations"));
  if (pad.size() != 2 * ns) return Err("conv: pad needs ", 2 * ns, " values, not ", pad.size());
  if (bias != nullptr) {
    if (bias->shape != Shape{w.shape[0]}) return Err("conv: bias must be [", w.shape[0], "]");
    ANERD_RETURN_IF_ERROR(CheckSameDType(x, *bias, "conv: x and bias"));
  }
  Shape out = {x.shape[0], w.shape[0]};
  for (size_t i = 0; i < ns; ++i) {
    if (pad[2 * i] < 0 || pad[2 * i + 1] < 0) return Err("conv: pad values must be >= 0");
    ANERD_ASSIGN_OR_RETURN(int64_t d,
                           ConvOutDim(x.shape[2 + i], w.shape[2 + i], strides[i], dilations[i],
                                      params.pad_type, pad[2 * i], pad[2 * i + 1]));
    out.push_back(d);
  }
  return TensorType{x.dtype, out};
}

absl::StatusOr<TensorType> InferMatmulShape(const TensorType& x, const TensorType& y, bool tx,
                                            bool ty) {
  ANERD_RETURN_IF_ERROR(CheckSameDType(x, y, "matmul: x and y"));
  if (x.rank() < 1 || y.rank() < 1) return Err("matmul: operands must have rank >= 1");
  Shape xs = x.shape, ys = y.shape;
  bool x_vec = xs.size() == 1, y_vec = ys.size() == 1;
  if (x_vec) xs.insert(xs.begin(), 1);
  if (y_vec) ys.push_back(1);
  if (tx && !x_vec) std::swap(xs[xs.size() - 1], xs[xs.size() - 2]);
  if (ty && !y_vec) std::swap(ys[ys.size() - 1], ys[ys.size() - 2]);
  int64_t m = xs[xs.size() - 2], k = xs.back(), k2 = ys[ys.size() - 2], n = ys.back();
  if (k != k2) {
    return Err("matmul: inner dimensions differ: x gives ", k, ", y gives ", k2,
               " (after transpose_x=", tx ? "true" : "false",
               ", transpose_y=", ty ? "true" : "false", ")");
  }
  ANERD_ASSIGN_OR_RETURN(
      Shape out, BroadcastShapes(Shape(xs.begin(), xs.end() - 2), Shape(ys.begin(), ys.end() - 2)));
  if (!x_vec) out.push_back(m);
  if (!y_vec) out.push_back(n);
  return TensorType{x.dtype, out};
}

absl::StatusOr<TensorType> InferLinearShape(const TensorType& x, const TensorType& w,
                                            const TensorType* bias) {
  ANERD_RETURN_IF_ERROR(CheckSameDType(x, w, "linear: x and weight"));
  if (x.rank() < 1 || w.rank() != 2) return Err("linear: needs x rank >= 1 and weight rank 2");
  if (w.shape[1] != x.shape.back()) {
    return Err("linear: weight ", ShapeToString(w.shape), " does not take ", x.shape.back(),
               " input features");
  }
  if (bias != nullptr) {
    if (bias->shape != Shape{w.shape[0]}) return Err("linear: bias must be [", w.shape[0], "]");
    ANERD_RETURN_IF_ERROR(CheckSameDType(x, *bias, "linear: x and bias"));
  }
  Shape out = x.shape;
  out.back() = w.shape[0];
  return TensorType{x.dtype, out};
}

absl::StatusOr<TensorType> InferBroadcastShape(const TensorType& x, const TensorType& y) {
  ANERD_RETURN_IF_ERROR(CheckSameDType(x, y, "x and y"));
  ANERD_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(x.shape, y.shape));
  return TensorType{x.dtype, out};
}

absl::StatusOr<TensorType> InferReshapeShape(const TensorType& x, const Shape& shape) {
  Shape out;
  int infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t s = shape[i];
    if (s == -1) {
      if (infer_at >= 0) return Err("reshape: at most one -1 in shape");
      infer_at = static_cast<int>(i);
      s = 1;
    } else if (s == 0) {
      if (static_cast<int>(i) >= x.rank()) return Err("reshape: 0 at axis ", i, " beyond x's rank");
      s = x.shape[i];
    } else if (s < 0) {
      return Err("reshape: invalid dimension ", s);
    }
    if (s > 0 && known > (int64_t{1} << 40) / s) {
      return Err("reshape: shape ", ShapeToString(shape), " is too large");
    }
    known *= s;
    out.push_back(s);
  }
  int64_t total = x.NumElements();
  if (infer_at >= 0) {
    if (known == 0 || total % known != 0) {
      return Err("reshape: cannot infer -1 for ", total, " elements into ", ShapeToString(shape));
    }
    out[infer_at] = total / known;
  } else if (known != total) {
    return Err("reshape: ", ShapeToString(x.shape), " has ", total, " elements but shape ",
               ShapeToString(shape), " has ", known);
  }
  return TensorType{x.dtype, out};
}

absl::StatusOr<TensorType> InferTransposeShape(const TensorType& x, const Shape& perm) {
  if (static_cast<int>(perm.size()) != x.rank()) {
    return Err("transpose: perm has ", perm.size(), " entries for rank ", x.rank());
  }
  ANERD_ASSIGN_OR_RETURN(std::vector<int> axes, NormalizeAxes(perm, x.rank()));
  Shape out;
  for (int a : axes) out.push_back(x.shape[a]);
  return TensorType{x.dtype, out};
}

absl::StatusOr<TensorType> InferReduceShape(const TensorType& x, const Shape& axes_arg, bool keep) {
  ANERD_ASSIGN_OR_RETURN(std::vector<int> axes, NormalizeAxes(axes_arg, x.rank()));
  Shape out;
  for (int i = 0; i < x.rank(); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) {
      out.push_back(x.shape[i]);
    } else if (keep) {
      out.push_back(1);
    }
  }
  return TensorType{x.dtype, out};
}

absl::StatusOr<TensorType> InferConcatShape(const std::vector<TensorType>& values, int64_t axis_arg,
                                            bool interleave) {
  if (values.empty()) return Err("concat: needs at least one value");
  const TensorType& first = values[0];
  ANERD_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_arg, first.rank()));
  Shape out = first.shape;
  out[axis] = 0;
  for (const TensorType& t : values) {
    ANERD_RETURN_IF_ERROR(CheckSameDType(first, t, "concat: values"));
    if (t.rank() != first.rank()) return Err("concat: values have different ranks");
    for (int i = 0; i < t.rank(); ++i) {
      bool differs = t.shape[i] != first.shape[i];
      if (differs && (i != axis || interleave)) {
        return Err("concat: ", ShapeToString(first.shape), " and ", ShapeToString(t.shape),
                   interleave ? " must be equal for interleave" : " differ off the concat axis");
      }
    }
    out[axis] += t.shape[axis];
  }
  return TensorType{first.dtype, out};
}

absl::StatusOr<TensorType> InferSdpaShape(const TensorType& q, const TensorType& k,
                                          const TensorType& v, const TensorType* m) {
  ANERD_RETURN_IF_ERROR(CheckSameDType(q, k, "sdpa: query and key"));
  ANERD_RETURN_IF_ERROR(CheckSameDType(q, v, "sdpa: query and value"));
  int r = q.rank();
  if (r < 3 || k.rank() != r || v.rank() != r) {
    return Err("sdpa: query, key and value need the same rank >= 3");
  }
  Shape batch(q.shape.begin(), q.shape.end() - 2);
  if (Shape(k.shape.begin(), k.shape.end() - 2) != batch ||
      Shape(v.shape.begin(), v.shape.end() - 2) != batch) {
    return Err("sdpa: batch dimensions of query, key and value differ");
  }
  int64_t L = q.shape[r - 2], E = q.shape[r - 1], S = k.shape[r - 2];
  if (k.shape[r - 1] != E) return Err("sdpa: key has ", k.shape[r - 1], " features, query ", E);
  if (v.shape[r - 2] != S) return Err("sdpa: value has ", v.shape[r - 2], " rows, key ", S);
  Shape scores = batch;
  scores.push_back(L);
  scores.push_back(S);
  if (m != nullptr) {
    if (m->dtype != DType::kBool)
      ANERD_RETURN_IF_ERROR(CheckSameDType(q, *m, "sdpa: query and mask"));
    ANERD_ASSIGN_OR_RETURN(Shape b, BroadcastShapes(m->shape, scores));
    if (b != scores) return Err("sdpa: attn_mask does not broadcast to ", ShapeToString(scores));
  }
  Shape out = batch;
  out.push_back(L);
  out.push_back(v.shape[r - 1]);
  return TensorType{q.dtype, out};
}

absl::StatusOr<TensorType> InferGatherShape(const TensorType& x, const TensorType& idx,
                                            int64_t axis_arg, int64_t batch_dims) {
  ANERD_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_arg, x.rank()));
  if (batch_dims < 0 || batch_dims > axis || batch_dims > idx.rank()) {
    return Err("gather: batch_dims ", batch_dims, " must be in [0, min(axis, indices rank)]");
  }
  for (int i = 0; i < batch_dims; ++i) {
    if (x.shape[i] != idx.shape[i]) return Err("gather: batch dimension ", i, " differs");
  }
  Shape out(x.shape.begin(), x.shape.begin() + axis);
  out.insert(out.end(), idx.shape.begin() + batch_dims, idx.shape.end());
  out.insert(out.end(), x.shape.begin() + axis + 1, x.shape.end());
  if (static_cast<int>(out.size()) > 5) return Err("gather: result rank ", out.size(), " > 5");
  return TensorType{x.dtype, out};
}

}  // namespace anerd::mil
