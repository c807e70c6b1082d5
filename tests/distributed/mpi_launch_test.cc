// The daemon's launch of data-parallel jobs (issue 24): mpirun's command line, the hostfile check,
// the error a failed job leaves (rank and host named) and the filter that keeps each step once in
// the session's log across relaunches.
#include "server/sessions/mpi_launch.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace anerd::sessions {
namespace {

bool Has(const std::vector<std::string>& argv, const std::string& a) {
  return std::find(argv.begin(), argv.end(), a) != argv.end();
}

RankLaunch Launch() {
  RankLaunch l;
  l.mpirun = "/usr/bin/mpirun";
  l.rank_binary = "/opt/anerd/bin/anerd-rank";
  l.ranks = 3;
  l.backend = "cpu";
  l.spec_path = "/s/spec.txt";
  l.checkpoint_path = "/s/checkpoint.bin";
  return l;
}

TEST(MpiLaunchTest, OneHostStartsFromTheSpecWithSharedMemoryAndOversubscription) {
  const std::vector<std::string> argv = BuildMpirunArgv(Launch());
  ASSERT_GE(argv.size(), 4u);
  EXPECT_EQ(argv[0], "/usr/bin/mpirun");
  EXPECT_EQ(argv[1], "-np");
  EXPECT_EQ(argv[2], "3");
  EXPECT_TRUE(Has(argv, "--oversubscribe"));
  EXPECT_FALSE(Has(argv, "--hostfile"));
  EXPECT_FALSE(Has(argv, "--allow-run-as-root"));
  const auto rank = std::find(argv.begin(), argv.end(), "/opt/anerd/bin/anerd-rank");
  ASSERT_NE(rank, argv.end());
  const std::vector<std::string> rank_args(rank + 1, argv.end());
  EXPECT_EQ(rank_args, (std::vector<std::string>{"--spec=/s/spec.txt", "--backend=cpu",
                                                 "--checkpoint=/s/checkpoint.bin",
                                                 "--checkpoint-per-step", "--events=-"}));
}

TEST(MpiLaunchTest, HostfileRootResumeAndTestFlags) {
  RankLaunch l = Launch();
  l.hostfile = "/h/hosts";
  l.as_root = true;
  l.resume_checkpoint = "/s/checkpoint.bin";
  l.extra_steps = 7;
  l.extra_rank_args = {"--testonly-exit-rank=1"};
  const std::vector<std::string> argv = BuildMpirunArgv(l);
  const auto hf = std::find(argv.begin(), argv.end(), "--hostfile");
  ASSERT_NE(hf, argv.end());
  EXPECT_EQ(*(hf + 1), "/h/hosts");
  EXPECT_FALSE(Has(argv, "--oversubscribe")) << "several hosts: MPI's own slot accounting";
  EXPECT_TRUE(Has(argv, "--allow-run-as-root"));
  EXPECT_TRUE(Has(argv, "--resume=/s/checkpoint.bin"));
  EXPECT_TRUE(Has(argv, "--extra-steps=7"));
  EXPECT_FALSE(Has(argv, "--spec=/s/spec.txt"));
  EXPECT_EQ(argv.back(), "--testonly-exit-rank=1");
}

TEST(MpiLaunchTest, HostfileLinesAreParsedAndABadOneNamesLineAndHost) {
  testing::TempDir dir;
  const std::string good = dir.path() + "/good";
  std::ofstream(good) << "# the Macs\nmac1.local slots=2\n\nmac2.local max_slots=1 # desk\n";
  auto hosts = ParseHostfile(good);
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  EXPECT_EQ(*hosts, (std::vector<std::string>{"mac1.local", "mac2.local"}));
  const std::string bad = dir.path() + "/bad";
  std::ofstream(bad) << "mac1.local slots=1\nmac2.local slots=two\n";
  auto refused = ParseHostfile(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("line 2: host mac2.local"), std::string::npos)
      << refused.status();
  EXPECT_EQ(ParseHostfile(dir.path() + "/missing").status().code(), absl::StatusCode::kNotFound);
  const std::string empty = dir.path() + "/empty";
  std::ofstream(empty) << "# nothing\n";
  EXPECT_FALSE(ParseHostfile(empty).ok());
}

TEST(MpiLaunchTest, AnUnresolvableHostIsNamed) {
  const absl::Status s = CheckHostsResolve("/h/hosts", {"localhost", "no-such-host.invalid"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("host no-such-host.invalid does not resolve"), std::string::npos) << s;
  EXPECT_TRUE(CheckHostsResolve("/h/hosts", {"localhost"}).ok());
}

int Exited(int code) { return code << 8; }  // a waitpid status for exit(code)

TEST(MpiLaunchTest, TheFailureNamesTheRankAndHost) {
  const std::string rank_line =
      "noise\nanerd-rank: rank 1 on mac2: rank 1's digest differs at step 4\n"
      "--------\nMPI_ABORT was invoked on rank 1\n";
  const std::string a = DescribeJobFailure(Exited(2), rank_line);
  EXPECT_NE(a.find("rank 1 on mac2: rank 1's digest differs at step 4"), std::string::npos) << a;
  EXPECT_NE(a.find("exited with 2"), std::string::npos) << a;
  const std::string notice =
      "mpirun noticed that process rank 1 with PID 4242 on node mac3 exited on signal 9 "
      "(Killed).\n";
  const std::string b = DescribeJobFailure(Exited(137), notice);
  EXPECT_NE(b.find("rank 1 on host mac3 exited on signal 9"), std::string::npos) << b;
  const std::string c = DescribeJobFailure(Exited(1), "ORTE was unable to start\n");
  EXPECT_NE(c.find("mpirun: ORTE was unable to start"), std::string::npos) << c;
}

TEST(MpiLaunchTest, ReplayedStepsAreDroppedAndADifferentLossIsFlagged) {
  ReplayFilter f;
  f.Reset(5, {{4, 1.5}, {5, std::nan("")}});
  EXPECT_EQ(f.Classify(3, 9.0), ReplayFilter::Verdict::kReplayed);  // before the kept losses
  EXPECT_EQ(f.Classify(4, 1.5), ReplayFilter::Verdict::kReplayed);
  EXPECT_EQ(f.Classify(4, 1.25), ReplayFilter::Verdict::kReplayedDiffers);
  EXPECT_EQ(f.Classify(5, std::nan("")), ReplayFilter::Verdict::kReplayed);
  EXPECT_EQ(f.Classify(6, 1.0), ReplayFilter::Verdict::kNew);
  f.Reset(0, {});
  EXPECT_EQ(f.Classify(1, 1.0), ReplayFilter::Verdict::kNew);
}

}  // namespace
}  // namespace anerd::sessions
