#include "common/mil/builder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fp16.h"

namespace anerd::mil {
namespace {

// The literal header of docs/ANE_NOTES.md §3.1.
constexpr std::pair<const char*, const char*> kBuildInfo[] = {
    {"coremlc-component-MIL", "3510.2.1"},
    {"coremlc-version", "3505.4.1"},
    {"coremltools-component-milinternal", ""},
    {"coremltools-version", "9.0"},
};

double RoundForDType(DType dtype, double v) {
  if (dtype == DType::kFp16) return RoundToHalf(static_cast<float>(v));
  if (dtype == DType::kFp32) return static_cast<float>(v);
  return v;
}

bool IsIdentifier(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
}

std::string Dims(absl::Span<const int64_t> dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

absl::Status OpError(absl::string_view op, absl::string_view name, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("builder: ", op, " \"", name, "\": ", msg));
}

// Normalises a possibly negative axis; -1 if out of range.
int64_t NormalizeAxis(int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) return -1;
  return axis < 0 ? axis + rank : axis;
}

// NumPy broadcasting of two shapes; empty optional-like status on mismatch.
absl::StatusOr<std::vector<int64_t>> Broadcast(absl::Span<const int64_t> a,
                                               absl::Span<const int64_t> b) {
  const size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("shapes ", Dims(a), " and ", Dims(b), " do not broadcast"));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

absl::StatusOr<TensorType> ConvType(const TensorType& x, const TensorType& w, int64_t groups) {
  if (x.rank() != 4 || w.rank() != 4)
    return absl::InvalidArgumentError("x and weight must be rank 4");
  if (x.dtype != w.dtype) return absl::InvalidArgumentError("x and weight dtypes differ");
  if (groups < 1 || x.shape[1] % groups != 0 || w.shape[0] % groups != 0 ||
      w.shape[1] * groups != x.shape[1]) {
    return absl::InvalidArgumentError(absl::StrCat("weight ", Dims(w.shape), " with groups ",
                                                   groups, " does not fit x ", Dims(x.shape)));
  }
  const int64_t h = x.shape[2] - w.shape[2] + 1;
  const int64_t wd = x.shape[3] - w.shape[3] + 1;
  if (h < 1 || wd < 1) return absl::InvalidArgumentError("kernel larger than the input");
  return TensorType{x.dtype, {x.shape[0], w.shape[0], h, wd}};
}

absl::StatusOr<TensorType> MatmulType(const TensorType& x, const TensorType& y, bool tx, bool ty) {
  if (x.rank() < 2 || y.rank() < 2) return absl::InvalidArgumentError("operands must be rank >= 2");
  if (x.dtype != y.dtype) return absl::InvalidArgumentError("x and y dtypes differ");
  const int xr = x.rank(), yr = y.rank();
  const int64_t m = x.shape[xr - (tx ? 1 : 2)], kx = x.shape[xr - (tx ? 2 : 1)];
  const int64_t ky = y.shape[yr - (ty ? 1 : 2)], n = y.shape[yr - (ty ? 2 : 1)];
  if (kx != ky) {
    return absl::InvalidArgumentError(
        absl::StrCat("inner dimensions differ: ", Dims(x.shape), " and ", Dims(y.shape)));
  }
  auto batch = Broadcast(absl::MakeSpan(x.shape).subspan(0, xr - 2),
                         absl::MakeSpan(y.shape).subspan(0, yr - 2));
  if (!batch.ok()) return batch.status();
  batch->push_back(m);
  batch->push_back(n);
  return TensorType{x.dtype, std::move(*batch)};
}

absl::StatusOr<TensorType> ReshapeType(const TensorType& x, absl::Span<const int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 1 || count > (int64_t{1} << 62) / d) {
      return absl::InvalidArgumentError(absl::StrCat("bad target shape ", Dims(shape)));
    }
    count *= d;
  }
  if (count != x.NumElements()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot reshape ", Dims(x.shape), " to ", Dims(shape)));
  }
  return TensorType{x.dtype, std::vector<int64_t>(shape.begin(), shape.end())};
}

absl::StatusOr<TensorType> TransposeType(const TensorType& x, absl::Span<const int64_t> perm) {
  std::vector<int64_t> sorted(perm.begin(), perm.end());
  std::sort(sorted.begin(), sorted.end());
  bool ok = perm.size() == x.shape.size();
  for (size_t i = 0; ok && i < sorted.size(); ++i) ok = sorted[i] == static_cast<int64_t>(i);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("perm ", Dims(perm), " is not a permutation of rank ", x.rank()));
  }
  TensorType out{x.dtype, {}};
  for (int64_t p : perm) out.shape.push_back(x.shape[p]);
  return out;
}

