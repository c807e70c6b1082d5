// Shape/type inference for every MIL op anerd supports, and their registration (shape_inference.h).
// Each Infer* function is pure: operand types (and constant operand values) in, output types out.
// Semantics follow coremltools' iOS15-iOS18 op definitions.
#include "common/mil/shape_inference.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anerd::mil {
namespace {

using Shape = std::vector<int64_t>;
using Types = absl::StatusOr<std::vector<TensorType>>;

template <typename... A>
absl::Status Err(const A&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

Types One(TensorType t) { return std::vector<TensorType>{std::move(t)}; }

constexpr DTypeSet kI32 = DTypeBit(DType::kInt32);
constexpr DTypeSet kBoolT = DTypeBit(DType::kBool);
constexpr DTypeSet kStr = DTypeBit(DType::kString);
constexpr DTypeSet kCastable = kFloatDTypes | kIndexDTypes | kBoolT;

ParamSpec In(std::string name, DTypeSet dtypes = kAnyDType) {
  return ParamSpec{std::move(name), true, false, dtypes, false};
}
ParamSpec Opt(std::string name, DTypeSet dtypes = kAnyDType) {
  return ParamSpec{std::move(name), false, false, dtypes, false};
}
ParamSpec Const(std::string name, DTypeSet dtypes) {
  return ParamSpec{std::move(name), true, false, dtypes, true};
}
ParamSpec OptConst(std::string name, DTypeSet dtypes) {
  return ParamSpec{std::move(name), false, false, dtypes, true};
}

absl::Status SameDType(const TensorType& a, const TensorType& b, absl::string_view what) {
  if (a.dtype == b.dtype) return absl::OkStatus();
  return Err(what, " dtypes differ: ", DTypeName(a.dtype), " vs ", DTypeName(b.dtype));
}

// Normalizes a list of distinct axes.
absl::StatusOr<std::vector<int>> NormalizeAxes(const Shape& axes, int rank) {
  std::vector<int> out;
  for (int64_t a : axes) {
    ANERD_ASSIGN_OR_RETURN(int n, NormalizeAxis(a, rank));
    if (std::find(out.begin(), out.end(), n) != out.end()) return Err("axis ", a, " repeated");
    out.push_back(n);
  }
  return out;
}

// ---- constants and casts ----

Types InferConst(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType t, args.Type("val"));
  return One(t);
}

Types InferCast(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(std::string name, args.String("dtype"));
  std::optional<DType> dtype = DTypeFromName(name);
  if (!dtype || !(kCastable & DTypeBit(*dtype)))
    return Err("cast: unsupported dtype \"", name, "\"");
  return One(TensorType{*dtype, x.shape});
}

// ---- conv ----

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
  ANERD_RETURN_IF_ERROR(SameDType(x, w, "conv: x and weight"));
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

Types InferConv(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType w, args.Type("weight"));
  ANERD_ASSIGN_OR_RETURN(int64_t groups, args.Int("groups", 1));
  ANERD_RETURN_IF_ERROR(CheckConvOperands(x, w, groups));
  size_t ns = x.rank() - 2;
  ANERD_ASSIGN_OR_RETURN(Shape strides, args.Ints("strides", Shape(ns, 1)));
  ANERD_ASSIGN_OR_RETURN(Shape dilations, args.Ints("dilations", Shape(ns, 1)));
  ANERD_ASSIGN_OR_RETURN(Shape pad, args.Ints("pad", Shape(2 * ns, 0)));
  ANERD_ASSIGN_OR_RETURN(std::string pad_type, args.String("pad_type", "valid"));
  ANERD_RETURN_IF_ERROR(CheckPositive(strides, ns, "conv: strides"));
  ANERD_RETURN_IF_ERROR(CheckPositive(dilations, ns, "conv: dilations"));
  if (pad.size() != 2 * ns) return Err("conv: pad needs ", 2 * ns, " values, not ", pad.size());
  if (args.Has("bias")) {
    ANERD_ASSIGN_OR_RETURN(TensorType b, args.Type("bias"));
    if (b.shape != Shape{w.shape[0]}) return Err("conv: bias must be [", w.shape[0], "]");
    ANERD_RETURN_IF_ERROR(SameDType(x, b, "conv: x and bias"));
  }
  Shape out = {x.shape[0], w.shape[0]};
  for (size_t i = 0; i < ns; ++i) {
    if (pad[2 * i] < 0 || pad[2 * i + 1] < 0) return Err("conv: pad values must be >= 0");
    ANERD_ASSIGN_OR_RETURN(
        int64_t d, ConvOutDim(x.shape[2 + i], w.shape[2 + i], strides[i], dilations[i], pad_type,
                              pad[2 * i], pad[2 * i + 1]));
    out.push_back(d);
  }
  return One(TensorType{x.dtype, out});
}

