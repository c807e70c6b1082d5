// Verifier and offline checker: names, types, ops, attributes, weight references, and that every
// problem is reported together.
#include "common/mil/verifier.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/mil/blob_writer.h"
#include "common/mil/check.h"
#include "common/mil/parser.h"
#include "gtest/gtest.h"

namespace anerd::mil {
namespace {

std::string Program1(const std::string& statements, const std::string& outputs = "y") {
  return absl::StrCat("program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4]> x) {\n",
                      statements, "\n    } -> (", outputs, ");\n}\n");
}

const char kBlobConst[] =
    "        tensor<fp16, [1, 4]> w = const()[name = string(\"w\"), val = tensor<fp16, [1, "
    "4]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = uint64(64)))];\n"
    "        tensor<fp16, [1, 4]> y = mul(x = x, y = w)[name = string(\"y\")];";

std::vector<Diagnostic> Check(const std::string& text, const WeightFiles& weights = {}) {
  auto p = ParseProgram(text);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? CheckProgram(*p, weights) : std::vector<Diagnostic>{};
}

int CountErrors(const std::vector<Diagnostic>& ds) {
  int n = 0;
  for (const Diagnostic& d : ds) n += d.severity == Diagnostic::Severity::kError;
  return n;
}

bool HasMessage(const std::vector<Diagnostic>& ds, const std::string& part,
                Diagnostic::Severity severity = Diagnostic::Severity::kError) {
  for (const Diagnostic& d : ds) {
    if (d.severity == severity && absl::StrContains(d.message, part)) return true;
  }
  return false;
}

TEST(Verifier, AcceptsAValidProgramWithItsWeights) {
  WeightFiles weights;
  ASSERT_TRUE(weights.Add("w.bin", BuildFp16Blob({1, 2, 3, 4})).ok());
  auto p = ParseProgram(Program1(kBlobConst));
  ASSERT_TRUE(p.ok()) << p.status();
  auto v = VerifyProgram(*p, weights);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->program() == *p);
  EXPECT_EQ(v->main().name, "main");
  EXPECT_EQ(v->weights().size(), 1u);
  EXPECT_TRUE(v->warnings().empty());
}

TEST(Verifier, MissingAndOutOfRangeBlobs) {
  EXPECT_TRUE(HasMessage(Check(Program1(kBlobConst)), "weight file not supplied"));
  WeightFiles small;  // the file ends 6 bytes into the 8 bytes the program declares
  std::string truncated = BuildFp16Blob({1, 2, 3, 4});
  truncated.resize(128 + 6);
  ASSERT_TRUE(small.Add("w.bin", truncated).ok());
  EXPECT_TRUE(HasMessage(Check(Program1(kBlobConst), small), "extends past the end"));
  std::string wrong_offset = Program1(kBlobConst);
  wrong_offset.replace(wrong_offset.find("uint64(64)"), 10, "uint64(4096)");
  WeightFiles ok;
  ASSERT_TRUE(ok.Add("w.bin", BuildFp16Blob({1, 2, 3, 4})).ok());
  std::vector<Diagnostic> ds = Check(wrong_offset, ok);
  EXPECT_TRUE(HasMessage(ds, "past the end")) << (ds.empty() ? "" : ds[0].ToString());
}

TEST(Verifier, RecordDisagreeingWithDeclarationIsOnlyAWarning) {
  WeightFiles weights;  // 8 values stored, 4 declared: data fits, the record size disagrees
  ASSERT_TRUE(weights.Add("w.bin", BuildFp16Blob({1, 2, 3, 4, 5, 6, 7, 8})).ok());
  std::vector<Diagnostic> ds = Check(Program1(kBlobConst), weights);
  EXPECT_EQ(CountErrors(ds), 0);
  EXPECT_TRUE(HasMessage(ds, "record size 16 bytes", Diagnostic::Severity::kWarning));
  auto p = ParseProgram(Program1(kBlobConst));
  auto v = VerifyProgram(*p, weights);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->warnings().size(), 1u);
  EXPECT_GT(v->warnings()[0].loc.line, 0);  // located at the literal
}

