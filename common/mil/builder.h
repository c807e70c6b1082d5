// Builder: programmatic construction of MIL Programs (ir.h) in the form coremltools writes them.
//
//   Builder b("main", "ios18");
//   Value x = b.Input("x", {DType::kFp16, {1, 64, 1, 16}});
//   Value w = b.ConstBlob("W", {DType::kFp16, {32, 64, 1, 1}}, "@model_path/weights/w.bin", 64);
//   Value y = b.Conv("y", x, w);
//   b.Output(y);
//   absl::StatusOr<Program> program = b.Finish();
//
// Each op method takes the output's name first, computes the output type itself (static shapes;
// the rules are the coremltools iOS18 semantics the verifier also checks) and returns a Value
// handle. Non-tensor parameters (axes, perms, flags, conv settings) become their own named `const`
// ops called "<name>_<param>", as coremltools emits them; op parameters are written in alphabetical
// order. The first error (bad shape, duplicate or malformed name, use of an invalid Value) is
// remembered; later calls return invalid Values and Finish() returns that error.
// Generated programs carry the literal header of docs/ANE_NOTES.md §3.1 (program(1.3), its
// buildInfo). fp16/fp32 literal values are rounded to their dtype when created. Thread-safety: none
// (a Builder is used by one thread).
#ifndef ANERD_COMMON_MIL_BUILDER_H_
#define ANERD_COMMON_MIL_BUILDER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/mil/ir.h"

namespace anerd::mil {

// The `buildInfo` dictionary the seed, Orion and Espresso emit on every program
// (docs/ANE_NOTES.md §3.1).
std::vector<std::pair<std::string, std::string>> SeedBuildInfo();

// A named value in the function being built. Invalid (empty name) after an error.
struct Value {
  std::string name;
  TensorType type;
  bool valid() const { return !name.empty(); }
};

// Literal constructors (values rounded to the dtype for fp16/fp32).
Literal ScalarLiteral(DType dtype, double value);
Literal StringLiteral(std::string value);
Literal TensorLiteral(TensorType type, std::vector<double> values);
Literal Int32VectorLiteral(absl::Span<const int64_t> values);
Literal BlobLiteral(TensorType type, std::string path, uint64_t offset);

class Builder {
 public:
  explicit Builder(std::string function_name = "main", std::string opset = "ios18");

  Value Input(std::string name, TensorType type);

  // Constants.
  Value Const(std::string name, Literal literal);
  Value ConstScalar(std::string name, DType dtype, double value);
  Value ConstFp16(std::string name, double value) {
    return ConstScalar(std::move(name), DType::kFp16, value);
  }
  Value ConstInt32Vector(std::string name, absl::Span<const int64_t> values);
  // A tensor stored in a weight file; `offset` is the entry's metadata offset.
  Value ConstBlob(std::string name, TensorType type, std::string path, uint64_t offset);

  // 1×1-style convolution (valid padding, stride 1, dilation 1): x [N,C,H,W], weight
  // [OC, C/groups, KH, KW] -> [N, OC, H-KH+1, W-KW+1].
  Value Conv(std::string name, const Value& x, const Value& weight, int64_t groups = 1);
  // Batched matmul over the last two axes (leading dims broadcast), optional transposes.
  Value Matmul(std::string name, const Value& x, const Value& y, bool transpose_x = false,
               bool transpose_y = false);
  Value Reshape(std::string name, const Value& x, absl::Span<const int64_t> shape);
  Value Transpose(std::string name, const Value& x, absl::Span<const int64_t> perm);
  // size -1 means "to the end of that axis".
  Value SliceBySize(std::string name, const Value& x, absl::Span<const int64_t> begin,
                    absl::Span<const int64_t> size);
  Value Concat(std::string name, absl::Span<const Value> values, int64_t axis,
               bool interleave = false);

  // Elementwise with NumPy broadcasting; both operands have the same dtype.
  Value Add(std::string name, const Value& x, const Value& y);
  Value Sub(std::string name, const Value& x, const Value& y);
  Value Mul(std::string name, const Value& x, const Value& y);
  Value RealDiv(std::string name, const Value& x, const Value& y);
  Value Pow(std::string name, const Value& x, const Value& y);

  Value ReduceSum(std::string name, const Value& x, absl::Span<const int64_t> axes,
                  bool keep_dims = true);
  Value Softmax(std::string name, const Value& x, int64_t axis);
  Value Sigmoid(std::string name, const Value& x);
  Value Cast(std::string name, const Value& x, DType dtype);

  // quantize(input, output_dtype, scale): fp -> int8/uint8, zero point 0. `scale` is a scalar of
  // the input's dtype.
  Value Quantize(std::string name, const Value& input, const Value& scale, DType output_dtype);
  // dequantize(input, scale): int8/uint8 -> the scale's dtype.
  Value Dequantize(std::string name, const Value& input, const Value& scale);
  // constexpr_affine_dequantize with every operand inline in the attribute list:
  // out = (quantized_data - zero_point) * scale along `axis`, typed like `scale`. `scale` and
  // `zero_point` are scalars or rank-1 tensors of length quantized_data.shape[axis].
  Value ConstexprAffineDequantize(std::string name, const Literal& quantized_data,
                                  const Literal& scale, const Literal& zero_point, int64_t axis);

  // Appends a function output (in call order).
  void Output(const Value& value);

  // The program (version 1.3, the seed's buildInfo, one function). Fails with the first error,
  // or if no outputs were declared.
  absl::StatusOr<Program> Finish() const;

  const absl::Status& status() const { return status_; }

 private:
  struct Param {
    std::string name;
    Argument value;
  };
  // Records `status` if it is the first error; returns an invalid Value.
  Value Fail(absl::Status status);
  bool CheckName(const std::string& name);
  bool CheckValues(absl::Span<const Value* const> values);
  // A const op "<op_name>_<param>" holding `literal`; returns a reference to it.
  Argument ParamConst(const std::string& op_name, const std::string& param, Literal literal);
  // Appends `op` with its inputs sorted by name and [name = string(out)] and returns the output.
  Value Emit(std::string op, std::string out, std::vector<Param> inputs, TensorType type);
  Value Elementwise(std::string op, std::string name, const Value& x, const Value& y);

  Function function_;
  absl::flat_hash_set<std::string> names_;
  absl::Status status_;
};

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_BUILDER_H_
