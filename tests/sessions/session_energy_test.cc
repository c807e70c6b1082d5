// Issue 21 items 2 and 3 wired end to end in the engine: a session's step events carry the energy
// of the daemon's telemetry source (RAPL on a fake sysfs tree whose counter the test advances),
// or the reason it is unavailable (no powercap tree) and no number; utilisation appears against
// a stored peak probe of the backend, and GetInfo's telemetry says what is available.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "common/synth_stories.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/probes/probe_store.h"
#include "tests/testing/engine_session_fixture.h"

namespace anerd::sessions {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// The shared engine fixture (tests/testing/engine_session_fixture.h), on the cpu backend with a
// telemetry source under `sysfs_root`.
class SessionEnergyTest : public anerd::testing::EngineSessionFixture {
 protected:
  std::unique_ptr<engine::Engine> MakeEngine(const std::string& sysfs_root) {
    return MakeEngineWith([&sysfs_root](engine::EngineOptions& options) {
      options.backend = "cpu";
      options.telemetry_sysfs_root = sysfs_root;
      options.telemetry_period = absl::Milliseconds(5);
    });
  }

  // Runs a tiny session on cpu to completion and returns its step events.
  std::vector<SessionEventRecord> RunSteps(engine::Engine& e, int steps) {
    training::TrainSpec spec = TinySpec(steps);
    spec.warmup = 1;
    absl::StatusOr<SessionSnapshot> s = e.sessions().Start(spec, "", "cpu", "");
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return {};
    const SessionSnapshot now = WaitUntilInactive(e, s->id);
    EXPECT_EQ(now.state, SessionState::kCompleted) << now.error;
    EXPECT_TRUE(now.last_step.has_value());
    return StepEvents(e, s->id);
  }
};

TEST_F(SessionEnergyTest, NoPowercapMeansUnavailableNeverZero) {
  auto e = MakeEngine(dir_.path() + "/no-sysfs");
  ASSERT_NE(e, nullptr);
  const engine::DaemonInfo info = e->Info();
  ASSERT_EQ(info.telemetry.size(), 1u);
  EXPECT_EQ(info.telemetry[0].name, "rapl");
  EXPECT_FALSE(info.telemetry[0].available);
  EXPECT_THAT(info.telemetry[0].unavailable, HasSubstr("no RAPL package zone"));
  const std::vector<SessionEventRecord> steps = RunSteps(*e, 3);
  ASSERT_EQ(steps.size(), 3u);
  for (const SessionEventRecord& s : steps) {
    EXPECT_FALSE(s.observed.energy_j.has_value());
    EXPECT_FALSE(s.observed.energy_j_per_token.has_value());
    EXPECT_THAT(s.observed.energy_unavailable, HasSubstr("rapl: no RAPL package zone"));
    EXPECT_FALSE(s.observed.device_utilization.has_value());  // no peak probe stored
    ASSERT_TRUE(s.observed.compile_share.has_value());
    EXPECT_GT(*s.observed.compile_share, 0);
    EXPECT_LT(*s.observed.compile_share, 1);
    ASSERT_TRUE(s.step.phases.kernel_fwd_ms.has_value());
    ASSERT_TRUE(s.step.phases.kernel_bwd_ms.has_value());
    EXPECT_NEAR(*s.step.phases.kernel_fwd_ms + *s.step.phases.kernel_bwd_ms,
                s.step.phases.kernel_ms, 1e-6);
  }
}

TEST_F(SessionEnergyTest, RaplEnergyAndMeasuredPeakReachTheSteps) {
  // A stored peak probe of the cpu backend: its best row is the measured peak.
  {
    absl::StatusOr<std::unique_ptr<probes::ProbeStore>> store =
        probes::ProbeStore::Open(state_dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    probes::ProbeResult r;
    r.id = "20261207-000000-0001";
    r.fingerprint.backend = "cpu";
    probes::ProbeRow row;
    row.probe = "peak";
    row.tflops = 0.004;
    r.rows = {row, row};
    r.rows[1].tflops = 0.008;
    ASSERT_TRUE((*store)->Put(r).ok());
  }
  const std::string zone = dir_.path() + "/sys/class/powercap/intel-rapl:0";
  fs::create_directories(zone);
  std::ofstream(zone + "/name") << "package-0\n";
  std::ofstream(zone + "/max_energy_range_uj") << "262143328850\n";
  std::ofstream(zone + "/energy_uj") << "0\n";
  std::atomic<bool> stop{false};
  std::thread counter([&] {  // ~10 W: the counter advances as the sampler reads it
    for (uint64_t uj = 0; !stop.load(); uj += 10000) {
      std::ofstream(zone + "/energy_uj.tmp") << uj << "\n";
      fs::rename(zone + "/energy_uj.tmp", zone + "/energy_uj");
      absl::SleepFor(absl::Milliseconds(1));
    }
  });
  auto e = MakeEngine(dir_.path() + "/sys");
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->Info().telemetry.at(0).available);
  const std::vector<SessionEventRecord> steps = RunSteps(*e, 4);
  stop = true;
  counter.join();
  ASSERT_EQ(steps.size(), 4u);
  int with_energy = 0;
  for (const SessionEventRecord& s : steps) {
    ASSERT_TRUE(s.observed.device_utilization.has_value());
    EXPECT_DOUBLE_EQ(*s.observed.device_utilization, s.step.tflops / 0.008);
    EXPECT_EQ(s.observed.peak_source, "probe 20261207-000000-0001");
    // Either measured or said why, never a silent gap.
    EXPECT_NE(s.observed.energy_j.has_value(), !s.observed.energy_unavailable.empty());
    if (!s.observed.energy_j.has_value()) continue;
    ++with_energy;
    EXPECT_EQ(s.observed.energy_source, "rapl");
    EXPECT_GE(*s.observed.energy_j, 0);
    const double tokens = static_cast<double>(s.step.tokens_per_s) * s.step.step_ms / 1000;
    EXPECT_NEAR(*s.observed.energy_j_per_token, *s.observed.energy_j / tokens,
                1e-6 * *s.observed.energy_j + 1e-12);
  }
  EXPECT_GT(with_energy, 0);
}

}  // namespace
}  // namespace anerd::sessions
