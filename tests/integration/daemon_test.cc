// End-to-end tests of the foundation: the real anerd on a temp socket driven by the real anectl.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using testing::TempDir;

constexpr uid_t kNobody = 65534;

// Runs anectl as `nobody`. The build tree may sit in a directory nobody cannot enter (CI clones
// anywhere), so a copy of the binary is placed in `dir`, which the caller made world-readable.
RunResult AnectlAsNobody(const DaemonProcess& daemon, const std::string& dir) {
  const std::string copy = dir + "/anectl-copy";
  std::filesystem::copy_file(testing::AnectlBinary(), copy,
                             std::filesystem::copy_options::overwrite_existing);
  ::chmod(copy.c_str(), 0755);
  testing::RunOptions as_nobody;
  as_nobody.run_as_uid = kNobody;
  as_nobody.timeout = absl::Seconds(30);
  return testing::RunProgram({copy, "--host", daemon.host(), "--timeout", "3", "status"},
                             as_nobody);
}

int Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST(DaemonTest, StatusJsonDescribesTheRunningDaemon) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  RunResult r = daemon.Anectl({"status", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["health"], "SERVING");
  EXPECT_EQ(j["endpoint"], daemon.host());
  EXPECT_EQ(j["daemon"]["pid"], daemon.pid());
  EXPECT_EQ(j["daemon"]["state_dir"], daemon.state_dir());
  EXPECT_EQ(j["daemon"]["socket"], daemon.socket());
  EXPECT_GE(j["daemon"]["uptime_seconds"].get<double>(), 0.0);
  EXPECT_FALSE(j["daemon"]["version"].get<std::string>().empty());
}

TEST(DaemonTest, HumanStatusShowsHealthAndPid) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  RunResult r = daemon.Anectl({"status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SERVING"));
  EXPECT_THAT(r.out, HasSubstr(std::to_string(daemon.pid())));
  EXPECT_EQ(r.out.find("\033["), std::string::npos) << "no colour when stdout is not a TTY";
}

TEST(DaemonTest, SocketAndDirectoryArePrivate) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  EXPECT_EQ(Mode(daemon.socket()), 0600);
  EXPECT_EQ(Mode(dir.path() + "/run"), 0700);
  EXPECT_EQ(Mode(daemon.state_dir()), 0700);
}

TEST(DaemonTest, SecondInstanceIsRefusedNamingTheFirst) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  RunResult second =
      testing::RunProgram({testing::AnerdBinary(), "--socket=" + dir.path() + "/run2/anerd.sock",
                           "--state-dir=" + daemon.state_dir()});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.err, HasSubstr("pid " + std::to_string(daemon.pid())));
  EXPECT_THAT(second.err, HasSubstr(daemon.socket()));
  // The first one is unharmed.
  EXPECT_EQ(daemon.Anectl({"status"}).exit_code, 0);
}

TEST(DaemonTest, SocketInUseByAnotherDaemonIsRefused) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  RunResult second = testing::RunProgram({testing::AnerdBinary(), "--socket=" + daemon.socket(),
                                          "--state-dir=" + dir.path() + "/other-state"});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.err, HasSubstr("in use"));
  EXPECT_EQ(daemon.Anectl({"status"}).exit_code, 0);
}

TEST(DaemonTest, StaleSocketFromACrashIsRecovered) {
  TempDir dir;
  {
    DaemonProcess crashed(dir.path());
    ASSERT_TRUE(crashed.Start().ok());
    ASSERT_EQ(*crashed.Stop(SIGKILL), -SIGKILL);
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/run/anerd.sock").c_str(), &st), 0)
      << "kill -9 leaves the socket";
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  EXPECT_THAT(daemon.ReadLog(), HasSubstr("stale socket"));
  EXPECT_EQ(daemon.Anectl({"status"}).exit_code, 0);
}

TEST(DaemonTest, SigtermShutsDownPromptlyAndCleanly) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<int> code = daemon.Stop(SIGTERM, absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_NE(::access(daemon.socket().c_str(), F_OK), 0) << "socket removed on shutdown";
  EXPECT_THAT(daemon.ReadLog(), HasSubstr("stopped cleanly"));
}

TEST(DaemonTest, SigintAlsoShutsDownCleanly) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  absl::StatusOr<int> code = daemon.Stop(SIGINT, absl::Seconds(10));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

TEST(DaemonTest, ConnectionFromAnotherUidIsRefusedByPeerCheck) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run the client as another uid (nobody)";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  DaemonProcess daemon(dir.path());
  // World-accessible socket: file permissions would let nobody in, so only the peer-uid check can
  // refuse the connection.
  ASSERT_TRUE(daemon.Start({"--testonly_world_accessible_socket"}).ok());
  RunResult r = AnectlAsNobody(daemon, dir.path());
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(daemon.ReadLog(), HasSubstr("refused connection from uid 65534"));
  EXPECT_EQ(daemon.Anectl({"status"}).exit_code, 0) << "the owner still gets in";
}

TEST(DaemonTest, PrivateSocketIsUnreachableForAnotherUid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run the client as another uid (nobody)";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  RunResult r = AnectlAsNobody(daemon, dir.path());
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
}

TEST(AnectlTest, UnreachableDaemonExitsThreeWithAHint) {
  TempDir dir;
  RunResult r = testing::RunProgram(
      {testing::AnectlBinary(), "--host", "unix:" + dir.path() + "/none.sock", "status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("cannot reach anerd"));
  EXPECT_THAT(r.err, HasSubstr("Start it with"));
  EXPECT_TRUE(r.out.empty()) << "messages go to stderr";
}

TEST(AnectlTest, AnerdHostEnvironmentVariableIsUsed) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  testing::RunOptions env;
  env.extra_env = {"ANERD_HOST=" + daemon.host()};
  RunResult r = testing::RunProgram({testing::AnectlBinary(), "status", "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["daemon"]["pid"], daemon.pid());
}

TEST(AnectlTest, UsageErrorsExitTwo) {
  EXPECT_EQ(testing::RunProgram({testing::AnectlBinary(), "frobnicate"}).exit_code, 2);
  EXPECT_EQ(testing::RunProgram({testing::AnectlBinary(), "status", "--bogus"}).exit_code, 2);
  EXPECT_EQ(testing::RunProgram({testing::AnectlBinary(), "--host"}).exit_code, 2);
  EXPECT_EQ(
      testing::RunProgram({testing::AnectlBinary(), "--host", "nonsense", "status"}).exit_code, 1);
  RunResult help = testing::RunProgram({testing::AnectlBinary(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("status"));
}

TEST(AnectlTest, VersionWorksWithoutDaemon) {
  TempDir dir;
  RunResult r =
      testing::RunProgram({testing::AnectlBinary(), "--host", "unix:" + dir.path() + "/none.sock",
                           "--timeout", "2", "version", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["anectl"].get<std::string>().empty());
  EXPECT_TRUE(j["anerd"].is_null());
}

}  // namespace
}  // namespace anerd