TEST(Verifier, NamesAndTypes) {
  EXPECT_TRUE(HasMessage(Check(Program1("tensor<fp16, [1, 4]> y = relu(x = nope);")),
                         "undefined value 'nope'"));
  EXPECT_TRUE(HasMessage(Check(Program1("tensor<fp16, [1, 4]> y = relu(x = x);\n"
                                        "tensor<fp16, [1, 4]> y = relu(x = x);")),
                         "redefinition of 'y'"));
  EXPECT_TRUE(HasMessage(Check(Program1("tensor<fp16, [4, 1]> y = relu(x = x);")),
                         "declared type tensor<fp16, [4, 1]> of 'y' does not match"));
  EXPECT_TRUE(HasMessage(Check(Program1("tensor<fp16, [1, 4]> y = hyperbolic(x = x);")),
                         "unknown op 'hyperbolic'"));
  EXPECT_TRUE(HasMessage(Check(Program1("tensor<fp16, [1, 4]> y = relu(x = x)[alpha = fp16(1)];")),
                         "unknown attribute 'alpha' for op 'relu'"));
  EXPECT_TRUE(
      HasMessage(Check(Program1("tensor<fp16, [1, 4]> y = softmax(x = x)[axis = int32(1)];")),
                 "parameter 'axis' of 'softmax' must be written inside ( )"));
  EXPECT_TRUE(HasMessage(Check(Program1("tensor<fp16, [1, 4]> y = relu(x = x);", "y, z")),
                         "output 'z' of function 'main' is not defined"));
  EXPECT_TRUE(HasMessage(Check("program(1.3)\n{\n}\n"), "no 'main' function"));
}

TEST(Verifier, ReportsEveryProblemTogether) {
  auto p =
      ParseProgram(Program1("tensor<fp16, [1, 4]> a = relu(x = undefined_one);\n"
                            "tensor<fp16, [9]> b = relu(x = x);\n"
                            "tensor<fp16, [1, 4]> c = nope(x = x);\n"
                            "tensor<fp16, [1, 4]> c = relu(x = x);\n"
                            "tensor<fp16, [1, 4]> y = add(x = x, y = undefined_two);"));
  ASSERT_TRUE(p.ok()) << p.status();
  auto v = VerifyProgram(*p, {});
  ASSERT_FALSE(v.ok());
  std::string msg(v.status().message());
  for (const char* part : {"4:35: error: undefined value 'undefined_one'", "5:1: error: declared",
                           "6:1: error: unknown op 'nope'", "7:1: error: redefinition of 'c'",
                           "8:41: error: undefined value 'undefined_two'"}) {
    EXPECT_TRUE(absl::StrContains(msg, part)) << part << "\n" << msg;
  }
  EXPECT_EQ(CountErrors(CheckProgram(*p, {})), 5);
}

TEST(Check, ReportSummarisesAProgram) {
  WeightFiles weights;
  ASSERT_TRUE(weights.Add("w.bin", BuildFp16Blob({1, 2, 3, 4})).ok());
  CheckReport r = CheckMilText(Program1(kBlobConst), weights);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.entry_signature, "main(tensor<fp16, [1, 4]> x) -> (tensor<fp16, [1, 4]> y)");
  EXPECT_EQ(r.op_count, 2);
  EXPECT_EQ(r.weight_bytes, 8u);
  EXPECT_TRUE(r.diagnostics.empty());
  EXPECT_EQ(ReportToJson(r),
            "{\"ok\":true,\"entry\":\"main(tensor<fp16, [1, 4]> x) -> (tensor<fp16, [1, 4]> "
            "y)\",\"ops\":2,\"weight_bytes\":8,\"diagnostics\":[]}");
}

TEST(Check, ParseAndVerifyErrorsAreLocated) {
  CheckReport bad = CheckMilText("program(1.3)\n{\n  func main<ios18>(fp16 x) {\n    \"oops\n", {});
  EXPECT_FALSE(bad.ok);
  ASSERT_EQ(bad.diagnostics.size(), 1u);
  EXPECT_EQ(bad.diagnostics[0].loc.line, 4);
  EXPECT_EQ(bad.diagnostics[0].loc.column, 5);
  EXPECT_TRUE(absl::StrContains(ReportToJson(bad),
                                "{\"severity\":\"error\",\"line\":4,\"column\":5,\"message\":"
                                "\"unterminated string at '\\\"oops\\u000a'\"}"))
      << ReportToJson(bad);

  CheckReport unverified = CheckMilText(Program1(kBlobConst), {});
  EXPECT_FALSE(unverified.ok);
  EXPECT_EQ(unverified.op_count, 2);
  ASSERT_EQ(unverified.diagnostics.size(), 1u);
  EXPECT_EQ(unverified.diagnostics[0].loc.line, 4);
}

}  // namespace
}  // namespace anerd::mil
