// `anectl train start --ranks N` end to end (issue 24): the field travels anectl → TrainingSpec →
// the daemon, which accepts one rank as before, refuses a rank count out of range naming the
// field, and without MPI refuses more ranks naming what to install (with MPI it launches them:
// session_launch_test.cc).
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/synth_stories.h"
#include "gtest/gtest.h"
#include "tests/testing/process_harness.h"

namespace anerd::testing {
namespace {

TEST(SessionRanksTest, MoreThanOneRankIsRefusedNamingTheField) {
  TempDir root;
  ASSERT_FALSE(root.path().empty());
  DaemonProcess d(root.path());
  ASSERT_TRUE(d.Start({"--backend=cpu"}).ok()) << d.ReadLog();
  const std::string data = root.path() + "/stories.txt";
  std::ofstream(data) << SynthesizeStories(1, 20000);
  const RunResult many = d.Anectl({"train", "start", "--data", data, "--model", "tiny", "--steps",
                                   "2", "--ranks", "100000", "--no-upload"});
  EXPECT_NE(many.exit_code, 0) << many.out;
  EXPECT_NE(many.err.find("ranks"), std::string::npos) << many.err;
  const std::string anerd = AnerdBinary();
  const std::string rank = anerd.substr(0, anerd.rfind('/') + 1) + "anerd-rank";
  if (access(rank.c_str(), X_OK) != 0) {
    const RunResult two = d.Anectl({"train", "start", "--data", data, "--model", "tiny", "--steps",
                                    "2", "--ranks", "2", "--no-upload"});
    EXPECT_NE(two.exit_code, 0) << two.out;
    EXPECT_NE(two.err.find("ranks: 2 needs anerd-rank"), std::string::npos) << two.err;
  }
  const RunResult bad = d.Anectl({"train", "start", "--data", data, "--model", "tiny", "--steps",
                                  "2", "--reduce", "mean", "--no-upload"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("reduce"), std::string::npos) << bad.err;
  const RunResult one = d.Anectl({"train", "start", "--data", data, "--model", "tiny", "--steps",
                                  "2", "--ranks", "1", "--no-upload"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
}

}  // namespace
}  // namespace anerd::testing
