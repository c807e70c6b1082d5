#include "client/anectl/cli.h"

#include "gtest/gtest.h"

namespace anerd::anectl {
namespace {

TEST(ArgParserTest, ParsesFlagsAndPositionals) {
  std::string file, name;
  int64_t repeat = 1;
  double lr = 0;
  bool dry = false;
  std::vector<std::string> inputs;
  ArgParser p("x FILE", "test");
  p.AddPositional("FILE", &file, "input");
  p.AddString("name", &name, "name");
  p.AddInt("repeat", &repeat, "n");
  p.AddDouble("lr", &lr, "lr");
  p.AddBool("dry-run", &dry, "dry");
  p.AddRepeated("in", &inputs, "inputs");
  ASSERT_EQ(p.Parse({"a.mil", "--name=k", "--repeat", "5", "--lr", "3e-4", "--dry-run", "--in",
                     "x=1.npy", "--in=y=2.npy"}),
            ArgParser::Result::kOk);
  EXPECT_EQ(file, "a.mil");
  EXPECT_EQ(name, "k");
  EXPECT_EQ(repeat, 5);
  EXPECT_DOUBLE_EQ(lr, 3e-4);
  EXPECT_TRUE(dry);
  EXPECT_EQ(inputs, (std::vector<std::string>{"x=1.npy", "y=2.npy"}));
}

TEST(ArgParserTest, RejectsBadInput) {
  std::string file;
  int64_t n = 0;
  ArgParser p("x FILE", "test");
  p.AddPositional("FILE", &file, "input");
  p.AddInt("n", &n, "n");
  EXPECT_EQ(p.Parse({}), ArgParser::Result::kError) << "missing positional";
  EXPECT_EQ(p.Parse({"f", "--n", "abc"}), ArgParser::Result::kError) << "not an integer";
  EXPECT_EQ(p.Parse({"f", "--n"}), ArgParser::Result::kError) << "missing value";
  EXPECT_EQ(p.Parse({"f", "--what"}), ArgParser::Result::kError) << "unknown flag";
  EXPECT_EQ(p.Parse({"f", "g"}), ArgParser::Result::kError) << "extra positional";
  EXPECT_EQ(p.Parse({"--", "--n"}), ArgParser::Result::kOk) << "-- ends flags";
  EXPECT_EQ(file, "--n");
}

TEST(ArgParserTest, ParseOrExitGivesTheExitCodeOrGoesOn) {
  std::string file;
  ArgParser p("x FILE", "test");
  p.AddPositional("FILE", &file, "input");
  EXPECT_EQ(ParseOrExit(p, {"f"}), -1) << "parsed: the command goes on";
  EXPECT_EQ(ParseOrExit(p, {"--help"}), kExitOk);
  EXPECT_EQ(ParseOrExit(p, {"f", "--what"}), kExitUsage);
}

TEST(FormatTest, DurationsAndBytes) {
  EXPECT_EQ(FormatDuration(12.34), "12.3s");
  EXPECT_EQ(FormatDuration(303), "5m 3s");
  EXPECT_EQ(FormatDuration(7500), "2h 5m");
  EXPECT_EQ(FormatDuration(90000), "1d 1h");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(3.0 * 1024 * 1024), "3.0 MiB");
}

}  // namespace
}  // namespace anerd::anectl
