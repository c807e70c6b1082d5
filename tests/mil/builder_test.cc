// Builder: output types, errors, the seed's program form, and print -> parse -> verify.
#include "common/mil/builder.h"

#include <string>
#include <vector>

#include "common/mil/blob_writer.h"
#include "common/mil/parser.h"
#include "common/mil/printer.h"
#include "common/mil/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::mil {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TensorType F16(std::vector<int64_t> shape) { return TensorType{DType::kFp16, std::move(shape)}; }

const Operation* FindOp(const Program& p, absl::string_view out) {
  for (const Operation& op : p.main()->ops) {
    if (!op.outputs.empty() && op.outputs[0].name == out) return &op;
  }
  return nullptr;
}

std::vector<std::string> InputNames(const Operation& op) {
  std::vector<std::string> names;
  for (const NamedArgument& a : op.inputs) names.push_back(a.name);
  return names;
}

TEST(BuilderTest, ComputesOutputTypes) {
  Builder b;
  Value x = b.Input("x", F16({1, 64, 1, 16}));
  Value w = b.ConstBlob("w", F16({32, 64, 1, 1}), "@model_path/weights/w.bin", 64);
  EXPECT_EQ(b.Conv("c", x, w).type, F16({1, 32, 1, 16}));
  Value g = b.ConstBlob("wg", F16({64, 16, 1, 1}), "@model_path/weights/w.bin", 64);
  EXPECT_EQ(b.Conv("cg", x, g, 4).type, F16({1, 64, 1, 16}));
  Value r = b.Reshape("r", x, {1, 4, 16, 16});
  EXPECT_EQ(r.type, F16({1, 4, 16, 16}));
  Value t = b.Transpose("t", r, {0, 1, 3, 2});
  EXPECT_EQ(b.Matmul("mm", r, t, false, true).type, F16({1, 4, 16, 16}));
  Value a = b.Reshape("a", x, {1, 1, 16, 64});
  EXPECT_EQ(b.Matmul("bm", a, r, /*transpose_x=*/true).type, F16({1, 4, 64, 16}));
  EXPECT_EQ(b.SliceBySize("s", x, {0, 8, 0, 4}, {1, 16, 1, -1}).type, F16({1, 16, 1, 12}));
  Value sc = b.ConstFp16("scale", 0.5);
  EXPECT_EQ(sc.type, F16({}));
  EXPECT_EQ(b.Mul("m", x, sc).type, F16({1, 64, 1, 16}));
  Value row = b.SliceBySize("row", x, {0, 0, 0, 0}, {1, 1, 1, 16});
  EXPECT_EQ(b.Add("bc", x, row).type, F16({1, 64, 1, 16}));
  EXPECT_EQ(b.ReduceSum("rs", x, {1}).type, F16({1, 1, 1, 16}));
  EXPECT_EQ(b.ReduceSum("rs2", x, {-1}, false).type, F16({1, 64, 1}));
  EXPECT_EQ(b.Concat("cat", {x, row, x}, 1).type, F16({1, 129, 1, 16}));
  EXPECT_EQ(b.Softmax("sm", x, -1).type, x.type);
  EXPECT_EQ(b.Cast("f32", x, DType::kFp32).type, (TensorType{DType::kFp32, {1, 64, 1, 16}}));
  Value q = b.Quantize("q", x, sc, DType::kInt8);
  EXPECT_EQ(q.type, (TensorType{DType::kInt8, {1, 64, 1, 16}}));
  EXPECT_EQ(b.Dequantize("dq", q, sc).type, x.type);
  Value cw = b.ConstexprAffineDequantize(
      "cw", BlobLiteral(TensorType{DType::kInt8, {32, 64, 1, 1}}, "@model_path/weights/q.bin", 64),
      ScalarLiteral(DType::kFp16, 0.125), ScalarLiteral(DType::kInt8, 0), 0);
  EXPECT_EQ(cw.type, F16({32, 64, 1, 1}));
  b.Output(b.Conv("y", x, cw));
  ASSERT_TRUE(b.Finish().ok()) << b.status();
}

TEST(BuilderTest, WritesTheSeedProgramForm) {
  Builder b;
  Value x = b.Input("x", F16({1, 64, 1, 16}));
  Value w = b.ConstBlob("w", F16({32, 64, 1, 1}), "@model_path/weights/w.bin", 64);
  b.Output(b.Conv("y", x, w));
  auto p = b.Finish();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->version, "1.3");
  ASSERT_EQ(p->build_info.size(), 4u);
  EXPECT_EQ(p->build_info[0].first, "coremlc-component-MIL");
  EXPECT_EQ(p->main()->opset, "ios18");
  const Operation* conv = FindOp(*p, "y");
  ASSERT_NE(conv, nullptr);
  EXPECT_THAT(InputNames(*conv),
              ElementsAre("dilations", "groups", "pad", "pad_type", "strides", "weight", "x"));
  ASSERT_NE(FindOp(*p, "y_pad_type"), nullptr);
  EXPECT_EQ(FindOp(*p, "y_pad_type")->op, "const");
  const std::string text = PrintProgram(*p);
  EXPECT_THAT(
      text,
      StartsWith("program(1.3)\n[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", "
                 "\"3510.2.1\"}, {\"coremlc-version\", \"3505.4.1\"}, "
                 "{\"coremltools-component-milinternal\", \"\"}, {\"coremltools-version\", "
                 "\"9.0\"}})]\n{\n"));
  EXPECT_THAT(text, HasSubstr("func main<ios18>("));
}