// ---- matmul / linear ----

Types InferMatmul(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType y, args.Type("y"));
  ANERD_ASSIGN_OR_RETURN(bool tx, args.Bool("transpose_x", false));
  ANERD_ASSIGN_OR_RETURN(bool ty, args.Bool("transpose_y", false));
  ANERD_RETURN_IF_ERROR(SameDType(x, y, "matmul: x and y"));
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
  return One(TensorType{x.dtype, out});
}

Types InferLinear(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType w, args.Type("weight"));
  ANERD_RETURN_IF_ERROR(SameDType(x, w, "linear: x and weight"));
  if (x.rank() < 1 || w.rank() != 2) return Err("linear: needs x rank >= 1 and weight rank 2");
  if (w.shape[1] != x.shape.back()) {
    return Err("linear: weight ", ShapeToString(w.shape), " does not take ", x.shape.back(),
               " input features");
  }
  if (args.Has("bias")) {
    ANERD_ASSIGN_OR_RETURN(TensorType b, args.Type("bias"));
    if (b.shape != Shape{w.shape[0]}) return Err("linear: bias must be [", w.shape[0], "]");
    ANERD_RETURN_IF_ERROR(SameDType(x, b, "linear: x and bias"));
  }
  Shape out = x.shape;
  out.back() = w.shape[0];
  return One(TensorType{x.dtype, out});
}

// ---- reshape / transpose / slices ----

Types InferReshape(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(Shape shape, args.Ints("shape"));
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
  return One(TensorType{x.dtype, out});
}

Types InferTranspose(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(Shape perm, args.Ints("perm"));
  if (static_cast<int>(perm.size()) != x.rank()) {
    return Err("transpose: perm has ", perm.size(), " entries for rank ", x.rank());
  }
  ANERD_ASSIGN_OR_RETURN(std::vector<int> axes, NormalizeAxes(perm, x.rank()));
  Shape out;
  for (int a : axes) out.push_back(x.shape[a]);
  return One(TensorType{x.dtype, out});
}

Types InferSliceBySize(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(Shape begin, args.Ints("begin"));
  ANERD_ASSIGN_OR_RETURN(Shape size, args.Ints("size"));
  if (static_cast<int>(begin.size()) != x.rank() || static_cast<int>(size.size()) != x.rank()) {
    return Err("slice_by_size: begin and size need ", x.rank(), " entries");
  }
  Shape out;
  for (int i = 0; i < x.rank(); ++i) {
    int64_t d = x.shape[i];
    int64_t b = begin[i] < 0 ? begin[i] + d : begin[i];
    if (b < 0 || b >= d) return Err("slice_by_size: begin ", begin[i], " out of range on axis ", i);
    int64_t s = size[i] == -1 ? d - b : size[i];
    if (s < 1 || b + s > d) {
      return Err("slice_by_size: size ", size[i], " from ", b, " exceeds dim ", d, " on axis ", i);
    }
    out.push_back(s);
  }
  return One(TensorType{x.dtype, out});
}

int64_t ClampIndex(int64_t v, int64_t d, int64_t stride) {
  if (v < 0) v += d;
  return stride > 0 ? std::clamp<int64_t>(v, 0, d) : std::clamp<int64_t>(v, -1, d - 1);
}

