// The daemon's check of data-parallel sessions (issue 24): one rank passes; more ranks without
// anerd-rank beside the daemon are refused naming the field, the binary and what to install.
#include "server/sessions/distributed_launch.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace anerd::sessions {
namespace {

training::TrainSpec Spec(int ranks) {
  training::TrainSpec s;
  s.ranks = ranks;
  return s;
}

TEST(DistributedLaunchTest, OneRankIsAlwaysAccepted) {
  EXPECT_TRUE(CheckDistributedSession(Spec(1), "/nonexistent/anerd").ok());
}

TEST(DistributedLaunchTest, MoreRanksWithoutAnerdRankAreRefusedWithTheReason) {
  testing::TempDir dir;
  const absl::Status s = CheckDistributedSession(Spec(2), dir.path() + "/anerd");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("ranks: 2 needs anerd-rank beside " + dir.path() + "/anerd"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("libopenmpi-dev"), std::string::npos) << s;
}

TEST(DistributedLaunchTest, AnerdRankBesideTheDaemonIsFound) {
  testing::TempDir dir;
  const std::string rank = dir.path() + "/anerd-rank";
  std::ofstream(rank) << "#!/bin/sh\n";
  ASSERT_EQ(chmod(rank.c_str(), 0700), 0);
  EXPECT_EQ(RankBinaryBeside(dir.path() + "/anerd"), rank);
  const absl::Status s = CheckDistributedSession(Spec(2), dir.path() + "/anerd");
  EXPECT_EQ(s.message().find("needs anerd-rank"), std::string::npos) << s;
  // The daemon launches the job itself now: accepted when mpirun is there, else refused naming it.
  if (FindOnPath("mpirun").empty()) {
    EXPECT_NE(s.message().find("needs mpirun"), std::string::npos) << s;
  } else {
    EXPECT_TRUE(s.ok()) << s;
  }
}

TEST(DistributedLaunchTest, AHostfileThatDoesNotParseIsRefusedNamingLineAndHost) {
  testing::TempDir dir;
  const std::string rank = dir.path() + "/anerd-rank";
  std::ofstream(rank) << "#!/bin/sh\n";
  ASSERT_EQ(chmod(rank.c_str(), 0700), 0);
  if (FindOnPath("mpirun").empty()) GTEST_SKIP() << "no mpirun on PATH";
  training::TrainSpec spec = Spec(2);
  spec.hostfile = dir.path() + "/hosts";
  std::ofstream(spec.hostfile) << "mac1 slots=1\nmac2 slots=x\n";
  const absl::Status s = CheckDistributedSession(spec, dir.path() + "/anerd");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("line 2: host mac2"), std::string::npos) << s;
}

}  // namespace
}  // namespace anerd::sessions