absl::StatusOr<TensorType> SliceType(const TensorType& x, absl::Span<const int64_t> begin,
                                     absl::Span<const int64_t> size) {
  if (begin.size() != x.shape.size() || size.size() != x.shape.size()) {
    return absl::InvalidArgumentError("begin and size must have one entry per axis");
  }
  TensorType out{x.dtype, {}};
  for (size_t i = 0; i < begin.size(); ++i) {
    const int64_t dim = x.shape[i];
    const int64_t len = size[i] == -1 ? dim - begin[i] : size[i];
    if (begin[i] < 0 || begin[i] >= dim || len < 1 || len > dim - begin[i]) {
      return absl::InvalidArgumentError(absl::StrCat("box begin ", Dims(begin), " size ",
                                                     Dims(size), " outside ", Dims(x.shape)));
    }
    out.shape.push_back(len);
  }
  return out;
}

absl::StatusOr<TensorType> ConcatType(absl::Span<const Value> values, int64_t axis) {
  if (values.empty()) return absl::InvalidArgumentError("no values");
  TensorType out = values[0].type;
  const int64_t ax = NormalizeAxis(axis, out.rank());
  if (ax < 0) return absl::InvalidArgumentError(absl::StrCat("axis ", axis, " out of range"));
  for (size_t i = 1; i < values.size(); ++i) {
    const TensorType& t = values[i].type;
    bool ok = t.dtype == out.dtype && t.rank() == out.rank();
    for (int d = 0; ok && d < t.rank(); ++d) ok = d == ax || t.shape[d] == out.shape[d];
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("\"", values[i].name, "\" ", t.ToString(),
                                                     " does not match ",
                                                     values[0].type.ToString()));
    }
    out.shape[ax] += t.shape[ax];
  }
  return out;
}

absl::StatusOr<TensorType> ReduceType(const TensorType& x, absl::Span<const int64_t> axes,
                                      bool keep_dims) {
  std::vector<bool> reduced(x.rank(), false);
  for (int64_t a : axes) {
    const int64_t ax = NormalizeAxis(a, x.rank());
    if (ax < 0 || reduced[ax]) {
      return absl::InvalidArgumentError(absl::StrCat("bad axes ", Dims(axes)));
    }
    reduced[ax] = true;
  }
  TensorType out{x.dtype, {}};
  for (int d = 0; d < x.rank(); ++d) {
    if (!reduced[d])
      out.shape.push_back(x.shape[d]);
    else if (keep_dims)
      out.shape.push_back(1);
  }
  return out;
}

}  // namespace

Literal ScalarLiteral(DType dtype, double value) {
  return TensorLiteral(TensorType{dtype, {}}, {value});
}

Literal StringLiteral(std::string value) {
  Literal lit;
  lit.type = TensorType{DType::kString, {}};
  lit.strings.push_back(std::move(value));
  return lit;
}

Literal TensorLiteral(TensorType type, std::vector<double> values) {
  Literal lit;
  for (double& v : values) v = RoundForDType(type.dtype, v);
  lit.type = std::move(type);
  lit.values = std::move(values);
  return lit;
}

Literal Int32VectorLiteral(absl::Span<const int64_t> values) {
  return TensorLiteral(TensorType{DType::kInt32, {static_cast<int64_t>(values.size())}},
                       std::vector<double>(values.begin(), values.end()));
}

Literal BlobLiteral(TensorType type, std::string path, uint64_t offset) {
  Literal lit;
  lit.type = std::move(type);
  lit.blob = BlobRef{std::move(path), offset};
  return lit;
}

Builder::Builder(std::string function_name, std::string opset) {
  function_.name = std::move(function_name);
  function_.opset = std::move(opset);
}

Value Builder::Fail(absl::Status status) {
  if (status_.ok()) status_ = std::move(status);
  return Value{};
}

bool Builder::CheckName(const std::string& name) {
  if (!status_.ok()) return false;
  if (!IsIdentifier(name)) {
    Fail(absl::InvalidArgumentError(absl::StrCat("builder: \"", name, "\" is not a valid name")));
    return false;
  }
  if (!names_.insert(name).second) {
    Fail(absl::InvalidArgumentError(absl::StrCat("builder: name \"", name, "\" defined twice")));
    return false;
  }
  return true;
}