Types InferSliceByIndex(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  size_t r = x.rank();
  ANERD_ASSIGN_OR_RETURN(Shape begin, args.Ints("begin"));
  ANERD_ASSIGN_OR_RETURN(Shape end, args.Ints("end"));
  ANERD_ASSIGN_OR_RETURN(Shape stride, args.Ints("stride", Shape(r, 1)));
  ANERD_ASSIGN_OR_RETURN(Shape begin_mask, args.Ints("begin_mask", Shape(r, 0)));
  ANERD_ASSIGN_OR_RETURN(Shape end_mask, args.Ints("end_mask", Shape(r, 0)));
  ANERD_ASSIGN_OR_RETURN(Shape squeeze, args.Ints("squeeze_mask", Shape(r, 0)));
  for (const Shape* v : {&begin, &end, &stride, &begin_mask, &end_mask, &squeeze}) {
    if (v->size() != r) return Err("slice_by_index: every list needs ", r, " entries");
  }
  Shape out;
  for (size_t i = 0; i < r; ++i) {
    int64_t d = x.shape[i], s = stride[i];
    if (s == 0) return Err("slice_by_index: stride 0 on axis ", i);
    int64_t b = begin_mask[i] ? (s > 0 ? 0 : d - 1) : ClampIndex(begin[i], d, s);
    int64_t e = end_mask[i] ? (s > 0 ? d : -1) : ClampIndex(end[i], d, s);
    int64_t len = s > 0 ? (e - b + s - 1) / s : (b - e + (-s) - 1) / (-s);
    if (len < 1) return Err("slice_by_index: empty slice on axis ", i);
    if (squeeze[i]) continue;
    out.push_back(len);
  }
  return One(TensorType{x.dtype, out});
}

// ---- concat / split ----

Types InferConcat(const OpArgs& args) {
  const Operand* values = args.Find("values");
  if (values == nullptr || values->elements.empty()) return Err("concat: needs at least one value");
  ANERD_ASSIGN_OR_RETURN(int64_t axis_arg, args.Int("axis"));
  ANERD_ASSIGN_OR_RETURN(bool interleave, args.Bool("interleave", false));
  const TensorType& first = values->elements[0].type;
  ANERD_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_arg, first.rank()));
  Shape out = first.shape;
  out[axis] = 0;
  for (const Operand& v : values->elements) {
    const TensorType& t = v.type;
    ANERD_RETURN_IF_ERROR(SameDType(first, t, "concat: values"));
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
  return One(TensorType{first.dtype, out});
}

Types InferSplit(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(int64_t axis_arg, args.Int("axis"));
  ANERD_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_arg, x.rank()));
  int64_t d = x.shape[axis];
  if (args.Has("num_splits") == args.Has("split_sizes")) {
    return Err("split: give exactly one of num_splits and split_sizes");
  }
  Shape sizes;
  if (args.Has("num_splits")) {
    ANERD_ASSIGN_OR_RETURN(int64_t n, args.Int("num_splits"));
    if (n < 1 || d % n != 0) return Err("split: ", d, " is not divisible into ", n, " splits");
    sizes.assign(n, d / n);
  } else {
    ANERD_ASSIGN_OR_RETURN(sizes, args.Ints("split_sizes"));
    int64_t sum = 0;
    for (int64_t s : sizes) {
      if (s < 1 || s > d) return Err("split: bad split size ", s);
      sum += s;
    }
    if (sum != d) return Err("split: split_sizes sum to ", sum, ", not ", d);
  }
  std::vector<TensorType> out;
  for (int64_t s : sizes) {
    out.push_back(x);
    out.back().shape[axis] = s;
  }
  return out;
}

// ---- elementwise ----

Types InferBinary(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType y, args.Type("y"));
  ANERD_RETURN_IF_ERROR(SameDType(x, y, "x and y"));
  ANERD_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(x.shape, y.shape));
  return One(TensorType{x.dtype, out});
}

Types InferUnary(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  if (args.Has("epsilon")) ANERD_RETURN_IF_ERROR(args.Float("epsilon").status());
  return One(x);
}

Types InferGelu(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(std::string mode, args.String("mode", "EXACT"));
  if (mode != "EXACT" && mode != "TANH_APPROXIMATION" && mode != "SIGMOID_APPROXIMATION") {
    return Err("gelu: unknown mode \"", mode, "\"");
  }
  return InferUnary(args);
}

Types InferSoftmax(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(int64_t axis, args.Int("axis", -1));
  ANERD_RETURN_IF_ERROR(NormalizeAxis(axis, x.rank()).status());
  return One(x);
}

