// Shape/type inference for every MIL op anerd supports, and their registration (shape_inference.h).
// Each Infer* function is pure: operand types (and constant operand values) in, output types out;
// the typed shape functions of the larger ops live in shape_functions.h.
// Semantics follow coremltools' iOS15-iOS18 op definitions.
#include "common/mil/shape_inference.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/mil/shape_functions.h"
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
Types One(absl::StatusOr<TensorType> t) {
  if (!t.ok()) return t.status();
  return One(*std::move(t));
}

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

// An optional constant operand: nullopt when absent.
absl::StatusOr<std::optional<Shape>> OptInts(const OpArgs& args, absl::string_view name) {
  if (!args.Has(name)) return std::optional<Shape>();
  ANERD_ASSIGN_OR_RETURN(Shape v, args.Ints(name));
  return std::optional<Shape>(std::move(v));
}

// An optional tensor operand's type: nullopt when absent.
absl::StatusOr<std::optional<TensorType>> OptType(const OpArgs& args, absl::string_view name) {
  if (!args.Has(name)) return std::optional<TensorType>();
  ANERD_ASSIGN_OR_RETURN(TensorType t, args.Type(name));
  return std::optional<TensorType>(std::move(t));
}

const TensorType* Ptr(const std::optional<TensorType>& t) { return t ? &*t : nullptr; }

Types InferConv(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType w, args.Type("weight"));
  ConvParams p;
  ANERD_ASSIGN_OR_RETURN(p.groups, args.Int("groups", 1));
  ANERD_ASSIGN_OR_RETURN(p.strides, OptInts(args, "strides"));
  ANERD_ASSIGN_OR_RETURN(p.dilations, OptInts(args, "dilations"));
  ANERD_ASSIGN_OR_RETURN(p.pad, OptInts(args, "pad"));
  ANERD_ASSIGN_OR_RETURN(p.pad_type, args.String("pad_type", "valid"));
  ANERD_ASSIGN_OR_RETURN(std::optional<TensorType> bias, OptType(args, "bias"));
  return One(InferConvShape(x, w, p, Ptr(bias)));
}

// ---- matmul / linear ----

Types InferMatmul(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType y, args.Type("y"));
  ANERD_ASSIGN_OR_RETURN(bool tx, args.Bool("transpose_x", false));
  ANERD_ASSIGN_OR_RETURN(bool ty, args.Bool("transpose_y", false));
  return One(InferMatmulShape(x, y, tx, ty));
}

Types InferLinear(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(TensorType w, args.Type("weight"));
  ANERD_ASSIGN_OR_RETURN(std::optional<TensorType> bias, OptType(args, "bias"));
  return One(InferLinearShape(x, w, Ptr(bias)));
}

// ---- reshape / transpose / slices ----

Types InferReshape(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(Shape shape, args.Ints("shape"));
  return One(InferReshapeShape(x, shape));
}

Types InferTranspose(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  ANERD_ASSIGN_OR_RETURN(Shape perm, args.Ints("perm"));
  return One(InferTransposeShape(x, perm));
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
  ANERD_ASSIGN_OR_RETURN(int64_t axis, args.Int("axis"));
  ANERD_ASSIGN_OR_RETURN(bool interleave, args.Bool("interleave", false));
  std::vector<TensorType> types;
  for (const Operand& v : values->elements) types.push_back(v.type);
  return One(InferConcatShape(types, axis, interleave));
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
  return One(InferBroadcastShape(x, y));
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
  ANERD_RETURN_IF_ERROR(CheckSameDType(a, b, "select: a and b"));
  ANERD_ASSIGN_OR_RETURN(Shape ab, BroadcastShapes(a.shape, b.shape));
  ANERD_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(cond.shape, ab));
  return One(TensorType{a.dtype, out});
}

// ---- reductions and normalization ----

Types InferReduce(const OpArgs& args) {
  ANERD_ASSIGN_OR_RETURN(TensorType x, args.Type("x"));
  Shape all;
  for (int i = 0; i < x.rank(); ++i) all.push_back(i);
  ANERD_ASSIGN_OR_RETURN(Shape axes, args.Ints("axes", all));
  ANERD_ASSIGN_OR_RETURN(bool keep, args.Bool("keep_dims", false));
  return One(InferReduceShape(x, axes, keep));
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
    ANERD_RETURN_IF_ERROR(CheckSameDType(x, t, absl::StrCat("layer_norm: x and ", p)));
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
  ANERD_ASSIGN_OR_RETURN(std::optional<TensorType> mask, OptType(args, "attn_mask"));
  return One(InferSdpaShape(q, k, v, Ptr(mask)));
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
  ANERD_RETURN_IF_ERROR(CheckSameDType(in, scale, "quantize: input and scale"));
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
    ANERD_RETURN_IF_ERROR(CheckSameDType(data, zp, absl::StrCat(data_name, " and zero_point")));
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
  ANERD_ASSIGN_OR_RETURN(int64_t axis, args.Int("axis", 0));
  ANERD_ASSIGN_OR_RETURN(int64_t batch_dims, args.Int("batch_dims", 0));
  ANERD_RETURN_IF_ERROR(args.Bool("validate_indices", false).status());
  return One(InferGatherShape(x, idx, axis, batch_dims));
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
