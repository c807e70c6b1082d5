// RAPL on a fake sysfs tree: package zones only, wrap-around at max_energy_range_uj, and
// "unavailable" with a reason (never zero) where there is no readable counter.
#include "server/telemetry/rapl_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/telemetry/energy_sampler.h"
#include "tests/testing/temp_dir.h"

namespace anerd::telemetry {
namespace {

using ::testing::HasSubstr;

void Write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text << "\n";
}

// A package zone with its name, counter and range, plus a sub-zone that must not be added.
std::string MakeZone(const std::string& root, int n, uint64_t energy, uint64_t range) {
  const std::string zone = root + "/class/powercap/intel-rapl:" + std::to_string(n);
  Write(zone + "/name", "package-" + std::to_string(n));
  Write(zone + "/energy_uj", std::to_string(energy));
  Write(zone + "/max_energy_range_uj", std::to_string(range));
  const std::string sub = root + "/class/powercap/intel-rapl:" + std::to_string(n) + ":0";
  Write(sub + "/name", "core");
  Write(sub + "/energy_uj", "5");
  Write(sub + "/max_energy_range_uj", std::to_string(range));
  return zone;
}

TEST(RaplTest, CounterDeltaWrapsAtTheRange) {
  EXPECT_EQ(*CounterDelta(100, 250, 1000), 150u);
  EXPECT_EQ(*CounterDelta(900, 50, 1000), 150u);  // wrapped: 1000 - 900 + 50
  EXPECT_EQ(*CounterDelta(7, 7, 1000), 0u);
  EXPECT_FALSE(CounterDelta(1001, 5, 1000).ok());
}

TEST(RaplTest, ReadsPackagesAcrossAWrap) {
  anerd::testing::TempDir tmp;
  const std::string zone0 = MakeZone(tmp.path(), 0, 999'000'000, 1'000'000'000);
  const std::string zone1 = MakeZone(tmp.path(), 1, 10'000'000, 1'000'000'000);
  absl::StatusOr<std::unique_ptr<RaplSource>> rapl = RaplSource::Open(tmp.path());
  ASSERT_TRUE(rapl.ok()) << rapl.status();
  Write(zone0 + "/energy_uj", "2000000");   // wrapped: 1 J to the top + 2 J
  Write(zone1 + "/energy_uj", "10500000");  // 0.5 J
  absl::StatusOr<EnergyReading> r = (*rapl)->Read();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->joules.size(), 2u);  // the sub-zones are parts of their package
  EXPECT_DOUBLE_EQ(r->joules.at("package-0"), 3.0);
  EXPECT_DOUBLE_EQ(r->joules.at("package-1"), 0.5);
  Write(zone0 + "/energy_uj", "3000000");
  r = (*rapl)->Read();
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(r->joules.at("package-0"), 4.0);  // cumulative
}

TEST(RaplTest, NoPowercapIsUnavailableWithAReason) {
  anerd::testing::TempDir tmp;
  absl::StatusOr<std::unique_ptr<RaplSource>> rapl = RaplSource::Open(tmp.path());
  ASSERT_FALSE(rapl.ok());
  EXPECT_EQ(rapl.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(rapl.status().message()), HasSubstr("no RAPL package zone"));
}

TEST(RaplTest, UnreadableCounterIsUnavailable) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  anerd::testing::TempDir tmp;
  const std::string zone = MakeZone(tmp.path(), 0, 5, 1000);
  ASSERT_EQ(chmod((zone + "/energy_uj").c_str(), 0), 0);
  absl::StatusOr<std::unique_ptr<RaplSource>> rapl = RaplSource::Open(tmp.path());
  ASSERT_FALSE(rapl.ok());
  EXPECT_THAT(std::string(rapl.status().message()), HasSubstr("root only"));
}

TEST(EnergySamplerTest, UnavailablePlatformGivesNoEnergyNotZero) {
  anerd::testing::TempDir tmp;
  EnergySampler sampler(OpenPlatformEnergy(tmp.path()), absl::Milliseconds(50));
  const EnergySnapshot s = sampler.Snapshot();
  EXPECT_FALSE(s.available());
  EXPECT_FALSE(s.unavailable.empty());
  EXPECT_FALSE(EnergyOver(s, sampler.Snapshot(), 1.0).has_value());
  EXPECT_TRUE(s.Watts().empty());
}

TEST(EnergySamplerTest, IntervalEnergyFromCachedReadings) {
  anerd::testing::TempDir tmp;
  const std::string zone = MakeZone(tmp.path(), 0, 0, 1'000'000'000);
  PlatformEnergy p;
  p.source_name = "rapl";
  absl::StatusOr<std::unique_ptr<RaplSource>> rapl = RaplSource::Open(tmp.path());
  ASSERT_TRUE(rapl.ok());
  p.source = *std::move(rapl);
  // A long period: the test takes every reading itself (SampleNow), so nothing depends on timing.
  EnergySampler sampler(std::move(p), absl::Hours(1));
  const EnergySnapshot start = sampler.Snapshot();
  ASSERT_TRUE(start.available());
  absl::SleepFor(absl::Milliseconds(20));
  Write(zone + "/energy_uj", "2000000");  // 2 J
  sampler.SampleNow();
  const EnergySnapshot end = sampler.Snapshot();
  const double dt = absl::ToDoubleSeconds(end.latest->time - start.latest->time);
  std::optional<IntervalEnergy> e = EnergyOver(start, end, dt);
  ASSERT_TRUE(e.has_value());
  EXPECT_NEAR(e->joules, 2.0, 1e-9);  // the interval is exactly the sampled one
  EXPECT_NEAR(e->watts, 2.0 / dt, 1e-6);
  // A shorter interval with no reading inside uses the latest sampled power.
  std::optional<IntervalEnergy> inside = EnergyOver(end, end, dt / 2);
  ASSERT_TRUE(inside.has_value());
  EXPECT_NEAR(inside->joules, 1.0, 1e-9);
  EXPECT_NEAR(end.Watts().at("package-0"), 2.0 / dt, 1e-6);
}

}  // namespace
}  // namespace anerd::telemetry