Types InferClip(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(double alpha, args.Float("alpha"));
  ANERD_ASSIGN_OR_RETURN(double beta, args.Float("beta"));
  if (alpha > beta) return Err("clip: alpha ", alpha, " > beta ", beta);
  return One(x);
}

Types InferSelect(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType cond, args.Type("cond"));
  ANERD_ASSIGN_OR_RETURN(TensorType a, args.Type("a"));
  ANERD_ASSIGN_OR_RETURN(TensorType b, args.Type("b"));
  ANERD_RETURN_IF_ERROR(SameDType(a, b, "select: a and b"));
  ANERD_ASSIGN_OR_RETURN(Shape ab, BroadcastShapes(a.shape, b.shape));
  ANERD_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(cond.shape, ab));
  return One(TensorType{a.dtype, out});
}

// ---- reductions and normalization ----

Types InferReduce(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  Shape all;
  for (int i = 0; i < x.rank(); ++i) all.push_back(i);
  ANERD_ASSIGN_OR_RETURN(Shape axes_arg, args.Ints("axes", all));
  ANERD_ASSIGN_OR_RETURN(bool keep, args.Bool("keep_dims", false));
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
  return One(TensorType{x.dtype, out});
}

Types InferLayerNorm(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  Shape all;
  for (int i = 0; i < x.rank(); ++i) all.push_back(i);
  ANERD_ASSIGN_OR_RETURN(Shape axes_arg, args.Ints("axes", all));
  ANERD_ASSIGN_OR_RETURN(std::vector<int> axes, NormalizeAxes(axes_arg, x.rank()));
  ANERD_RETURN_IF_ERROR(args.Float("epsilon", 1e-5).status());
  Shape norm;
  for (int a : axes) norm.push_back(x.shape[a]);
  for (const char* p : {"gamma", "beta"}) {
    if (!args.Has(p)) continue;
    ANERD_ASSIGN_OR_RETURN(TensorType t, args.Type(p));
    ANERD_RETURN_IF_ERROR(SameDType(x, t, absl::StrCat("layer_norm: x and ", p)));
    if (t.shape != norm) {
      return Err("layer_norm: ", p, " must be ", ShapeToString(norm), ", not ",
                 ShapeToString(t.shape));
    }
  }
  return One(x);
}

// ---- attention ----

Types InferSdpa(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType q, args.Type("query"));
  ANERD_ASSIGN_OR_RETURN(TensorType k, args.Type("key"));
  ANERD_ASSIGN_OR_RETURN(TensorType v, args.Type("value"));
  ANERD_RETURN_IF_ERROR(SameDType(q, k, "sdpa: query and key"));
  ANERD_RETURN_IF_ERROR(SameDType(q, v, "sdpa: query and value"));
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
  if (args.Has("attn_mask")) {
    ANERD_ASSIGN_OR_RETURN(TensorType m, args.Type("attn_mask"));
    if (m.dtype != DType::kBool) ANERD_RETURN_IF_ERROR(SameDType(q, m, "sdpa: query and mask"));
    ANERD_ASSIGN_OR_RETURN(Shape b, BroadcastShapes(m.shape, scores));
    if (b != scores) return Err("sdpa: attn_mask does not broadcast to ", ShapeToString(scores));
  }
  Shape out = batch;
  out.push_back(L);
  out.push_back(v.shape[r - 1]);
  return One(TensorType{q.dtype, out});
}

// ---- quantization ----

// A scale or zero point: a scalar, or a vector along `axis` of `data`.
absl::Status CheckQuantParam(const OpArgs& args, absl::string_view name, const TensorType& data) {
  if (!args.Has(name)) return absl::OkStatus();
  ANERD_ASSIGN_OR_RETURN(TensorType p, args.Type(name));
  if (p.rank() > 1) return Err("'", name, "' must be a scalar or a vector");
  if (p.rank() == 0) return absl::OkStatus();
  if (!args.Has("axis")) return Err("a vector '", name, "' needs 'axis'");
  ANERD_ASSIGN_OR_RETURN(int64_t axis_arg, args.Int("axis"));
  ANERD_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_arg, data.rank()));
  if (p.shape[0] != data.shape[axis]) {
    return Err("'", name, "' has ", p.shape[0], " entries; axis ", axis, " has ", data.shape[axis]);
  }
  return absl::OkStatus();
}

