// `anectl service`: the rendered launchd plist and systemd unit, and a clear refusal where no
// service manager exists.
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using ::testing::HasSubstr;
using testing::RunResult;

// Python's plistlib is the reference reader; it prints the fields the test checks as JSON.
constexpr char kPlistReader[] = R"PY(
import json, plistlib, sys
p = plistlib.loads(sys.stdin.buffer.read())
print(json.dumps({"label": p["Label"], "args": p["ProgramArguments"],
                  "run_at_load": p["RunAtLoad"], "crashed": p["KeepAlive"]["Crashed"],
                  "successful_exit": p["KeepAlive"]["SuccessfulExit"],
                  "process_type": p["ProcessType"], "stderr": p["StandardErrorPath"]}))
)PY";

TEST(ServiceTest, LaunchdPlistIsValidAndNamesTheBinary) {
  const std::string binary = "/opt/anerd & co/bin/anerd";  // needs XML escaping
  RunResult plist = testing::RunProgram({testing::AnectlBinary(), "service", "install", "--dry-run",
                                         "--manager", "launchd", "--anerd", binary});
  ASSERT_EQ(plist.exit_code, 0) << plist.err;
  testing::RunOptions feed;
  feed.stdin_data = plist.out;
  RunResult parsed = testing::RunProgram({"/usr/bin/env", "python3", "-c", kPlistReader}, feed);
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err << "\n" << plist.out;
  nlohmann::json j = nlohmann::json::parse(parsed.out);
  EXPECT_EQ(j["label"], "io.anerd.daemon");
  EXPECT_EQ(j["args"][0], binary);
  EXPECT_EQ(j["run_at_load"], true);
  EXPECT_EQ(j["crashed"], true);
  EXPECT_EQ(j["successful_exit"], false);
  EXPECT_EQ(j["process_type"], "Interactive");
  EXPECT_THAT(j["stderr"].get<std::string>(), HasSubstr("/Library/Logs/anerd/"));
}

TEST(ServiceTest, FlagsAfterDashDashReachTheDaemonInBothFormats) {
  RunResult plist =
      testing::RunProgram({testing::AnectlBinary(), "service", "install", "--dry-run", "--manager",
                           "launchd", "--", "--data-root=/a & b", "--max-sessions=2"});
  ASSERT_EQ(plist.exit_code, 0) << plist.err;
  testing::RunOptions feed;
  feed.stdin_data = plist.out;
  RunResult parsed = testing::RunProgram({"/usr/bin/env", "python3", "-c", kPlistReader}, feed);
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err << "\n" << plist.out;
  nlohmann::json j = nlohmann::json::parse(parsed.out);
  ASSERT_EQ(j["args"].size(), 4u);
  EXPECT_EQ(j["args"][2], "--data-root=/a & b");
  EXPECT_EQ(j["args"][3], "--max-sessions=2");

  RunResult unit = testing::RunProgram({testing::AnectlBinary(), "service", "install", "--dry-run",
                                        "--manager", "systemd", "--", "--data-root=/x 100%"});
  ASSERT_EQ(unit.exit_code, 0) << unit.err;
  EXPECT_THAT(unit.out, HasSubstr("--log-level=info \"--data-root=/x 100%%\""));

  RunResult bad = testing::RunProgram({testing::AnectlBinary(), "service", "install", "--dry-run",
                                       "--manager", "systemd", "--", "data-root=/x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("after --"));
}

TEST(ServiceTest, DefaultBinaryIsTheAnerdBesideAnectl) {
  RunResult r = testing::RunProgram({testing::AnectlBinary(), "--json", "service", "install",
                                     "--dry-run", "--manager", "systemd"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  char resolved[4096];
  ASSERT_NE(::realpath(testing::AnerdBinary().c_str(), resolved), nullptr);
  EXPECT_THAT(j["content"].get<std::string>(),
              HasSubstr(std::string("ExecStart=\"") + resolved + "\""));
  EXPECT_THAT(j["path"].get<std::string>(), HasSubstr("systemd/user/anerd.service"));
}

TEST(ServiceTest, RefusesClearlyWithoutAServiceManager) {
  testing::RunOptions no_tools;
  no_tools.extra_env = {"PATH=/nonexistent"};
  RunResult r = testing::RunProgram({testing::AnectlBinary(), "service", "install", "--manager",
                                     "systemd", "--anerd", testing::AnerdBinary()},
                                    no_tools);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no user systemd here"));
  RunResult l = testing::RunProgram(
      {testing::AnectlBinary(), "service", "start", "--manager", "launchd"}, no_tools);
  EXPECT_EQ(l.exit_code, 1);
  EXPECT_THAT(l.err, HasSubstr("launchd is not available"));
}

TEST(ServiceTest, UnknownManagerIsAUsageError) {
  RunResult r = testing::RunProgram(
      {testing::AnectlBinary(), "service", "install", "--dry-run", "--manager", "upstart"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("launchd or systemd"));
}

}  // namespace
}  // namespace anerd
