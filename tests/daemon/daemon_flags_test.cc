// anerd's command-line conventions: hyphenated flag names, the config file, --help's flag list.
#include "server/daemon/daemon_flags.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, flags_test_visible, 7, "A user-facing flag of this test");
ABSL_FLAG(int, flags_test_internal, 0, "Internal: the test's plumbing");
ABSL_FLAG(bool, flags_test_only, false, "Tests only: never shown");

namespace anerd::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(NormalizeFlagNames, HyphensInNamesBecomeUnderscoresValuesStay) {
  EXPECT_THAT(NormalizeFlagNames({"--state-dir=/a-b", "--log-level", "warn-x", "-data-root=/c-d",
                                  "--", "--not-a-flag"}),
              ElementsAre("--state_dir=/a-b", "--log_level", "warn-x", "-data_root=/c-d", "--",
                          "--not-a-flag"));
}

TEST(NormalizeFlagNames, UnderscoresAndPlainArgumentsAreUnchanged) {
  EXPECT_THAT(NormalizeFlagNames({"--state_dir=/x", "value-with-dash", "---odd-name"}),
              ElementsAre("--state_dir=/x", "value-with-dash", "---odd-name"));
}

TEST(ConfigFlagValue, FindsEitherSpellingAndTheLastWins) {
  bool found = false;
  EXPECT_EQ(ConfigFlagValue({"--config", "/a.conf", "--config=/b.conf"}, &found), "/b.conf");
  EXPECT_TRUE(found);
  EXPECT_EQ(ConfigFlagValue({"--socket=/s"}, &found), "");
  EXPECT_FALSE(found);
  EXPECT_EQ(ConfigFlagValue({"--config="}, &found), "");
  EXPECT_TRUE(found);
  EXPECT_EQ(ConfigFlagValue({"--", "--config=/c"}, &found), "");
  EXPECT_FALSE(found);
}

TEST(ParseConfigText, AcceptsTheDocumentedLineForms) {
  absl::StatusOr<std::vector<std::string>> args = ParseConfigText(
      "# a comment\n\n  data-root = /srv/data,/srv/more  \nlog_level=warn\n--listen=127.0.0.1:1\n"
      "insecure-loopback\n",
      "anerd.conf");
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(*args, ElementsAre("--data_root=/srv/data,/srv/more", "--log_level=warn",
                                 "--listen=127.0.0.1:1", "--insecure_loopback"));
}

TEST(ParseConfigText, BadLinesNameTheFileAndLine) {
  absl::StatusOr<std::vector<std::string>> bad = ParseConfigText("log_level=info\n= x\n", "f.conf");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("f.conf:2"));
  absl::StatusOr<std::vector<std::string>> nested = ParseConfigText("config = /x\n", "f.conf");
  ASSERT_FALSE(nested.ok());
  EXPECT_THAT(nested.status().message(), HasSubstr("f.conf:1"));
  EXPECT_FALSE(ParseConfigText("two words = 1\n", "f.conf").ok());
}

TEST(ReadConfigFile, MissingIsNotFoundAndOversizedIsRefused) {
  EXPECT_EQ(ReadConfigFile("/nonexistent/anerd.conf").status().code(), absl::StatusCode::kNotFound);
  const std::string path = ::testing::TempDir() + "/big.conf";
  {
    std::ofstream f(path);
    f << std::string(kMaxConfigFileBytes + 1, '#');
  }
  absl::StatusOr<std::vector<std::string>> big = ReadConfigFile(path);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.status().message(), HasSubstr(path));
}

TEST(WantsHelp, RecognisesTheHelpFlagsBeforeTheTerminator) {
  EXPECT_TRUE(WantsHelp({"--help"}));
  EXPECT_TRUE(WantsHelp({"--socket=/s", "-h"}));
  EXPECT_FALSE(WantsHelp({"--socket=/s"}));
  EXPECT_FALSE(WantsHelp({"--", "--help"}));
}

TEST(UserFlags, HidesInternalAndTestOnlyFlagsAndShowsDefaults) {
  const std::vector<FlagDescription> flags = UserFlags("daemon_flags_test.cc");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].name, "flags-test-visible");
  EXPECT_EQ(flags[0].default_value, "7");
  const std::string help = HelpText("usage line", flags);
  EXPECT_THAT(help, HasSubstr("--flags-test-visible"));
  EXPECT_THAT(help, HasSubstr("default: 7"));
  EXPECT_THAT(help, Not(HasSubstr("internal")));
}

TEST(NonDefaultFlags, ListsOnlyChangedValues) {
  EXPECT_TRUE(NonDefaultFlags(UserFlags("daemon_flags_test.cc")).empty());
  absl::SetFlag(&FLAGS_flags_test_visible, 9);
  const auto changed = NonDefaultFlags(UserFlags("daemon_flags_test.cc"));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].first, "flags-test-visible");
  EXPECT_EQ(changed[0].second, "9");
  absl::SetFlag(&FLAGS_flags_test_visible, 7);
}

}  // namespace
}  // namespace anerd::daemon