TEST(BuilderTest, RoundsFloatLiteralsToTheirDtype) {
  Builder b;
  b.ConstFp16("third", 1.0 / 3.0);
  Literal lit = ScalarLiteral(DType::kFp16, 1.0 / 768.0);
  EXPECT_EQ(lit.values[0], 0.0013017654418945312);  // nearest fp16, not the %f-truncated 0.001302
  EXPECT_EQ(ScalarLiteral(DType::kInt32, 7).values[0], 7.0);
}

TEST(BuilderTest, PrintsParsesAndVerifies) {
  BlobWriter writer;
  std::vector<float> wf(32 * 64, 0.01f);
  const uint64_t off = writer.AddFp16(wf);
  std::vector<int8_t> wq(32 * 64, 3);
  const uint64_t qoff = writer.AddInt8(wq);
  WeightFiles files;
  ASSERT_TRUE(files.Add("w.bin", std::move(writer).Release()).ok());

  Builder b;
  Value x = b.Input("x", F16({1, 64, 1, 16}));
  Value w = b.ConstBlob("w", F16({32, 64, 1, 1}), "@model_path/weights/w.bin", off);
  Value cw = b.ConstexprAffineDequantize(
      "cw",
      BlobLiteral(TensorType{DType::kInt8, {32, 64, 1, 1}}, "@model_path/weights/w.bin", qoff),
      ScalarLiteral(DType::kFp16, 0.125), ScalarLiteral(DType::kInt8, 0), 0);
  Value y1 = b.Conv("y1", x, w);
  Value y2 = b.Conv("y2", x, cw);
  Value sum = b.Add("sum", y1, y2);
  Value r = b.Reshape("r", sum, {1, 1, 32, 16});
  Value mm = b.Matmul("mm", r, r, /*transpose_x=*/true, /*transpose_y=*/false);
  Value sm = b.Softmax("sm", mm, -1);
  Value ssq = b.ReduceSum("ssq", b.Mul("sq", sm, sm), {-1});
  Value p = b.Pow("p", ssq, b.ConstFp16("mhalf", -0.5));
  Value sl = b.SliceBySize("sl", sm, {0, 0, 0, 0}, {1, 1, 16, 8});
  b.Output(b.Concat("cat", {sl, b.Sigmoid("sg", sl)}, 3));
  b.Output(b.Cast("p32", p, DType::kFp32));
  auto program = b.Finish();
  ASSERT_TRUE(program.ok()) << program.status();

  auto reparsed = ParseProgram(PrintProgram(*program));
  ASSERT_TRUE(reparsed.ok()) << reparsed.status();
  EXPECT_TRUE(*reparsed == *program);
  auto verified = VerifyProgram(*program, files);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->warnings().empty());
}

TEST(BuilderTest, ReportsTheFirstError) {
  Builder b;
  Value x = b.Input("x", F16({1, 64, 1, 16}));
  Value w = b.ConstBlob("w", F16({32, 48, 1, 1}), "@model_path/weights/w.bin", 64);
  Value bad = b.Conv("c", x, w);
  EXPECT_FALSE(bad.valid());
  Value later = b.Reshape("r", x, {1, 7, 1, 1});  // also wrong, but not reported
  EXPECT_FALSE(later.valid());
  b.Output(bad);
  auto p = b.Finish();
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("conv \"c\""));
}

// Each lambda makes one mistake; Finish must fail naming it.
TEST(BuilderTest, RejectsShapeMismatches) {
  struct Case {
    const char* what;
    void (*build)(Builder* b, const Value& x);
  };
  const Case cases[] = {
      {"inner dimensions", [](Builder* b, const Value& x) { b->Output(b->Matmul("m", x, x)); }},
      {"cannot reshape",
       [](Builder* b, const Value& x) {
         b->Output(b->Reshape("r", x, {1, 3}));
       }},
      {"not a permutation",
       [](Builder* b, const Value& x) {
         b->Output(b->Transpose("t", x, {0, 1, 1, 2}));
       }},
      {"outside",
       [](Builder* b, const Value& x) {
         b->Output(b->SliceBySize("s", x, {0, 60, 0, 0}, {1, 8, 1, 16}));
       }},
      {"broadcast",
       [](Builder* b, const Value& x) {
         Value y = b->SliceBySize("s", x, {0, 0, 0, 0}, {1, 2, 1, 16});
         b->Output(b->Add("a", x, y));
       }},
      {"does not match",
       [](Builder* b, const Value& x) {
         Value y = b->Reshape("r", x, {1, 16, 64, 1});
         b->Output(b->Concat("c", {x, y}, 1));
       }},
      {"defined twice", [](Builder* b, const Value& x) { b->Output(b->Sigmoid("x", x)); }},
      {"not a valid name", [](Builder* b, const Value& x) { b->Output(b->Sigmoid("1y", x)); }},
      {"bad axes", [](Builder* b, const Value& x) { b->Output(b->ReduceSum("r", x, {4})); }},
      {"no outputs", [](Builder* b, const Value& x) { b->Sigmoid("s", x); }},
      {"invalid", [](Builder* b, const Value& x) { b->Output(b->Sigmoid("s", Value{})); }},
  };
  for (const Case& c : cases) {
    Builder b;
    Value x = b.Input("x", F16({1, 64, 1, 16}));
    c.build(&b, x);
    auto p = b.Finish();
    ASSERT_FALSE(p.ok()) << c.what;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.what));
  }
}

}  // namespace
}  // namespace anerd::mil