Types InferQuantize(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType in, args.Type("input"));
  ANERD_ASSIGN_OR_RETURN(TensorType scale, args.Type("scale"));
  ANERD_ASSIGN_OR_RETURN(std::string out_name, args.String("output_dtype"));
  ANERD_RETURN_IF_ERROR(SameDType(in, scale, "quantize: input and scale"));
  std::optional<DType> out = DTypeFromName(out_name);
  if (!out || !(kQuantDTypes & DTypeBit(*out))) {
    return Err("quantize: output_dtype must be \"int8\" or \"uint8\", not \"", out_name, "\"");
  }
  if (args.Has("zero_point")) {
    ANERD_ASSIGN_OR_RETURN(TensorType zp, args.Type("zero_point"));
    if (zp.dtype != *out) return Err("quantize: zero_point must be ", out_name);
  }
  ANERD_RETURN_IF_ERROR(CheckQuantParam(args, "scale", in));
  ANERD_RETURN_IF_ERROR(CheckQuantParam(args, "zero_point", in));
  return One(TensorType{*out, in.shape});
}

Types InferDequantize(absl::string_view data_name, const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType data, args.Type(data_name));
  ANERD_ASSIGN_OR_RETURN(TensorType scale, args.Type("scale"));
  if (args.Has("zero_point")) {
    ANERD_ASSIGN_OR_RETURN(TensorType zp, args.Type("zero_point"));
    ANERD_RETURN_IF_ERROR(SameDType(data, zp, absl::StrCat(data_name, " and zero_point")));
  }
  ANERD_RETURN_IF_ERROR(CheckQuantParam(args, "scale", data));
  ANERD_RETURN_IF_ERROR(CheckQuantParam(args, "zero_point", data));
  if (args.Has("axis")) {
    ANERD_ASSIGN_OR_RETURN(int64_t axis, args.Int("axis"));
    ANERD_RETURN_IF_ERROR(NormalizeAxis(axis, data.rank()).status());
  }
  return One(TensorType{scale.dtype, data.shape});
}

Types InferDequantizeOp(const OpArgs& args) { return InferDequantize("input", args); }
Types InferAffineDequantize(const OpArgs& args) { return InferDequantize("quantized_data", args); }

// ---- gather ----

Types InferGather(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType idx, args.Type("indices"));
  ANERD_ASSIGN_OR_RETURN(int64_t axis_arg, args.Int("axis", 0));
  ANERD_ASSIGN_OR_RETURN(int64_t batch_dims, args.Int("batch_dims", 0));
  ANERD_RETURN_IF_ERROR(args.Bool("validate_indices", false).status());
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
  return One(TensorType{x.dtype, out});
}

// ---- registration ----

void Add(OpRegistry* r, const char* name, std::vector<ParamSpec> params, InferFn infer,
         bool params_in_attributes = false) {
  r->Register(OpSpec{name, std::move(params), params_in_attributes, infer});
}

void RegisterStructural(OpRegistry* r) {
  Add(r, "const", {Const("val", kAnyDType)}, InferConst, true);
  Add(r, "cast", {In("x", kCastable), Const("dtype", kStr)}, InferCast);
  Add(r, "conv",
      {In("x", kFloatDTypes), In("weight", kFloatDTypes), Opt("bias", kFloatDTypes),
       OptConst("strides", kI32), OptConst("pad_type", kStr), OptConst("pad", kI32),
       OptConst("dilations", kI32), OptConst("groups", kI32)},
      InferConv);
  Add(r, "matmul",
      {In("x", kArithDTypes), In("y", kArithDTypes), OptConst("transpose_x", kBoolT),
       OptConst("transpose_y", kBoolT)},
      InferMatmul);
  Add(r, "linear", {In("x", kFloatDTypes), In("weight", kFloatDTypes), Opt("bias", kFloatDTypes)},
      InferLinear);
  Add(r, "reshape", {In("x"), Const("shape", kI32)}, InferReshape);
  Add(r, "transpose", {In("x"), Const("perm", kI32)}, InferTranspose);
  Add(r, "slice_by_size", {In("x"), Const("begin", kI32), Const("size", kI32)}, InferSliceBySize);
  Add(r, "slice_by_index",
      {In("x"), Const("begin", kI32), Const("end", kI32), OptConst("stride", kI32),
       OptConst("begin_mask", kBoolT), OptConst("end_mask", kBoolT),
       OptConst("squeeze_mask", kBoolT)},
      InferSliceByIndex);
  Add(r, "concat",
      {ParamSpec{"values", true, true, kAnyDType, false}, Const("axis", kI32),
       OptConst("interleave", kBoolT)},
      InferConcat);
  Add(r, "split",
      {In("x"), OptConst("num_splits", kI32), OptConst("split_sizes", kI32), Const("axis", kI32)},
      InferSplit);
  Add(r, "gather",
      {In("x"), In("indices", kIndexDTypes), OptConst("axis", kI32), OptConst("batch_dims", kI32),
       OptConst("validate_indices", kBoolT)},
      InferGather);
  Add(r, "select", {In("cond", kBoolT), In("a"), In("b")}, InferSelect);
}