bool Builder::CheckValues(absl::Span<const Value* const> values) {
  if (!status_.ok()) return false;
  for (const Value* v : values) {
    if (!v->valid() || !names_.contains(v->name)) {
      Fail(absl::InvalidArgumentError(
          absl::StrCat("builder: use of an invalid or foreign value \"", v->name, "\"")));
      return false;
    }
  }
  return true;
}

Argument Builder::ParamConst(const std::string& op_name, const std::string& param,
                             Literal literal) {
  std::string name = absl::StrCat(op_name, "_", param);
  if (!CheckName(name)) return Argument::Ref(name);
  Operation op;
  op.op = "const";
  op.attributes.push_back({"name", Argument::Lit(StringLiteral(name))});
  op.outputs.push_back({name, literal.type, {}});
  op.attributes.push_back({"val", Argument::Lit(std::move(literal))});
  function_.ops.push_back(std::move(op));
  return Argument::Ref(std::move(name));
}

Value Builder::Emit(std::string op_name, std::string out, std::vector<Param> inputs,
                    TensorType type) {
  if (!status_.ok()) return Value{};
  std::sort(inputs.begin(), inputs.end(),
            [](const Param& a, const Param& b) { return a.name < b.name; });
  Operation op;
  op.op = std::move(op_name);
  for (Param& p : inputs) op.inputs.push_back({std::move(p.name), std::move(p.value)});
  op.attributes.push_back({"name", Argument::Lit(StringLiteral(out))});
  op.outputs.push_back({out, type, {}});
  function_.ops.push_back(std::move(op));
  return Value{std::move(out), std::move(type)};
}

Value Builder::Input(std::string name, TensorType type) {
  if (!CheckName(name)) return Value{};
  function_.inputs.push_back({name, type, {}});
  return Value{std::move(name), std::move(type)};
}

Value Builder::Const(std::string name, Literal literal) {
  if (!CheckName(name)) return Value{};
  TensorType type = literal.type;
  Operation op;
  op.op = "const";
  op.attributes.push_back({"name", Argument::Lit(StringLiteral(name))});
  op.attributes.push_back({"val", Argument::Lit(std::move(literal))});
  op.outputs.push_back({name, type, {}});
  function_.ops.push_back(std::move(op));
  return Value{std::move(name), std::move(type)};
}

Value Builder::ConstScalar(std::string name, DType dtype, double value) {
  return Const(std::move(name), ScalarLiteral(dtype, value));
}

Value Builder::ConstInt32Vector(std::string name, absl::Span<const int64_t> values) {
  return Const(std::move(name), Int32VectorLiteral(values));
}

Value Builder::ConstBlob(std::string name, TensorType type, std::string path, uint64_t offset) {
  return Const(std::move(name), BlobLiteral(std::move(type), std::move(path), offset));
}

Value Builder::Conv(std::string name, const Value& x, const Value& weight, int64_t groups) {
  if (!CheckValues({&x, &weight})) return Value{};
  auto type = ConvType(x.type, weight.type, groups);
  if (!type.ok()) return Fail(OpError("conv", name, type.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"dilations", ParamConst(name, "dilations", Int32VectorLiteral({1, 1}))});
  in.push_back({"groups", ParamConst(name, "groups", ScalarLiteral(DType::kInt32, groups))});
  in.push_back({"pad", ParamConst(name, "pad", Int32VectorLiteral({0, 0, 0, 0}))});
  in.push_back({"pad_type", ParamConst(name, "pad_type", StringLiteral("valid"))});
  in.push_back({"strides", ParamConst(name, "strides", Int32VectorLiteral({1, 1}))});
  in.push_back({"weight", Argument::Ref(weight.name)});
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("conv", std::move(name), std::move(in), std::move(*type));
}

