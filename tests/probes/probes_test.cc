// Probe runners on the CPU backend with tiny grids: row shapes and FLOP/size formulas
// (docs/ANE_NOTES.md §6.3 and §7), never timings; option validation; cancellation; the spill
// detector on synthetic curves; the machine fingerprint.
#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/probes/probe.h"

namespace anerd::probes {
namespace {

using ::testing::HasSubstr;

constexpr double kMiB = 1024.0 * 1024.0;

class ProbeRunTest : public ::testing::Test {
 protected:
  absl::StatusOr<ProbeSummary> Run(ProbeOptions options) {
    rows_.clear();
    return RunProbe(
        &backend_, options, [] { return absl::OkStatus(); },
        [this](const ProbeRow& row) { rows_.push_back(row); });
  }
  static ProbeOptions Tiny(ProbeKind kind, std::vector<GridPoint> grid) {
    ProbeOptions o;
    o.kind = kind;
    o.grid = std::move(grid);
    o.repeat = 2;
    o.warmup = 1;
    o.peak_tflops = 1.0;  // skip the measured reference in most tests
    return o;
  }
  static void ExpectTimed(const ProbeRow& r, int iterations) {
    EXPECT_EQ(r.iterations, iterations);
    EXPECT_GT(r.ms_per_eval, 0);
    EXPECT_GT(r.ms_min, 0);
    EXPECT_LE(r.ms_min, r.ms_per_eval + 1e-9);
    EXPECT_NEAR(r.tflops, r.gflop / r.ms_per_eval, 1e-12);
    EXPECT_LE(r.p50_us, r.p90_us);
    EXPECT_LE(r.p90_us, r.p99_us);
  }

