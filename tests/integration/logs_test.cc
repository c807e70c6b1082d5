// Daemon logs through the real anerd and anectl: one debug line per RPC (method, peer, code,
// latency), size-based rotation keeping --log-max-files old files, and `anectl logs` (--lines,
// --since, -f across new entries).
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunOptions;
using testing::RunProgram;
using testing::RunResult;
using testing::TempDir;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

int64_t Size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

class LogsTest : public ::testing::Test {
 protected:
  void StartDebugDaemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--log-level=debug"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    ASSERT_TRUE(daemon_.Start(flags).ok()) << daemon_.ReadLog();
  }
  std::string LogDir() const { return daemon_.state_dir() + "/logs"; }

  TempDir dir_;
  DaemonProcess daemon_{dir_.path()};
};

TEST_F(LogsTest, EveryRpcIsLoggedWithMethodPeerCodeAndLatency) {
  StartDebugDaemon();
  ASSERT_EQ(daemon_.Anectl({"status"}).exit_code, 0);
  RunResult missing = daemon_.Anectl({"kernel", "show", std::string(64, 'a')});
  EXPECT_NE(missing.exit_code, 0);
  ::usleep(1200 * 1000);  // the daemon flushes its file every second
  RunResult logs = daemon_.Anectl({"logs", "--lines", "1000"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_THAT(logs.out, HasSubstr("rpc /anerd.v1.Anerd/GetInfo peer=fd:"));
  EXPECT_THAT(logs.out, HasSubstr("rpc /grpc.health.v1.Health/Check"));
  EXPECT_THAT(logs.out, HasSubstr("rpc /anerd.v1.Anerd/GetKernel"));
  EXPECT_THAT(logs.out, HasSubstr("code=NOT_FOUND latency_ms="));
  EXPECT_THAT(logs.out, HasSubstr("anerd 0.1.0 starting")) << "the start-up line is in the file";
}

TEST_F(LogsTest, FileRotatesAtMaxSizeKeepingMaxFiles) {
  StartDebugDaemon({"--log-max-bytes=4096", "--log-max-files=2"});
  for (int i = 0; i < 60; ++i) ASSERT_EQ(daemon_.Anectl({"status"}).exit_code, 0);
  ASSERT_TRUE(daemon_.Stop(SIGTERM).ok());  // flushes the log
  const std::string current = LogDir() + "/anerd.log";
  EXPECT_TRUE(Exists(current));
  EXPECT_TRUE(Exists(LogDir() + "/anerd.1.log"));
  EXPECT_TRUE(Exists(LogDir() + "/anerd.2.log"));
  EXPECT_FALSE(Exists(LogDir() + "/anerd.3.log")) << "only --log-max-files old files are kept";
  for (const std::string& f : {current, LogDir() + "/anerd.1.log", LogDir() + "/anerd.2.log"}) {
    EXPECT_LE(Size(f), 4096) << f;
    EXPECT_GT(Size(f), 0) << f;
  }
  EXPECT_THAT(testing::ReadFile(current), HasSubstr("anerd stopped cleanly"));

  // anectl logs reads the rotated files too (the daemon is down: --file names the log).
  RunResult all = daemon_.Anectl({"logs", "--file", current, "--since", "1h"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const size_t in_current = Lines(testing::ReadFile(current)).size();
  EXPECT_GT(Lines(all.out).size(), in_current);
  EXPECT_THAT(all.out, HasSubstr("anerd stopped cleanly"));
  RunResult last = daemon_.Anectl({"logs", "--file", current, "--lines", "2"});
  ASSERT_EQ(last.exit_code, 0) << last.err;
  ASSERT_EQ(Lines(last.out).size(), 2u);
  EXPECT_THAT(Lines(last.out)[1], HasSubstr("anerd stopped cleanly"));
}

TEST_F(LogsTest, SinceFiltersOldEntriesAndRejectsBadDurations) {
  StartDebugDaemon();
  ASSERT_EQ(daemon_.Anectl({"status"}).exit_code, 0);
  ::sleep(2);
  ASSERT_EQ(daemon_.Anectl({"kernel", "ls"}).exit_code, 0);
  ::usleep(1200 * 1000);  // the daemon flushes its file every second
  RunResult recent = daemon_.Anectl({"logs", "--since", "2s"});
  ASSERT_EQ(recent.exit_code, 0) << recent.err;
  EXPECT_THAT(recent.out, HasSubstr("ListKernels"));
  EXPECT_THAT(recent.out, Not(HasSubstr("starting"))) << "older than 2s";
  RunResult bad = daemon_.Anectl({"logs", "--since", "yesterday"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--since"));
}

TEST_F(LogsTest, FollowPrintsNewEntries) {
  StartDebugDaemon();
  ::usleep(1200 * 1000);  // the start-up lines reach the file (flushed every second)
  RunResult follow;
  std::thread t([&] {
    RunOptions options;
    options.timeout = absl::Seconds(4);
    follow = RunProgram(
        {testing::AnectlBinary(), "--host", daemon_.host(), "logs", "-f", "--lines", "0"}, options);
  });
  ::sleep(1);
  EXPECT_NE(daemon_.Anectl({"kernel", "show", std::string(64, 'f')}).exit_code, 0);
  t.join();
  EXPECT_THAT(follow.out, HasSubstr("rpc /anerd.v1.Anerd/GetKernel"));
  EXPECT_THAT(follow.out, Not(HasSubstr("starting"))) << "--lines 0 prints no history";
}

TEST_F(LogsTest, MissingLogFileIsNotFound) {
  RunResult r = daemon_.Anectl({"logs", "--file", dir_.path() + "/nope.log"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no log file at"));
}

}  // namespace
}  // namespace anerd
