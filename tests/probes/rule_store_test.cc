// RuleProbeStore: one ANE capability probe per (chip, OS build) in anerd.db — a newer probe
// replaces an older one of the same key, another OS build finds nothing, the rows survive
// reopening, and a damaged document is a DATA_LOSS error, not a crash.
#include "server/probes/rule_store.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/store/store.h"
#include "tests/testing/temp_dir.h"

namespace anerd::probes {
namespace {

using anerd::testing::TempDir;

RuleProbeRecord Sample(const std::string& os_build, const std::string& min_surface) {
  RuleProbeRecord r;
  r.chip = "Apple M4";
  r.os_build = os_build;
  r.backend = "ane";
  r.probed_ms = 1765000000000;
  r.rows = {{"min_surface_bytes", "49152", min_surface, min_surface == "49152", "status=0x1d"},
            {"concat", "channels_only", "banned", false, "ANECCompile() FAILED"}};
  return r;
}

TEST(RuleProbeStore, KeptPerChipAndOsBuild) {
  TempDir dir;
  {
    auto store = store::Store::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    RuleProbeStore rules(store->get());
    ASSERT_TRUE(rules.Put(Sample("24E248", "8192")).ok());
    ASSERT_TRUE(rules.Put(Sample("24E248", "65536")).ok());  // re-probed: replaces
    ASSERT_TRUE(rules.Put(Sample("25A100", "16384")).ok());
    EXPECT_EQ(rules.Put(Sample("", "1")).code(), absl::StatusCode::kInvalidArgument);
  }
  auto store = store::Store::Open(dir.path());  // after a restart
  ASSERT_TRUE(store.ok());
  RuleProbeStore rules(store->get());
  auto found = rules.Find("Apple M4", "24E248");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  const RuleProbeRecord& r = **found;
  EXPECT_EQ(r.backend, "ane");
  EXPECT_EQ(r.probed_ms, 1765000000000);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].measured, "65536");
  EXPECT_EQ(r.rows[1].rule, "concat");
  EXPECT_EQ(r.rows[1].detail, "ANECCompile() FAILED");
  EXPECT_FALSE(r.rows[1].agrees);
  auto other = rules.Find("Apple M4", "24F74");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());  // a probe of another OS build does not apply
  EXPECT_FALSE(rules.Find("Apple M1", "24E248")->has_value());
}

TEST(RuleProbeStore, DamagedDocumentsAreDataLoss) {
  RuleProbeRecord r;
  for (const char* bad : {"", "[", "{}", "{\"version\": 1, \"rows\": [1]}",
                          "{\"version\": 1, \"rows\": [{\"rule\": 5}]}", "{\"version\": 9}"}) {
    EXPECT_EQ(RuleProbeRowsFromJson(bad, &r).code(), absl::StatusCode::kDataLoss) << bad;
  }
  const RuleProbeRecord sample = Sample("b", "65536");
  ASSERT_TRUE(RuleProbeRowsFromJson(RuleProbeRowsToJson(sample), &r).ok());
  EXPECT_EQ(r.rows.size(), 2u);
}

}  // namespace
}  // namespace anerd::probes