Value Builder::Matmul(std::string name, const Value& x, const Value& y, bool transpose_x,
                      bool transpose_y) {
  if (!CheckValues({&x, &y})) return Value{};
  auto type = MatmulType(x.type, y.type, transpose_x, transpose_y);
  if (!type.ok()) return Fail(OpError("matmul", name, type.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back(
      {"transpose_x", ParamConst(name, "transpose_x", ScalarLiteral(DType::kBool, transpose_x))});
  in.push_back(
      {"transpose_y", ParamConst(name, "transpose_y", ScalarLiteral(DType::kBool, transpose_y))});
  in.push_back({"x", Argument::Ref(x.name)});
  in.push_back({"y", Argument::Ref(y.name)});
  return Emit("matmul", std::move(name), std::move(in), std::move(*type));
}

Value Builder::Reshape(std::string name, const Value& x, absl::Span<const int64_t> shape) {
  if (!CheckValues({&x})) return Value{};
  auto type = ReshapeType(x.type, shape);
  if (!type.ok()) return Fail(OpError("reshape", name, type.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"shape", ParamConst(name, "shape", Int32VectorLiteral(shape))});
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("reshape", std::move(name), std::move(in), std::move(*type));
}

Value Builder::Transpose(std::string name, const Value& x, absl::Span<const int64_t> perm) {
  if (!CheckValues({&x})) return Value{};
  auto type = TransposeType(x.type, perm);
  if (!type.ok()) return Fail(OpError("transpose", name, type.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"perm", ParamConst(name, "perm", Int32VectorLiteral(perm))});
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("transpose", std::move(name), std::move(in), std::move(*type));
}

Value Builder::SliceBySize(std::string name, const Value& x, absl::Span<const int64_t> begin,
                           absl::Span<const int64_t> size) {
  if (!CheckValues({&x})) return Value{};
  auto type = SliceType(x.type, begin, size);
  if (!type.ok()) return Fail(OpError("slice_by_size", name, type.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"begin", ParamConst(name, "begin", Int32VectorLiteral(begin))});
  in.push_back({"size", ParamConst(name, "size", Int32VectorLiteral(size))});
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("slice_by_size", std::move(name), std::move(in), std::move(*type));
}

Value Builder::Concat(std::string name, absl::Span<const Value> values, int64_t axis,
                      bool interleave) {
  std::vector<const Value*> ptrs;
  for (const Value& v : values) ptrs.push_back(&v);
  if (!CheckValues(ptrs)) return Value{};
  auto type = ConcatType(values, axis);
  if (!type.ok()) return Fail(OpError("concat", name, type.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Argument> refs;
  for (const Value& v : values) refs.push_back(Argument::Ref(v.name));
  std::vector<Param> in;
  in.push_back({"axis", ParamConst(name, "axis", ScalarLiteral(DType::kInt32, axis))});
  in.push_back(
      {"interleave", ParamConst(name, "interleave", ScalarLiteral(DType::kBool, interleave))});
  in.push_back({"values", Argument::Tuple(std::move(refs))});
  return Emit("concat", std::move(name), std::move(in), std::move(*type));
}

Value Builder::Elementwise(std::string op, std::string name, const Value& x, const Value& y) {
  if (!CheckValues({&x, &y})) return Value{};
  if (x.type.dtype != y.type.dtype) return Fail(OpError(op, name, "x and y dtypes differ"));
  auto shape = Broadcast(x.type.shape, y.type.shape);
  if (!shape.ok()) return Fail(OpError(op, name, shape.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"x", Argument::Ref(x.name)});
  in.push_back({"y", Argument::Ref(y.name)});
  return Emit(std::move(op), std::move(name), std::move(in), TensorType{x.type.dtype, *shape});
}

Value Builder::Add(std::string name, const Value& x, const Value& y) {
  return Elementwise("add", std::move(name), x, y);
}
Value Builder::Sub(std::string name, const Value& x, const Value& y) {
  return Elementwise("sub", std::move(name), x, y);
}
Value Builder::Mul(std::string name, const Value& x, const Value& y) {
  return Elementwise("mul", std::move(name), x, y);
}
Value Builder::RealDiv(std::string name, const Value& x, const Value& y) {
  return Elementwise("real_div", std::move(name), x, y);
}
Value Builder::Pow(std::string name, const Value& x, const Value& y) {
  return Elementwise("pow", std::move(name), x, y);
}

Value Builder::ReduceSum(std::string name, const Value& x, absl::Span<const int64_t> axes,
                         bool keep_dims) {
  if (!CheckValues({&x})) return Value{};
  auto type = ReduceType(x.type, axes, keep_dims);
  if (!type.ok()) return Fail(OpError("reduce_sum", name, type.status().message()));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"axes", ParamConst(name, "axes", Int32VectorLiteral(axes))});
  in.push_back(
      {"keep_dims", ParamConst(name, "keep_dims", ScalarLiteral(DType::kBool, keep_dims))});
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("reduce_sum", std::move(name), std::move(in), std::move(*type));
}

Value Builder::Softmax(std::string name, const Value& x, int64_t axis) {
  if (!CheckValues({&x})) return Value{};
  if (NormalizeAxis(axis, x.type.rank()) < 0) {
    return Fail(OpError("softmax", name, absl::StrCat("axis ", axis, " out of range")));
  }
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"axis", ParamConst(name, "axis", ScalarLiteral(DType::kInt32, axis))});
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("softmax", std::move(name), std::move(in), x.type);
}

