// Probes are budgeted by memory and FLOPs before they start (issue 16 item 7: `probe sram --grid
// 16384x16384` was within the grid bounds, used 7.7 GB and ran ~90 s per evaluation).
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/probes/probe.h"

namespace anerd::probes {
namespace {

using ::testing::HasSubstr;

TEST(ProbeBudgetTest, TheIssuesSramPointIsRefusedNamingTheEstimateAndFlag) {
  ProbeOptions options;
  options.kind = ProbeKind::kSram;
  options.grid = {{256, 64, 1}, {16384, 16384, 1}};
  ASSERT_TRUE(ValidateOptions(options).ok()) << "inside the grid bounds";
  const ProbeCost cost = EstimateCost(ProbeKind::kSram, options.grid[1]);
  EXPECT_GT(cost.bytes, 7e9) << "the issue measured 7.7 GB";
  absl::Status s = CheckBudget(options, ProbeBudget{});
  ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("grid[1]"));
  EXPECT_THAT(s.message(), HasSubstr("GiB of memory"));
  EXPECT_THAT(s.message(), HasSubstr("--max-probe-bytes"));
  ProbeBudget roomy;
  roomy.max_bytes = 0;
  s = CheckBudget(options, roomy);
  ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("GFLOP per evaluation"));
  EXPECT_THAT(s.message(), HasSubstr("--max-probe-gflop"));
  roomy.max_gflop = 0;
  EXPECT_TRUE(CheckBudget(options, roomy).ok()) << "0 = unlimited";
}

TEST(ProbeBudgetTest, EveryDefaultGridFitsTheDefaultBudget) {
  for (ProbeKind kind : {ProbeKind::kPeak, ProbeKind::kSram, ProbeKind::kLatency, ProbeKind::kInt8,
                         ProbeKind::kQos, ProbeKind::kAll}) {
    ProbeOptions options;
    options.kind = kind;
    EXPECT_TRUE(CheckBudget(options, ProbeBudget{}).ok()) << ProbeKindName(kind);
  }
}

TEST(ProbeBudgetTest, EstimatesFollowTheFormulas) {
  const ProbeCost peak = EstimateCost(ProbeKind::kPeak, {512, 64, 128});
  EXPECT_DOUBLE_EQ(peak.gflop, 2.0 * 512 * 512 * 128 * 64 / 1e9);
  const ProbeCost int8 = EstimateCost(ProbeKind::kInt8, {512, 64, 128});
  EXPECT_DOUBLE_EQ(int8.gflop, 2.0 * 512 * 512 * 128 * 64 * 64 / 1e9) << "spatial x spatial";
  EXPECT_GT(int8.bytes, peak.bytes);
}

}  // namespace
}  // namespace anerd::probes
