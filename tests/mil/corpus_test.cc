// The valid and must-fail MIL corpora (tests/mil/valid, tests/mil/invalid).
#include <string>

#include "absl/strings/str_join.h"
#include "common/mil/parser.h"
#include "common/mil/printer.h"
#include "common/mil/verifier.h"
#include "gtest/gtest.h"
#include "tests/mil/mil_test_util.h"

namespace anerd::mil {
namespace {

using testing::CorpusFiles;
using testing::Expectations;
using testing::ReadFile;

TEST(ValidCorpus, ParsesVerifiesAndRoundTrips) {
  std::vector<std::string> files = CorpusFiles("valid");
  ASSERT_GE(files.size(), 8u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto program = ParseProgram(ReadFile(path));
    ASSERT_TRUE(program.ok()) << program.status();
    auto verified = VerifyProgram(*program, testing::SynthesizeWeights(*program));
    ASSERT_TRUE(verified.ok()) << verified.status();
    for (const Diagnostic& w : verified->warnings()) ADD_FAILURE() << w.ToString();
    std::string printed = PrintProgram(*program);
    auto reparsed = ParseProgram(printed);
    ASSERT_TRUE(reparsed.ok()) << reparsed.status() << "\n" << printed;
    EXPECT_TRUE(*reparsed == *program) << printed;
    EXPECT_EQ(PrintProgram(*reparsed), printed);
  }
}

TEST(InvalidCorpus, FailsWithExpectedMessages) {
  std::vector<std::string> files = CorpusFiles("invalid");
  ASSERT_GE(files.size(), 40u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    std::string text = ReadFile(path);
    std::vector<std::string> expected = Expectations(text);
    ASSERT_FALSE(expected.empty()) << "no '# expect: ' line";
    absl::Status status;
    auto program = ParseProgram(text);
    if (!program.ok()) {
      status = program.status();
    } else {
      status = VerifyProgram(*program, {}).status();
    }
    ASSERT_FALSE(status.ok()) << "accepted";
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& e : expected) {
      EXPECT_NE(status.message().find(e), absl::string_view::npos)
          << "want: " << e << "\ngot: " << status.message();
    }
  }
}

}  // namespace
}  // namespace anerd::mil