Value Builder::Sigmoid(std::string name, const Value& x) {
  if (!CheckValues({&x}) || !CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("sigmoid", std::move(name), std::move(in), x.type);
}

Value Builder::Cast(std::string name, const Value& x, DType dtype) {
  if (!CheckValues({&x})) return Value{};
  if (dtype == DType::kString) return Fail(OpError("cast", name, "cannot cast to string"));
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"dtype", ParamConst(name, "dtype", StringLiteral(std::string(DTypeName(dtype))))});
  in.push_back({"x", Argument::Ref(x.name)});
  return Emit("cast", std::move(name), std::move(in), TensorType{dtype, x.type.shape});
}

Value Builder::Quantize(std::string name, const Value& input, const Value& scale,
                        DType output_dtype) {
  if (!CheckValues({&input, &scale})) return Value{};
  if (!IsFloat(input.type.dtype) || scale.type != TensorType{input.type.dtype, {}} ||
      (output_dtype != DType::kInt8 && output_dtype != DType::kUInt8)) {
    return Fail(
        OpError("quantize", name,
                "needs a float input, a scalar scale of its dtype and an int8/uint8 output"));
  }
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"input", Argument::Ref(input.name)});
  in.push_back({"output_dtype", ParamConst(name, "output_dtype",
                                           StringLiteral(std::string(DTypeName(output_dtype))))});
  in.push_back({"scale", Argument::Ref(scale.name)});
  return Emit("quantize", std::move(name), std::move(in),
              TensorType{output_dtype, input.type.shape});
}

Value Builder::Dequantize(std::string name, const Value& input, const Value& scale) {
  if (!CheckValues({&input, &scale})) return Value{};
  if ((input.type.dtype != DType::kInt8 && input.type.dtype != DType::kUInt8) ||
      !scale.type.is_scalar() || !IsFloat(scale.type.dtype)) {
    return Fail(OpError("dequantize", name, "needs an int8/uint8 input and a float scalar scale"));
  }
  if (!CheckName(name)) return Value{};
  std::vector<Param> in;
  in.push_back({"input", Argument::Ref(input.name)});
  in.push_back({"scale", Argument::Ref(scale.name)});
  return Emit("dequantize", std::move(name), std::move(in),
              TensorType{scale.type.dtype, input.type.shape});
}

Value Builder::ConstexprAffineDequantize(std::string name, const Literal& quantized_data,
                                         const Literal& scale, const Literal& zero_point,
                                         int64_t axis) {
  if (!status_.ok()) return Value{};
  const TensorType& q = quantized_data.type;
  const int64_t ax = NormalizeAxis(axis, q.rank());
  auto fits = [&](const TensorType& t) {
    return t.is_scalar() || (t.rank() == 1 && ax >= 0 && t.shape[0] == q.shape[ax]);
  };
  if ((q.dtype != DType::kInt8 && q.dtype != DType::kUInt8) || ax < 0 ||
      !IsFloat(scale.type.dtype) || zero_point.type.dtype != q.dtype || !fits(scale.type) ||
      !fits(zero_point.type)) {
    return Fail(
        OpError("constexpr_affine_dequantize", name,
                "needs int8/uint8 data, a float scale and a zero point of the data's dtype, "
                "each scalar or per-channel along a valid axis"));
  }
  if (!CheckName(name)) return Value{};
  TensorType type{scale.type.dtype, q.shape};
  Operation op;
  op.op = "constexpr_affine_dequantize";
  op.attributes.push_back({"axis", Argument::Lit(ScalarLiteral(DType::kInt32, axis))});
  op.attributes.push_back({"name", Argument::Lit(StringLiteral(name))});
  op.attributes.push_back({"quantized_data", Argument::Lit(quantized_data)});
  op.attributes.push_back({"scale", Argument::Lit(scale)});
  op.attributes.push_back({"zero_point", Argument::Lit(zero_point)});
  op.outputs.push_back({name, type, {}});
  function_.ops.push_back(std::move(op));
  return Value{std::move(name), std::move(type)};
}

void Builder::Output(const Value& value) {
  if (!CheckValues({&value})) return;
  function_.outputs.push_back(value.name);
}

std::vector<std::pair<std::string, std::string>> SeedBuildInfo() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, value] : kBuildInfo) out.emplace_back(key, value);
  return out;
}

absl::StatusOr<Program> Builder::Finish() const {
  if (!status_.ok()) return status_;
  if (function_.outputs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("builder: function \"", function_.name, "\" has no outputs"));
  }
  Program program;
  program.version = "1.3";
  program.build_info = SeedBuildInfo();
  program.functions.push_back(function_);
  return program;
}

}  // namespace anerd::mil
