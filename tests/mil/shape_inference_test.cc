// Shape/type inference per op, without a Program: OpArgs in, output types out.
#include <string>
#include <vector>

#include "common/mil/op_registry.h"
#include "gtest/gtest.h"

namespace anerd::mil {
namespace {

TensorType T(DType d, std::vector<int64_t> s) { return TensorType{d, std::move(s)}; }
TensorType F16(std::vector<int64_t> s) { return T(DType::kFp16, std::move(s)); }

Literal Ints(std::vector<int64_t> v) {
  Literal l;
  l.type = T(DType::kInt32, {static_cast<int64_t>(v.size())});
  l.values.assign(v.begin(), v.end());
  return l;
}
Literal Scalar(DType d, double v) { return Literal{T(d, {}), {v}, {}, {}}; }
Literal Int(int64_t v) { return Scalar(DType::kInt32, static_cast<double>(v)); }
Literal Bool(bool v) { return Scalar(DType::kBool, v ? 1 : 0); }
Literal Str(std::string s) { return Literal{T(DType::kString, {}), {}, {std::move(s)}, {}}; }
Literal Bools(std::vector<bool> v) {
  Literal l;
  l.type = T(DType::kBool, {static_cast<int64_t>(v.size())});
  for (bool b : v) l.values.push_back(b ? 1 : 0);
  return l;
}

absl::StatusOr<std::vector<TensorType>> Infer(const std::string& op, const OpArgs& args) {
  const OpSpec* spec = DefaultOpRegistry().Find(op);
  if (spec == nullptr) return absl::NotFoundError(op);
  return InferOutputTypes(*spec, args);
}

TensorType InferOne(const std::string& op, const OpArgs& args) {
  auto out = Infer(op, args);
  EXPECT_TRUE(out.ok()) << op << ": " << out.status();
  if (!out.ok() || out->size() != 1) return TensorType{};
  return (*out)[0];
}

std::string InferError(const std::string& op, const OpArgs& args) {
  auto out = Infer(op, args);
  EXPECT_FALSE(out.ok()) << op << " unexpectedly inferred";
  return out.ok() ? "" : std::string(out.status().message());
}

TEST(Registry, KnowsEveryRequiredOp) {
  std::vector<std::string> ops = KnownOps();
  for (const char* op : {"const",
                         "cast",
                         "conv",
                         "matmul",
                         "reshape",
                         "transpose",
                         "slice_by_size",
                         "slice_by_index",
                         "concat",
                         "split",
                         "add",
                         "sub",
                         "mul",
                         "real_div",
                         "maximum",
                         "minimum",
                         "pow",
                         "sqrt",
                         "rsqrt",
                         "exp",
                         "log",
                         "tanh",
                         "sigmoid",
                         "relu",
                         "silu",
                         "gelu",
                         "softmax",
                         "reduce_sum",
                         "reduce_mean",
                         "reduce_max",
                         "layer_norm",
                         "linear",
                         "scaled_dot_product_attention",
                         "quantize",
                         "dequantize",
                         "constexpr_affine_dequantize",
                         "clip",
                         "select",
                         "gather"}) {
    EXPECT_NE(std::find(ops.begin(), ops.end(), op), ops.end()) << op;
  }
  EXPECT_TRUE(std::is_sorted(ops.begin(), ops.end()));
  EXPECT_EQ(&DefaultOpRegistry(), &DefaultOpRegistry());
  EXPECT_EQ(DefaultOpRegistry().Find("nope"), nullptr);
}

TEST(ShapeInference, ConvPadTypesAndGroups) {
  OpArgs a;
  a.SetTensor("x", F16({1, 64, 1, 16}));
  a.SetTensor("weight", F16({128, 64, 1, 1}));
  EXPECT_EQ(InferOne("conv", a), F16({1, 128, 1, 16}));

  OpArgs s;
  s.SetTensor("x", F16({1, 4, 9, 9}));
  s.SetTensor("weight", F16({8, 2, 3, 3}));
  s.SetConst("groups", Int(2));
  s.SetConst("strides", Ints({2, 2}));
  s.SetConst("pad_type", Str("same"));
  EXPECT_EQ(InferOne("conv", s), F16({1, 8, 5, 5}));
  s.SetConst("pad_type", Str("valid"));
  EXPECT_EQ(InferOne("conv", s), F16({1, 8, 4, 4}));
  s.SetConst("pad_type", Str("custom"));
  s.SetConst("pad", Ints({1, 1, 0, 2}));
  s.SetConst("dilations", Ints({1, 2}));
  // H: (9+2-3)/2+1 = 5; W: effective kernel 5, (9+2-5)/2+1 = 4.
  EXPECT_EQ(InferOne("conv", s), F16({1, 8, 5, 4}));
  s.SetConst("groups", Int(3));
  EXPECT_NE(InferError("conv", s).find("input channels per group"), std::string::npos);
  s.SetConst("groups", Int(2));
  s.SetConst("pad_type", Str("full"));
  EXPECT_NE(InferError("conv", s).find("unknown pad_type"), std::string::npos);
}

TEST(ShapeInference, MatmulTransposesAndBroadcast) {
  OpArgs a;
  a.SetTensor("x", F16({1, 12, 256, 64}));
  a.SetTensor("y", F16({1, 12, 256, 64}));
  a.SetConst("transpose_y", Bool(true));
  EXPECT_EQ(InferOne("matmul", a), F16({1, 12, 256, 256}));

  OpArgs b;
  b.SetTensor("x", F16({3, 1, 5, 4}));
  b.SetTensor("y", F16({7, 4, 6}));
  EXPECT_EQ(InferOne("matmul", b), F16({3, 7, 5, 6}));
  b.SetConst("transpose_x", Bool(true));
  EXPECT_NE(InferError("matmul", b).find("inner dimensions differ"), std::string::npos);

  OpArgs v;  // rank-1 operands are promoted then squeezed
  v.SetTensor("x", F16({4}));
  v.SetTensor("y", F16({2, 4, 6}));
  EXPECT_EQ(InferOne("matmul", v), F16({2, 6}));

  OpArgs m;
  m.SetTensor("x", F16({2, 4}));
  m.SetTensor("y", T(DType::kFp32, {4, 2}));
  EXPECT_NE(InferError("matmul", m).find("dtypes differ"), std::string::npos);
}

TEST(ShapeInference, ReshapeMinusOneAndZero) {
  OpArgs a;
  a.SetTensor("x", F16({1, 768, 1, 256}));
  a.SetConst("shape", Ints({1, 12, 64, -1}));
  EXPECT_EQ(InferOne("reshape", a), F16({1, 12, 64, 256}));
  a.SetConst("shape", Ints({0, -1, 0, 256}));
  EXPECT_EQ(InferOne("reshape", a), F16({1, 768, 1, 256}));
  a.SetConst("shape", Ints({5, -1}));
  EXPECT_NE(InferError("reshape", a).find("cannot infer -1"), std::string::npos);
  a.SetConst("shape", Ints({1, 2, 3}));
  EXPECT_NE(InferError("reshape", a).find("196608 elements"), std::string::npos);

  OpArgs runtime;  // the shape must be a constant
  runtime.SetTensor("x", F16({4}));
  runtime.SetTensor("shape", T(DType::kInt32, {2}));
  EXPECT_NE(InferError("reshape", runtime).find("compile-time constant"), std::string::npos);
}

TEST(ShapeInference, TransposeAndSlices) {
  OpArgs t;
  t.SetTensor("x", F16({1, 12, 64, 256}));
  t.SetConst("perm", Ints({0, 1, 3, 2}));
  EXPECT_EQ(InferOne("transpose", t), F16({1, 12, 256, 64}));
  t.SetConst("perm", Ints({0, 1, 1, 2}));
  EXPECT_NE(InferError("transpose", t).find("repeated"), std::string::npos);

  OpArgs s;
  s.SetTensor("x", F16({1, 64, 1, 80}));
  s.SetConst("begin", Ints({0, 0, 0, 16}));
  s.SetConst("size", Ints({1, 64, 1, -1}));
  EXPECT_EQ(InferOne("slice_by_size", s), F16({1, 64, 1, 64}));
  s.SetConst("size", Ints({1, 64, 1, 65}));
  EXPECT_NE(InferError("slice_by_size", s).find("exceeds dim 80"), std::string::npos);

  OpArgs i;
  i.SetTensor("x", F16({4, 10, 6}));
  i.SetConst("begin", Ints({1, -1, 0}));
  i.SetConst("end", Ints({3, 0, 6}));
  i.SetConst("stride", Ints({1, -3, 2}));
  i.SetConst("end_mask", Bools({false, true, false}));
  i.SetConst("squeeze_mask", Bools({false, false, false}));
  // axis 1: from 9 down past 0 by 3 -> 9, 6, 3, 0; axis 2: 0, 2, 4.
  EXPECT_EQ(InferOne("slice_by_index", i), F16({2, 4, 3}));
  i.SetConst("squeeze_mask", Bools({false, false, true}));
  EXPECT_EQ(InferOne("slice_by_index", i), F16({2, 4}));
  i.SetConst("stride", Ints({1, 0, 2}));
  EXPECT_NE(InferError("slice_by_index", i).find("stride 0"), std::string::npos);
}

TEST(ShapeInference, ConcatAndSplit) {
  OpArgs c;
  c.SetTuple("values", {F16({1, 2, 8, 32}), F16({1, 2, 8, 32})});
  c.SetConst("axis", Int(3));
  EXPECT_EQ(InferOne("concat", c), F16({1, 2, 8, 64}));
  c.SetConst("interleave", Bool(true));
  EXPECT_EQ(InferOne("concat", c), F16({1, 2, 8, 64}));
  c.SetTuple("values", {F16({1, 2, 8, 32}), F16({1, 2, 8, 16})});
  EXPECT_NE(InferError("concat", c).find("interleave"), std::string::npos);
  c.SetTensor("values", F16({1, 2}));
  EXPECT_NE(InferError("concat", c).find("must be a tuple"), std::string::npos);

  OpArgs s;
  s.SetTensor("x", F16({1, 96, 1, 8}));
  s.SetConst("axis", Int(1));
  s.SetConst("split_sizes", Ints({32, 64}));
  auto out = Infer("split", s);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, (std::vector<TensorType>{F16({1, 32, 1, 8}), F16({1, 64, 1, 8})}));
  s.SetConst("num_splits", Int(3));
  EXPECT_NE(InferError("split", s).find("exactly one"), std::string::npos);
}

TEST(ShapeInference, ElementwiseBroadcastAndUnary) {
  OpArgs a;
  a.SetTensor("x", F16({1, 12, 256, 256}));
  a.SetTensor("y", F16({1, 1, 256, 256}));
  for (const char* op : {"add", "sub", "mul", "real_div", "maximum", "minimum", "pow"}) {
    EXPECT_EQ(InferOne(op, a), F16({1, 12, 256, 256})) << op;
  }
  OpArgs s;  // scalar - tensor
  s.SetConst("x", Scalar(DType::kFp16, 1));
  s.SetTensor("y", F16({1, 64, 1, 16}));
  EXPECT_EQ(InferOne("sub", s), F16({1, 64, 1, 16}));

  OpArgs u;
  u.SetTensor("x", F16({2, 3}));
  for (const char* op :
       {"sqrt", "exp", "tanh", "sigmoid", "relu", "silu", "gelu", "rsqrt", "log", "softmax"}) {
    EXPECT_EQ(InferOne(op, u), F16({2, 3})) << op;
  }
  u.SetConst("epsilon", Int(1));
  EXPECT_NE(InferError("rsqrt", u).find("epsilon"), std::string::npos);

  OpArgs i;
  i.SetTensor("x", T(DType::kInt32, {2}));
  EXPECT_NE(InferError("sigmoid", i).find("expected fp16/fp32"), std::string::npos);
}

TEST(ShapeInference, ReductionsAndNorms) {
  OpArgs r;
  r.SetTensor("x", F16({1, 64, 1, 16}));
  r.SetConst("axes", Ints({1}));
  r.SetConst("keep_dims", Bool(true));
  EXPECT_EQ(InferOne("reduce_sum", r), F16({1, 1, 1, 16}));
  r.SetConst("keep_dims", Bool(false));
  EXPECT_EQ(InferOne("reduce_mean", r), F16({1, 1, 16}));
  r.SetConst("axes", Ints({-1, 0}));
  EXPECT_EQ(InferOne("reduce_max", r), F16({64, 1}));

  OpArgs l;
  l.SetTensor("x", F16({2, 5, 8}));
  l.SetConst("axes", Ints({-1}));
  l.SetTensor("gamma", F16({8}));
  l.SetTensor("beta", F16({8}));
  EXPECT_EQ(InferOne("layer_norm", l), F16({2, 5, 8}));
  l.SetTensor("gamma", F16({5}));
  EXPECT_NE(InferError("layer_norm", l).find("gamma must be [8]"), std::string::npos);
}

TEST(ShapeInference, LinearAttentionGatherSelectClip) {
  OpArgs l;
  l.SetTensor("x", F16({3, 7, 16}));
  l.SetTensor("weight", F16({32, 16}));
  l.SetTensor("bias", F16({32}));
  EXPECT_EQ(InferOne("linear", l), F16({3, 7, 32}));

  OpArgs a;
  a.SetTensor("query", F16({1, 4, 8, 16}));
  a.SetTensor("key", F16({1, 4, 10, 16}));
  a.SetTensor("value", F16({1, 4, 10, 24}));
  EXPECT_EQ(InferOne("scaled_dot_product_attention", a), F16({1, 4, 8, 24}));
  a.SetTensor("attn_mask", T(DType::kBool, {8, 10}));
  EXPECT_EQ(InferOne("scaled_dot_product_attention", a), F16({1, 4, 8, 24}));
  a.SetTensor("attn_mask", F16({8, 8}));
  EXPECT_NE(InferError("scaled_dot_product_attention", a).find("broadcast"), std::string::npos);

  OpArgs g;
  g.SetTensor("x", F16({2, 5, 7}));
  g.SetTensor("indices", T(DType::kInt32, {2, 3}));
  g.SetConst("axis", Int(1));
  g.SetConst("batch_dims", Int(1));
  EXPECT_EQ(InferOne("gather", g), F16({2, 3, 7}));
  g.SetConst("batch_dims", Int(0));
  EXPECT_EQ(InferOne("gather", g), F16({2, 2, 3, 7}));

  OpArgs s;
  s.SetTensor("cond", T(DType::kBool, {4, 1}));
  s.SetTensor("a", F16({1, 6}));
  s.SetConst("b", Scalar(DType::kFp16, 0));
  EXPECT_EQ(InferOne("select", s), F16({4, 6}));

  OpArgs c;
  c.SetTensor("x", F16({3}));
  c.SetConst("alpha", Scalar(DType::kFp16, 2));
  c.SetConst("beta", Scalar(DType::kFp16, 1));
  EXPECT_NE(InferError("clip", c).find("alpha"), std::string::npos);
}

TEST(ShapeInference, CastAndQuantization) {
  OpArgs c;
  c.SetTensor("x", F16({2, 3}));
  c.SetConst("dtype", Str("fp32"));
  EXPECT_EQ(InferOne("cast", c), T(DType::kFp32, {2, 3}));
  c.SetConst("dtype", Str("fp64"));
  EXPECT_NE(InferError("cast", c).find("unsupported dtype"), std::string::npos);

  OpArgs q;
  q.SetTensor("input", F16({4, 8}));
  q.SetConst("scale", Scalar(DType::kFp16, 0.5));
  q.SetConst("output_dtype", Str("int8"));
  EXPECT_EQ(InferOne("quantize", q), T(DType::kInt8, {4, 8}));

  OpArgs d;
  d.SetTensor("input", T(DType::kInt8, {4, 8}));
  d.SetConst("scale", Literal{F16({4}), {1, 2, 3, 4}, {}, {}});
  d.SetConst("axis", Int(0));
  EXPECT_EQ(InferOne("dequantize", d), F16({4, 8}));
  d.SetConst("axis", Int(1));
  EXPECT_NE(InferError("dequantize", d).find("'scale' has 4 entries"), std::string::npos);

  OpArgs k;
  Literal blob;
  blob.type = T(DType::kInt8, {64, 64, 1, 1});
  blob.blob = BlobRef{"@model_path/weights/w.bin", 64};
  k.SetConst("quantized_data", blob);
  k.SetConst("scale", Scalar(DType::kFp16, 0.125));
  k.SetConst("zero_point", Scalar(DType::kInt8, 0));
  k.SetConst("axis", Int(0));
  EXPECT_EQ(InferOne("constexpr_affine_dequantize", k), F16({64, 64, 1, 1}));
  k.SetTensor("quantized_data", T(DType::kInt8, {64, 64, 1, 1}));
  EXPECT_NE(InferError("constexpr_affine_dequantize", k).find("compile-time constant"),
            std::string::npos);
}

TEST(ShapeInference, GenericSignatureChecks) {
  OpArgs a;
  a.SetTensor("x", F16({2}));
  EXPECT_NE(InferError("add", a).find("missing required parameter 'y'"), std::string::npos);
  a.SetTensor("y", F16({2}));
  a.SetTensor("z", F16({2}));
  EXPECT_NE(InferError("add", a).find("unknown parameter 'z'"), std::string::npos);
}

TEST(ShapeHelpers, BroadcastAndAxis) {
  auto b = BroadcastShapes({5, 1, 3}, {4, 1});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<int64_t>{5, 4, 3}));
  EXPECT_FALSE(BroadcastShapes({2}, {3}).ok());
  EXPECT_EQ(*NormalizeAxis(-1, 4), 3);
  EXPECT_FALSE(NormalizeAxis(4, 4).ok());
  EXPECT_FALSE(NormalizeAxis(-5, 4).ok());
}

}  // namespace
}  // namespace anerd::mil
