// The portable half of the IOReport source on recorded channel sets (tests/telemetry/fixtures):
// which channels count, the units, the sums and the watts.
#include "server/telemetry/ioreport_energy.h"

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::telemetry {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Pair;

std::map<std::string, double> FixtureJoules(const std::string& name) {
  std::ifstream in(std::string(ANERD_SOURCE_DIR) + "/tests/telemetry/fixtures/" + name);
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::vector<ChannelDelta>> deltas = ParseChannelDump(text.str());
  EXPECT_TRUE(deltas.ok()) << deltas.status();
  EXPECT_FALSE(deltas->empty()) << name;
  absl::StatusOr<std::map<std::string, double>> joules = SumEnergyDeltas(*deltas);
  EXPECT_TRUE(joules.ok()) << joules.status();
  return joules.ok() ? *joules : std::map<std::string, double>{};
}

TEST(IoReportEnergyTest, BaseChipCountsOnlyTheDomainChannels) {
  // Per-cluster, per-core and PMP channels repeat parts of the totals: they are not added.
  EXPECT_THAT(
      FixtureJoules("ioreport_base.tsv"),
      ElementsAre(Pair("ane", DoubleNear(2.0, 1e-9)), Pair("cpu", DoubleNear(1.5, 1e-9)),
                  Pair("dram", DoubleNear(0.3, 1e-9)), Pair("gpu", DoubleNear(0.25, 1e-9))));
}

TEST(IoReportEnergyTest, MaxChipAne0AndMicrojoules) {
  EXPECT_THAT(
      FixtureJoules("ioreport_max.tsv"),
      ElementsAre(Pair("ane", DoubleNear(1.25, 1e-9)), Pair("cpu", DoubleNear(3.0, 1e-9)),
                  Pair("dram", DoubleNear(0.75, 1e-9)), Pair("gpu", DoubleNear(4.0, 1e-9))));
}

TEST(IoReportEnergyTest, UltraSumsBothDies) {
  EXPECT_THAT(FixtureJoules("ioreport_ultra.tsv"),
              ElementsAre(Pair("ane", DoubleNear(5.0, 1e-9)), Pair("cpu", DoubleNear(10.0, 1e-9)),
                          Pair("dram", DoubleNear(2.0, 1e-9)), Pair("gpu", DoubleNear(6.0, 1e-9))));
}

TEST(IoReportEnergyTest, Units) {
  EXPECT_DOUBLE_EQ(*JoulesPerUnit("mJ"), 1e-3);
  EXPECT_DOUBLE_EQ(*JoulesPerUnit("uJ"), 1e-6);
  EXPECT_DOUBLE_EQ(*JoulesPerUnit("\xC2\xB5J"), 1e-6);
  EXPECT_DOUBLE_EQ(*JoulesPerUnit("nJ"), 1e-9);
  EXPECT_DOUBLE_EQ(*JoulesPerUnit("J"), 1.0);
  EXPECT_FALSE(JoulesPerUnit("mW").ok());
  EXPECT_FALSE(JoulesPerUnit("").ok());
}

TEST(IoReportEnergyTest, UnknownUnitOnACountedChannelIsAnErrorNotAGuess) {
  absl::StatusOr<std::map<std::string, double>> j =
      SumEnergyDeltas({{"Energy Model", "ANE", "pJ", 5}});
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(std::string(j.status().message()), ::testing::HasSubstr("'ANE'"));
  // ...while an uncounted channel's unit does not matter.
  EXPECT_TRUE(SumEnergyDeltas({{"Energy Model", "ECPU0", "pJ", 5}}).ok());
  EXPECT_FALSE(SumEnergyDeltas({{"Energy Model", "GPU Energy", "nJ", -1}}).ok());
}

TEST(IoReportEnergyTest, WattsFromJoulesAndInterval) {
  absl::StatusOr<std::map<std::string, double>> w =
      DomainWatts(FixtureJoules("ioreport_max.tsv"), 0.5);
  ASSERT_TRUE(w.ok());
  EXPECT_DOUBLE_EQ(w->at("ane"), 2.5);
  EXPECT_DOUBLE_EQ(w->at("gpu"), 8.0);
  EXPECT_FALSE(DomainWatts({{"ane", 1.0}}, 0).ok());
}

TEST(IoReportEnergyTest, DomainOfChannel) {
  EXPECT_EQ(EnergyDomainOfChannel("Energy Model", "DIE_1_CPU Energy"), "cpu");
  EXPECT_EQ(EnergyDomainOfChannel("Energy Model", "GPU0"), "");
  EXPECT_EQ(EnergyDomainOfChannel("PMP", "ANE"), "");
}

TEST(IoReportEnergyTest, DumpErrorsNameTheLine) {
  absl::StatusOr<std::vector<ChannelDelta>> d = ParseChannelDump("# c\nEnergy Model\tANE\tmJ\n");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("line 2"));
}

}  // namespace
}  // namespace anerd::telemetry
