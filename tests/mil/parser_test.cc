// Parser and printer: the round-trip table (every op and syntax form), literal decoding, exact
// float printing, located errors and input bounds.
#include "common/mil/parser.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/mil/op_registry.h"
#include "common/mil/printer.h"
#include "gtest/gtest.h"
#include "tests/mil/mil_test_util.h"

namespace anerd::mil {
namespace {

std::string Wrap(const std::string& statements) {
  return absl::StrCat("program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4]> x) {\n",
                      statements, "\n    } -> (x);\n}\n");
}

// One statement per op (operands in every position) and per syntax form; parse-only, so types
// need not verify here (the valid corpus covers verification).
const char* const kRoundTripTable[] = {
    "fp16 c = const()[name = string(\"c\"), val = fp16(0x1p-3)];",
    "tensor<fp32, [1, 4]> y = cast(x = x, dtype = string(\"fp32\"))[name = string(\"y\")];",
    "tensor<fp16, [1, 8, 1, 4]> y = conv(dilations = dl, groups = int32(1), pad = pd, pad_type = "
    "string(\"valid\"), strides = st, weight = W, x = x)[name = string(\"y\")];",
    "tensor<fp16, [1, 1]> y = matmul(x = x, y = x, transpose_y = true, transpose_x = "
    "false)[name = string(\"y\")];",
    "tensor<fp16, [4]> y = reshape(shape = tensor<int32, [1]>([-1]), x = x);",
    "tensor<fp16, [4, 1]> y = transpose(perm = tensor<int32, [2]>([1,0]), x = x);",
    "tensor<fp16, [1, 2]> y = slice_by_size(x = x, begin = tensor<int32, [2]>([0, 2]), size = "
    "tensor<int32, [2]>([1, -1]));",
    "tensor<fp16, [1, 2]> y = slice_by_index(x = x, begin = b, end = e, stride = s, begin_mask = "
    "tensor<bool, [2]>([true, false]), end_mask = m, squeeze_mask = m);",
    "tensor<fp16, [1, 8]> y = concat(axis = int32(-1), interleave = bool(true), values = (x, "
    "x));",
    "tensor<fp16, [1, 4]> y = concat(axis = int32(0), values = (x));",
    "tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b = split(x = x, num_splits = int32(2), axis = "
    "int32(1));",
    "tensor<fp16, [1, 1]> a, tensor<fp16, [1, 3]> b = split(x = x, split_sizes = tensor<int32, "
    "[2]>([1, 3]), axis = int32(1));",
    "tensor<fp16, [1, 4]> y = add(x = x, y = fp16(-1));",
    "tensor<fp16, [1, 4]> y = sub(x = fp16(1), y = x);",
    "tensor<fp16, [1, 4]> y = mul(x = x, y = fp16(0.001302));",
    "tensor<fp16, [1, 4]> y = real_div(x = x, y = fp16(3));",
    "tensor<fp16, [1, 4]> y = maximum(x = x, y = fp16(-inf));",
    "tensor<fp16, [1, 4]> y = minimum(x = x, y = fp16(inf));",
    "tensor<fp16, [1, 4]> y = pow(x = x, y = fp16(-0.5));",
    "tensor<fp16, [1, 4]> y = sqrt(x = x);",
    "tensor<fp16, [1, 4]> y = rsqrt(x = x, epsilon = fp16(1e-5));",
    "tensor<fp16, [1, 4]> y = exp(x = x);",
    "tensor<fp16, [1, 4]> y = log(x = x, epsilon = fp16(0x1p-24));",
    "tensor<fp16, [1, 4]> y = tanh(x = x);",
    "tensor<fp16, [1, 4]> y = sigmoid(x = x);",
    "tensor<fp16, [1, 4]> y = relu(x = x);",
    "tensor<fp16, [1, 4]> y = silu(x = x);",
    "tensor<fp16, [1, 4]> y = gelu(x = x, mode = string(\"EXACT\"));",
    "tensor<fp16, [1, 4]> y = softmax(x = x, axis = int32(-1));",
    "tensor<fp16, [1, 1]> y = reduce_sum(x = x, axes = tensor<int32, [1]>([1]), keep_dims = "
    "true);",
    "tensor<fp16, [1]> y = reduce_mean(x = x, axes = tensor<int32, [1]>([-1]));",
    "fp16 y = reduce_max(x = x);",
    "tensor<fp16, [1, 4]> y = layer_norm(x = x, axes = tensor<int32, [1]>([1]), gamma = g, beta "
    "= b, epsilon = fp16(0.00001));",
    "tensor<fp16, [1, 2]> y = linear(x = x, weight = w, bias = tensor<fp16, [2]>([0.5, -0.25]));",
    "tensor<fp16, [1, 1, 4]> y = scaled_dot_product_attention(query = q, key = k, value = v, "
    "attn_mask = m);",
    "tensor<int8, [1, 4]> y = quantize(input = x, output_dtype = string(\"int8\"), scale = "
    "fp16(0.5), zero_point = int8(-3));",
    "tensor<fp16, [1, 4]> y = dequantize(input = q, scale = fp16(0.5), zero_point = "
    "int8(-128));",
    "tensor<fp16, [8, 8, 1, 1]> W = constexpr_affine_dequantize()[axis = int32(0), name = "
    "string(\"W\"), quantized_data = tensor<int8, [8, 8, 1, 1]>(BLOBFILE(path = "
    "string(\"@model_path/weights/w.bin\"), offset = uint64(64))), scale = fp16(0x1p-3), "
    "zero_point = int8(0)];",
    "tensor<fp16, [1, 4]> y = clip(x = x, alpha = fp16(-6), beta = fp16(6));",
    "tensor<fp16, [1, 4]> y = select(cond = c, a = x, b = fp16(0));",
    "tensor<fp16, [1, 2]> y = gather(x = x, indices = tensor<int32, [2]>([0, 3]), axis = "
    "int32(1), batch_dims = int32(0));",
    // Syntax forms.
    "tensor<string, []> s = const()[name = tensor<string, []>(\"s\"), val = tensor<string, "
    "[]>(\"valid\")];",
    "string s = const()[val = string(\"q\\\"uote\\\\ \\n\\t\\r \\x7f \\x01 \xc3\xa9\")];",
    "tensor<int32, [2, 2]> t = const()[val = tensor<int32, [2, 2]>([[1, -2], [3, 4]])];",
    "tensor<fp32, [5]> t = const()[val = tensor<fp32, [5]>([1.5e-45, -0, 3.4028234663852886e38, "
    "nan, 0.1])];",
    "tensor<bool, [3]> t = const()[val = tensor<bool, [3]>([true,false,true])];",
    "tensor<string, [2]> t = const()[val = tensor<string, [2]>([\"a\", \"\"])];",
    "uint64 u = const()[val = uint64(9007199254740991)];",
    "tensor<uint8, [2]> u = const()[val = tensor<uint8, [2]>([0, 255])];",
    "tensor<int16, [2]> u = const()[val = tensor<int16, [2]>([-32768, 32767])];",
    "tensor<fp16, [1]> w = const()[val = tensor<fp16, [1]>(BLOBFILE(offset = uint64(128), path "
    "= string(\"@model_path/weights/a.bin\")))];",
    "fp16 w = const()[val = tensor<fp16, []>(BLOBFILE(path = string(\"w.bin\"), offset = "
    "uint64(0)))];",
    "tensor<int32, [0]> e = const()[val = tensor<int32, [0]>([])];",
    "tensor<fp16, [1, 4]> y = identity_like_unknown_op(x = ((x, (x)), ()));",
    "tensor<fp16, [1, 4]> y = relu(x = x)[];",
};

TEST(RoundTrip, TableParsesPrintsAndReparsesEqual) {
  for (const char* statement : kRoundTripTable) {
    SCOPED_TRACE(statement);
    auto program = ParseProgram(Wrap(statement));
    ASSERT_TRUE(program.ok()) << program.status();
    std::string printed = PrintProgram(*program);
    auto reparsed = ParseProgram(printed);
    ASSERT_TRUE(reparsed.ok()) << reparsed.status() << "\n" << printed;
    EXPECT_TRUE(*reparsed == *program) << printed;
    EXPECT_EQ(PrintProgram(*reparsed), printed);
  }
}

TEST(RoundTrip, TableAndCorpusCoverEveryRegisteredOp) {
  std::set<std::string> used;
  auto collect = [&used](const Program& p) {
    for (const Function& fn : p.functions) {
      for (const Operation& op : fn.ops) used.insert(op.op);
    }
  };
  for (const char* statement : kRoundTripTable) collect(*ParseProgram(Wrap(statement)));
  for (const std::string& path : testing::CorpusFiles("valid")) {
    auto p = ParseProgram(testing::ReadFile(path));
    ASSERT_TRUE(p.ok()) << path << ": " << p.status();
    collect(*p);
  }
  for (const std::string& op : KnownOps()) EXPECT_TRUE(used.count(op)) << op << " not covered";
}

const Literal& ConstVal(const Program& p, int index = 0) {
  return p.main()->ops[index].FindAttribute("val")->literal;
}

TEST(Parser, HeaderBuildInfoAndFunctions) {
  auto p = ParseProgram(testing::ReadFile(std::string(ANERD_SOURCE_DIR) +
                                          "/tests/mil/valid/seed_header_rmsnorm.mil"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->version, "1.3");
  ASSERT_EQ(p->build_info.size(), 4u);
  EXPECT_EQ(p->build_info[0],
            (std::pair<std::string, std::string>{"coremlc-component-MIL", "3510.2.1"}));
  EXPECT_EQ(p->build_info[2].second, "");
  ASSERT_NE(p->main(), nullptr);
  EXPECT_EQ(p->main()->opset, "ios18");
  EXPECT_EQ(p->main()->inputs[0].type, (TensorType{DType::kFp16, {1, 64, 1, 16}}));
  EXPECT_EQ(p->main()->outputs, std::vector<std::string>{"out"});
  // The seed's literal header re-prints byte for byte.
  std::string printed = PrintProgram(*p);
  EXPECT_EQ(printed.substr(0, printed.find("\n{\n") + 3),
            "program(1.3)\n[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", "
            "\"3510.2.1\"}, {\"coremlc-version\", \"3505.4.1\"}, "
            "{\"coremltools-component-milinternal\", \"\"}, {\"coremltools-version\", "
            "\"9.0\"}})]\n{\n");
}

TEST(Parser, LiteralValues) {
  auto p =
      ParseProgram(Wrap("fp16 a = const()[val = fp16(0x1p-3)];\n"
                        "fp16 b = const()[val = fp16(0.001302)];\n"
                        "tensor<int32, [3]> c = const()[val = tensor<int32, [3]>([0,-1 , 7])];\n"
                        "string d = const()[val = string(\"a\\\"b\\\\c\\n\\x41\")];\n"
                        "fp32 e = const()[val = fp32(-0x1.8p+1)];\n"
                        "bool f = const()[val = bool(false)];"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(ConstVal(*p, 0).values, std::vector<double>{0.125});
  // fp16 literals are rounded to the nearest fp16: 0.001302 -> 0.0013017654418945312.
  EXPECT_EQ(ConstVal(*p, 1).values, std::vector<double>{0.0013017654418945312});
  EXPECT_EQ(ConstVal(*p, 2).values, (std::vector<double>{0, -1, 7}));
  EXPECT_EQ(ConstVal(*p, 3).strings, std::vector<std::string>{"a\"b\\c\nA"});
  EXPECT_EQ(ConstVal(*p, 4).values, std::vector<double>{-3});
  EXPECT_EQ(ConstVal(*p, 5).values, std::vector<double>{0});
}

TEST(Parser, TuplesBareBoolsAndVerboseScalars) {
  auto p = ParseProgram(
      Wrap("tensor<fp16, [1, 4]> y = concat(axis = int32(1), values = (x), interleave = true)"
           "[name = string(\"y\")];"));
  ASSERT_TRUE(p.ok()) << p.status();
  const Operation& op = p->main()->ops[0];
  const Argument* values = op.FindInput("values");
  ASSERT_NE(values, nullptr);
  EXPECT_EQ(values->kind, Argument::Kind::kTuple);
  ASSERT_EQ(values->elements.size(), 1u);
  EXPECT_EQ(values->elements[0], Argument::Ref("x"));
  EXPECT_EQ(op.FindInput("interleave")->literal.type, (TensorType{DType::kBool, {}}));
  EXPECT_EQ(op.FindParam("name")->literal.strings, std::vector<std::string>{"y"});
  // Inputs keep their written order.
  EXPECT_EQ(op.inputs[0].name, "axis");
  EXPECT_EQ(op.inputs[2].name, "interleave");

  auto shorthand = ParseProgram(Wrap("int32 g = const()[val = int32(1), name = string(\"g\")];"));
  auto verbose =
      ParseProgram(Wrap("tensor<int32, []> g = const()[val = tensor<int32, []>(1), name = "
                        "tensor<string, []>(\"g\")];"));
  ASSERT_TRUE(shorthand.ok() && verbose.ok());
  EXPECT_TRUE(*shorthand == *verbose);
}

TEST(Parser, ErrorsCarryLineColumnAndToken) {
  Diagnostic d;
  auto p = ParseProgram("program(1.3)\n{\n  func main<ios18>(fp16 x) {\n    fp16 y = relu(x = x]\n",
                        {}, &d);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "4:24: expected ',' but found ']'");
  EXPECT_EQ(d.loc.line, 4);
  EXPECT_EQ(d.loc.column, 24);
  EXPECT_EQ(d.ToString(), "4:24: error: expected ',' but found ']'");

  auto q = ParseProgram("program(1.3)\n{\n");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "3:1: expected 'func' or '}' but found end of input");
}

TEST(Parser, BoundsAreEnforced) {
  ParseOptions small;
  small.max_text_bytes = 10;
  EXPECT_NE(ParseProgram(Wrap(""), small).status().message().find("limit is 10"),
            std::string::npos);

  ParseOptions two;
  two.max_statements = 2;
  auto p = ParseProgram(Wrap("fp16 a = relu(x = x);\nfp16 b = relu(x = x);\nfp16 c = relu(x = x);"),
                        two);
  EXPECT_NE(p.status().message().find("more than 2 statements"), std::string::npos);

  // A huge declared shape is rejected before anything is allocated.
  auto big = ParseProgram(Wrap("tensor<fp16, [100000, 100000, 100000]> y = relu(x = x);"));
  EXPECT_NE(big.status().message().find("more than 2147483648 elements"), std::string::npos);

  ParseOptions few;
  few.max_literal_elements = 3;
  auto lit = ParseProgram(
      Wrap("tensor<int32, [4]> c = const()[val = tensor<int32, [4]>([1,2,3,4])];"), few);
  EXPECT_NE(lit.status().message().find("exceeds the limit of 3"), std::string::npos);

  std::string deep =
      "tensor<fp16, [1, 4]> y = f(x = " + std::string(40, '(') + "x" + std::string(40, ')') + ");";
  EXPECT_NE(ParseProgram(Wrap(deep)).status().message().find("nesting deeper than 32"),
            std::string::npos);
  std::string nested = "tensor<int32, [1]> c = const()[val = tensor<int32, [1]>(" +
                       std::string(40, '[') + "1" + std::string(40, ']') + ")];";
  EXPECT_NE(ParseProgram(Wrap(nested)).status().message().find("nesting deeper than 32"),
            std::string::npos);

  ParseOptions rank3;
  rank3.max_rank = 3;
  EXPECT_NE(ParseProgram(Wrap("tensor<fp16, [1, 1, 1, 4]> y = relu(x = x);"), rank3)
                .status()
                .message()
                .find("rank exceeds the limit of 3"),
            std::string::npos);
}

TEST(Printer, FloatsAreExactAndShortest) {
  auto lit = [](DType d, double v) { return Literal{TensorType{d, {}}, {v}, {}, {}}; };
  EXPECT_EQ(PrintLiteral(lit(DType::kFp16, 0.125)), "fp16(0.125)");
  EXPECT_EQ(PrintLiteral(lit(DType::kFp16, 65504)), "fp16(65504)");
  EXPECT_EQ(PrintLiteral(lit(DType::kFp16, -0.0)), "fp16(-0)");
  // fp16(0.1) holds 0.0999755859375; "0.1" is the shortest spelling that maps back to it.
  EXPECT_EQ(PrintLiteral(lit(DType::kFp16, 0.0999755859375)), "fp16(0.1)");
  EXPECT_EQ(PrintLiteral(lit(DType::kFp32, static_cast<float>(1.0 / 3))), "fp32(0.33333334)");
  EXPECT_EQ(PrintLiteral(lit(DType::kFp32, 1.0 / 0.0)), "fp32(inf)");
  EXPECT_EQ(PrintLiteral(lit(DType::kInt32, -7)), "int32(-7)");
  // 1/768 keeps every bit (the seed's %f printing gave 0.001302).
  double inv = static_cast<double>(static_cast<float>(1.0 / 768));
  std::string s = PrintLiteral(lit(DType::kFp32, inv));
  auto p = ParseProgram(Wrap(absl::StrCat("fp32 c = const()[val = ", s, "];")));
  ASSERT_TRUE(p.ok()) << s;
  EXPECT_EQ(ConstVal(*p).values[0], inv) << s;
}

TEST(Printer, CanonicalLayout) {
  auto p = ParseProgram(
      "program(1.3){func main<ios18>(tensor<fp16,[1,4]> x){tensor<fp16,[1,4]> y=relu(x=x)"
      "[name=string(\"y\")];}->(y);}");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(PrintProgram(*p),
            "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4]> x) {\n"
            "        tensor<fp16, [1, 4]> y = relu(x = x)[name = string(\"y\")];\n"
            "    } -> (y);\n}\n");
}

}  // namespace
}  // namespace anerd::mil