  backend::cpu::CpuBackend backend_{backend::cpu::CpuBackendOptions{}};
  std::vector<ProbeRow> rows_;
};

TEST_F(ProbeRunTest, PeakRowsFollowTheSeedFormulas) {
  auto s = Run(Tiny(ProbeKind::kPeak, {{32, 16, 3}, {48, 8, 2}}));
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(rows_.size(), 2u);
  EXPECT_EQ(rows_[0].config, "3x conv 32ch sp16");
  EXPECT_DOUBLE_EQ(rows_[0].gflop, 2.0 * 32 * 32 * 16 * 3 / 1e9);
  EXPECT_DOUBLE_EQ(rows_[0].weight_mb, 32.0 * 32 * 2 * 3 / kMiB);
  EXPECT_DOUBLE_EQ(rows_[1].gflop, 2.0 * 48 * 48 * 8 * 2 / 1e9);
  for (const ProbeRow& r : rows_) {
    EXPECT_EQ(r.probe, "peak");
    ExpectTimed(r, 2);
    EXPECT_NEAR(r.pct_peak, 100 * r.tflops / 1.0, 1e-9);
  }
  EXPECT_EQ(s->rows, 2);
  EXPECT_EQ(s->peak_source, "given");
  ASSERT_EQ(s->findings.size(), 1u);
  EXPECT_EQ(s->findings[0].kind, "peak");
}

TEST_F(ProbeRunTest, PeakMeasuresAReferenceWhenTheBackendStatesNone) {
  ProbeOptions o = Tiny(ProbeKind::kPeak, {{16, 8, 1}});
  o.peak_tflops = 0;
  auto s = Run(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->peak_tflops, 0);
  EXPECT_THAT(s->peak_source, HasSubstr("measured"));
  ASSERT_EQ(rows_.size(), 1u);
  EXPECT_NEAR(rows_[0].pct_peak, 100 * rows_[0].tflops / s->peak_tflops, 1e-9);
}

TEST_F(ProbeRunTest, SramRowsCarrySizesAndEfficiency) {
  auto s = Run(Tiny(ProbeKind::kSram, {{64, 16, 1}, {128, 16, 1}, {256, 8, 1}}));
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(rows_.size(), 3u);
  const ProbeRow& r = rows_[1];
  EXPECT_EQ(r.config, "conv 128ch sp16");
  EXPECT_DOUBLE_EQ(r.weight_mb, 128.0 * 128 * 2 / kMiB);
  EXPECT_DOUBLE_EQ(r.act_mb, 128.0 * 16 * 2 / kMiB);
  EXPECT_DOUBLE_EQ(r.total_mb, r.weight_mb + 2 * r.act_mb);
  EXPECT_DOUBLE_EQ(r.gflop, 2.0 * 128 * 128 * 16 / 1e9);
  EXPECT_NEAR(r.gflops_per_mb, r.tflops * 1000 / r.weight_mb, 1e-9);
  for (const ProbeRow& row : rows_) ExpectTimed(row, 2);
  // Either spill findings or the "no spill" sentence: always at least one sram finding.
  ASSERT_FALSE(s->findings.empty());
  EXPECT_EQ(s->findings[0].kind, "spill");
  EXPECT_EQ(s->findings.size(), std::max<size_t>(1, s->spills.size()));
}

TEST_F(ProbeRunTest, LatencyReportsPercentiles) {
  auto s = Run(Tiny(ProbeKind::kLatency, {{16, 4, 1}}));
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(rows_.size(), 1u);
  EXPECT_EQ(rows_[0].variant, "in-process");
  ExpectTimed(rows_[0], 2);
  EXPECT_GT(rows_[0].p50_us, 0);
  EXPECT_DOUBLE_EQ(rows_[0].gflop, 2.0 * 16 * 16 * 4 / 1e9);
}

TEST_F(ProbeRunTest, Int8ComparesFp16AndW8a8) {
  auto s = Run(Tiny(ProbeKind::kInt8, {{16, 4, 2}}));
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(rows_.size(), 2u);
  EXPECT_EQ(rows_[0].variant, "fp16");
  EXPECT_EQ(rows_[1].variant, "w8a8");
  EXPECT_EQ(rows_[0].config, "2x conv 16ch 4x4");
  for (const ProbeRow& r : rows_) {
    EXPECT_DOUBLE_EQ(r.gflop, 2.0 * 16 * 16 * 4 * 4 * 2 / 1e9);  // GOP = 2 ch^2 sp^2 depth
    ExpectTimed(r, 2);
  }
  EXPECT_DOUBLE_EQ(rows_[0].weight_mb, 16.0 * 16 * 2 * 2 / kMiB);
  EXPECT_DOUBLE_EQ(rows_[1].weight_mb, 16.0 * 16 * 1 * 2 / kMiB);
  EXPECT_NEAR(rows_[1].ratio, rows_[0].ms_per_eval / rows_[1].ms_per_eval, 1e-12);
  ASSERT_EQ(s->findings.size(), 1u);
  EXPECT_EQ(s->findings[0].kind, "ratio");
}

TEST_F(ProbeRunTest, QosDoesNotApplyOnTheCpu) {
  auto s = Run(Tiny(ProbeKind::kQos, {}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(rows_.empty());
  ASSERT_EQ(s->findings.size(), 1u);
  EXPECT_EQ(s->findings[0].kind, "not_applicable");
  EXPECT_THAT(s->findings[0].text, HasSubstr("does not apply to the cpu backend"));
}

TEST_F(ProbeRunTest, PlannedRowsMatchWhatRuns) {
  ProbeOptions o = Tiny(ProbeKind::kInt8, {{16, 4, 1}, {8, 4, 1}});
  EXPECT_EQ(PlannedRows(o), 4);
  ASSERT_TRUE(Run(o).ok());
  EXPECT_EQ(rows_.size(), 4u);
  ProbeOptions all;
  all.kind = ProbeKind::kAll;
  EXPECT_EQ(PlannedRows(all), 10 + 13 + 2 + 2 * 5 + 17);  // qos: the seed's 17 QoS values
  ProbeOptions qos;
  qos.kind = ProbeKind::kQos;
  EXPECT_EQ(PlannedRows(qos), static_cast<int>(QosSweep().size()));
  EXPECT_EQ(QosSweep().front(), 0u);
  EXPECT_EQ(QosSweep().back(), 63u);
}

TEST_F(ProbeRunTest, BudgetStopsAfterTheMinimumIterations) {
  ProbeOptions o = Tiny(ProbeKind::kSram, {{32, 8, 1}});
  o.repeat = 0;                 // seed counts (50) ...
  o.row_budget_seconds = 1e-9;  // ... but the budget is spent at once
  ASSERT_TRUE(Run(o).ok());
  ASSERT_EQ(rows_.size(), 1u);
  EXPECT_EQ(rows_[0].iterations, kMinTimedIterations);
}

TEST_F(ProbeRunTest, CancellationStopsTheRun) {
  int checks = 0;
  auto s = RunProbe(
      &backend_, Tiny(ProbeKind::kPeak, {{16, 8, 1}, {16, 8, 1}}),
      [&checks] {
        return ++checks > 3 ? absl::CancelledError("probe cancelled") : absl::OkStatus();
      },
      [this](const ProbeRow& row) { rows_.push_back(row); });
  EXPECT_EQ(s.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(rows_.size(), 2u);
}

TEST(ProbeOptionsTest, BadInputNamesTheField) {
  ProbeOptions o;
  o.kind = ProbeKind::kPeak;
  o.grid = {{64, 8, 2}, {0, 8, 2}};
  EXPECT_THAT(ValidateOptions(o).message(), HasSubstr("grid[1].channels"));
  o.grid = {{64, 8, 600}};
  EXPECT_THAT(ValidateOptions(o).message(), HasSubstr("grid[0].depth"));
  o.kind = ProbeKind::kSram;
  o.grid = {{64, 8, 2}};
  EXPECT_THAT(ValidateOptions(o).message(), HasSubstr("grid[0].depth must be 1"));
  o.grid = {};
  o.repeat = -1;
  EXPECT_THAT(ValidateOptions(o).message(), HasSubstr("repeat"));
  o.repeat = 0;
  o.warmup = -2;
  EXPECT_THAT(ValidateOptions(o).message(), HasSubstr("warmup"));
  o.warmup.reset();
  o.kind = ProbeKind::kQos;
  o.grid = {{64, 8, 1}};
  EXPECT_THAT(ValidateOptions(o).message(), HasSubstr("takes no grid"));
  EXPECT_THAT(ProbeKindFromName("turbo", "probe").status().message(),
              HasSubstr("probe: unknown probe 'turbo'"));
  EXPECT_EQ(*ProbeKindFromName("int8", "probe"), ProbeKind::kInt8);
}

TEST(ProbeOptionsTest, DefaultGridsAreTheSeeds) {
  const std::vector<GridPoint> peak = DefaultGrid(ProbeKind::kPeak);
  ASSERT_EQ(peak.size(), 10u);
  EXPECT_EQ(peak[4].channels, 512);
  EXPECT_EQ(peak[4].depth, 128);
  const std::vector<GridPoint> sram = DefaultGrid(ProbeKind::kSram);
  ASSERT_EQ(sram.size(), 13u);
  EXPECT_EQ(sram.back().channels, 8192);
  EXPECT_EQ(sram.back().spatial, 32);
  EXPECT_EQ(DefaultGrid(ProbeKind::kInt8).size(), 5u);
  for (ProbeKind k : {ProbeKind::kPeak, ProbeKind::kSram, ProbeKind::kLatency, ProbeKind::kInt8}) {
    EXPECT_TRUE(ValidateGrid(k, DefaultGrid(k)).ok()) << ProbeKindName(k);
  }
}

// ---- spill detection on synthetic curves ----

std::vector<CurvePoint> Curve(const std::vector<double>& xs, const std::vector<double>& ys) {
  std::vector<CurvePoint> c;
  for (size_t i = 0; i < xs.size(); ++i) c.push_back({xs[i], ys[i]});
  return c;
}

TEST(SpillTest, FindsTwoCliffsOfACacheHierarchy) {
  // Plateau ~10 up to 1 MB, ~6 up to 16 MB, ~2 beyond: two spills.
  auto spills = DetectSpills(
      Curve({0.25, 0.5, 1, 2, 4, 8, 16, 32, 64}, {9.5, 10, 10.2, 6.1, 6, 5.9, 5.8, 2.1, 2}));
  ASSERT_EQ(spills.size(), 2u);
  EXPECT_DOUBLE_EQ(spills[0].x_before, 1);
  EXPECT_DOUBLE_EQ(spills[0].x_after, 2);
  EXPECT_DOUBLE_EQ(spills[0].level_before, 10.2);
  EXPECT_NEAR(spills[0].drop, 1 - 6.1 / 10.2, 1e-12);
  EXPECT_DOUBLE_EQ(spills[1].x_before, 16);
  EXPECT_DOUBLE_EQ(spills[1].x_after, 32);
  EXPECT_EQ(spills[1].index, 7u);
}

TEST(SpillTest, IgnoresASingleNoisyDipAndSmallWobble) {
  EXPECT_TRUE(DetectSpills(Curve({1, 2, 3, 4, 5, 6}, {10, 9.2, 4, 9.8, 9.1, 9.5})).empty());
  EXPECT_TRUE(DetectSpills(Curve({1, 2, 3, 4}, {10, 8.5, 9, 8})).empty());  // < 25%
}

TEST(SpillTest, RampUpIsNotASpillAndInputOrderDoesNotMatter) {
  // Small sizes are overhead-bound (rising), then a cliff; given out of order.
  auto spills = DetectSpills(Curve({8, 1, 4, 2, 16}, {9, 3, 9.5, 6, 4}));
  ASSERT_EQ(spills.size(), 1u);
  EXPECT_DOUBLE_EQ(spills[0].x_before, 8);
  EXPECT_DOUBLE_EQ(spills[0].x_after, 16);  // the last point needs no confirmation
}

TEST(SpillTest, EdgeCases) {
  EXPECT_TRUE(DetectSpills({}).empty());
  EXPECT_TRUE(DetectSpills(Curve({1}, {5})).empty());
  EXPECT_EQ(DetectSpills(Curve({1, 2, 3}, {10, 8, 7.5}), /*min_drop=*/0.1).size(), 1u);
}

TEST(FingerprintTest, DescribesMachineAndBackend) {
  backend::cpu::CpuBackend cpu{backend::cpu::CpuBackendOptions{}};
  const Fingerprint f = MachineFingerprint(cpu.Describe());
  EXPECT_EQ(f.backend, "cpu");
  EXPECT_FALSE(f.backend_version.empty());
  EXPECT_FALSE(f.os.empty());
  EXPECT_GT(f.cpu_cores, 0);
  EXPECT_FALSE(f.anerd_version.empty());
}

}  // namespace
}  // namespace anerd::probes