void RegisterMath(OpRegistry* r) {
  for (const char* op : {"add", "sub", "mul", "real_div", "maximum", "minimum", "pow"}) {
    Add(r, op, {In("x", kArithDTypes), In("y", kArithDTypes)}, InferBinary);
  }
  for (const char* op : {"sqrt", "exp", "tanh", "sigmoid", "relu", "silu"}) {
    Add(r, op, {In("x", kFloatDTypes)}, InferUnary);
  }
  for (const char* op : {"rsqrt", "log"}) {
    Add(r, op, {In("x", kFloatDTypes), OptConst("epsilon", kFloatDTypes)}, InferUnary);
  }
  Add(r, "gelu", {In("x", kFloatDTypes), OptConst("mode", kStr)}, InferGelu);
  Add(r, "softmax", {In("x", kFloatDTypes), OptConst("axis", kI32)}, InferSoftmax);
  Add(r, "clip", {In("x", kFloatDTypes), Const("alpha", kFloatDTypes), Const("beta", kFloatDTypes)},
      InferClip);
  for (const char* op : {"reduce_sum", "reduce_mean", "reduce_max"}) {
    Add(r, op, {In("x", kArithDTypes), OptConst("axes", kI32), OptConst("keep_dims", kBoolT)},
        InferReduce);
  }
  Add(r, "layer_norm",
      {In("x", kFloatDTypes), OptConst("axes", kI32), Opt("gamma", kFloatDTypes),
       Opt("beta", kFloatDTypes), OptConst("epsilon", kFloatDTypes)},
      InferLayerNorm);
  Add(r, "scaled_dot_product_attention",
      {In("query", kFloatDTypes), In("key", kFloatDTypes), In("value", kFloatDTypes),
       Opt("attn_mask", kFloatDTypes | kBoolT)},
      InferSdpa);
}

void RegisterQuantization(OpRegistry* r) {
  Add(r, "quantize",
      {In("input", kFloatDTypes), Const("scale", kFloatDTypes),
       OptConst("zero_point", kQuantDTypes), OptConst("axis", kI32), Const("output_dtype", kStr)},
      InferQuantize);
  Add(r, "dequantize",
      {In("input", kQuantDTypes), Const("scale", kFloatDTypes),
       OptConst("zero_point", kQuantDTypes), OptConst("axis", kI32)},
      InferDequantizeOp);
  Add(r, "constexpr_affine_dequantize",
      {Const("quantized_data", kQuantDTypes), Const("zero_point", kQuantDTypes),
       Const("scale", kFloatDTypes), Const("axis", kI32)},
      InferAffineDequantize, true);
}

// Identity ops that abort or hang the process running them (see OpSpec::test_only).
void RegisterTestOps(OpRegistry* r) {
  for (const char* op : {"anerd_test_abort", "anerd_test_hang"}) {
    Add(r, op, {In("x")}, InferUnary);
    OpSpec spec = *r->Find(op);
    spec.test_only = true;
    r->Register(std::move(spec));
  }
}

}  // namespace

void RegisterMilOps(OpRegistry* registry) {
  RegisterStructural(registry);
  RegisterMath(registry);
  RegisterQuantization(registry);
  RegisterTestOps(registry);
}

}  // namespace anerd::mil
