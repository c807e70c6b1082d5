// ProbeStore: results round-trip through anerd.db, list newest first with a probe filter, survive
// reopening, and coexist with the kernel store's schema_version row.
#include "server/probes/probe_store.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/kernel_store.h"
#include "server/store/migrations.h"
#include "server/store/sqlite.h"
#include "tests/testing/temp_dir.h"

namespace anerd::probes {
namespace {

using anerd::testing::TempDir;

ProbeResult Sample(const std::string& id, ProbeKind kind, int64_t created_ms) {
  ProbeResult r;
  r.id = id;
  r.created_ms = created_ms;
  r.options.kind = kind;
  r.options.grid = {{64, 8, 2}};
  r.options.repeat = 3;
  r.options.warmup = 1;
  r.fingerprint.os = "Linux test";
  r.fingerprint.cpu = "Test CPU";
  r.fingerprint.cpu_cores = 2;
  r.fingerprint.caches = "L1d 48K, L2 2048K";
  r.fingerprint.backend = "cpu";
  r.fingerprint.anerd_version = "0.1.0";
  ProbeRow row;
  row.probe = std::string(ProbeKindName(kind));
  row.config = "2x conv 64ch sp8";
  row.channels = 64;
  row.spatial = 8;
  row.depth = 2;
  row.gflop = 0.000131072;
  row.ms_per_eval = 0.25;
  row.tflops = row.gflop / row.ms_per_eval;
  row.p99_us = 300.5;
  row.iterations = 3;
  r.rows = {row};
  r.summary.probe = row.probe;
  r.summary.findings = {{row.probe, "peak", "peak 0.0005 TFLOPS", 0.0005}};
  r.summary.spills = {{3, 1.0, 2.0, 10, 5, 0.5}};
  r.summary.peak_tflops = 0.2;
  r.summary.peak_source = "given";
  r.summary.rows = 1;
  return r;
}

TEST(ProbeStoreTest, RoundTripsAndPersists) {
  TempDir dir;
  {
    auto store = ProbeStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put(Sample("a", ProbeKind::kPeak, 1000)).ok());
    ASSERT_TRUE((*store)->Put(Sample("b", ProbeKind::kSram, 3000)).ok());
    ASSERT_TRUE((*store)->Put(Sample("c", ProbeKind::kPeak, 2000)).ok());
    EXPECT_EQ((*store)->Put(Sample("a", ProbeKind::kPeak, 1)).code(),
              absl::StatusCode::kAlreadyExists);
  }
  auto store = ProbeStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = (*store)->Get("a");
  ASSERT_TRUE(got.ok()) << got.status();
  const ProbeResult want = Sample("a", ProbeKind::kPeak, 1000);
  EXPECT_EQ(ProbeResultToJson(*got), ProbeResultToJson(want));
  EXPECT_EQ(got->rows[0].config, "2x conv 64ch sp8");
  EXPECT_DOUBLE_EQ(got->rows[0].p99_us, 300.5);
  EXPECT_EQ(got->options.grid[0].depth, 2);
  EXPECT_EQ(*got->options.warmup, 1);
  EXPECT_DOUBLE_EQ(got->summary.spills[0].x_after, 2.0);
  EXPECT_EQ(got->fingerprint.caches, "L1d 48K, L2 2048K");

  auto all = (*store)->List("", 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, "b");
  EXPECT_EQ((*all)[1].id, "c");
  EXPECT_EQ((*all)[2].id, "a");
  auto peaks = (*store)->List("peak", 1);
  ASSERT_TRUE(peaks.ok());
  ASSERT_EQ(peaks->size(), 1u);
  EXPECT_EQ((*peaks)[0].id, "c");
  EXPECT_EQ((*store)->Get("zzz").status().code(), absl::StatusCode::kNotFound);
}

TEST(ProbeStoreTest, SharesAnerdDbWithTheKernelStore) {
  TempDir dir;
  auto kernels = cache::KernelStore::Open(dir.path());
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  auto probes = ProbeStore::Open(dir.path());
  ASSERT_TRUE(probes.ok()) << probes.status();
  ASSERT_TRUE((*probes)->Put(Sample("x", ProbeKind::kLatency, 5)).ok());
  auto db = store::SqliteDb::Open(dir.path() + "/anerd.db", 1000);
  ASSERT_TRUE(db.ok());
  auto q = store::Statement::Prepare((*db)->get(),
                                     "SELECT component, version FROM schema_version ORDER BY 1");
  ASSERT_TRUE(q.ok());
  std::vector<std::string> rows;
  while (*(*q)->Step()) rows.push_back((*q)->ColumnText(0) + "=" + (*q)->ColumnText(1));
  // One numbered schema for the whole database (server/store/migrations.h).
  EXPECT_THAT(rows, ::testing::ElementsAre("store=" + std::to_string(store::kSchemaVersion)));
}

TEST(ProbeStoreTest, RecordsOwnersFiltersByThemAndMigratesSchemaOne) {
  TempDir dir;
  {
    // A schema-1 database: no owner column.
    auto db = store::SqliteDb::Open(dir.path() + "/anerd.db", 1000);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec("CREATE TABLE schema_version (component TEXT PRIMARY KEY NOT NULL, "
                           "version INTEGER NOT NULL);"
                           "INSERT INTO schema_version VALUES ('probes', 1);"
                           "CREATE TABLE probe_results (id TEXT PRIMARY KEY NOT NULL, probe TEXT "
                           "NOT NULL, backend TEXT NOT NULL, created_ms INTEGER NOT NULL, "
                           "document TEXT NOT NULL);"
                           "CREATE INDEX probe_results_created ON probe_results (created_ms);")
                    .ok());
    ASSERT_TRUE((*db)
                    ->Exec("INSERT INTO probe_results VALUES ('old', 'latency', 'cpu', 1, '" +
                           ProbeResultToJson(Sample("old", ProbeKind::kLatency, 1)) + "')")
                    .ok());
  }
  auto store = ProbeStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  ProbeResult a = Sample("a", ProbeKind::kLatency, 2);
  a.owner = "token:alice";
  ProbeResult b = Sample("b", ProbeKind::kPeak, 3);
  b.owner = "token:bob";
  ASSERT_TRUE((*store)->Put(a).ok());
  ASSERT_TRUE((*store)->Put(b).ok());
  auto ids = [&](const std::string& probe, const std::string& owner) {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<ProbeResult>> listed = (*store)->List(probe, 10, owner);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const ProbeResult& r : *listed) out.push_back(r.id);
    }
    return out;
  };
  EXPECT_THAT(ids("", ""), ::testing::ElementsAre("b", "a", "old"));
  EXPECT_THAT(ids("", "token:alice"), ::testing::ElementsAre("a"));
  EXPECT_THAT(ids("peak", "token:alice"), ::testing::IsEmpty());
  EXPECT_EQ((*store)->Get("a")->owner, "token:alice");
  EXPECT_EQ((*store)->Get("old")->owner, "") << "older results have no owner";
  EXPECT_EQ((*store)->Get("zz").status().message(), ProbeResultNotFound("zz").message());
}

TEST(ProbeStoreTest, RejectsNewerSchemaAndBadDocuments) {
  TempDir dir;
  ASSERT_TRUE(ProbeStore::Open(dir.path()).ok());
  {
    auto db = store::SqliteDb::Open(dir.path() + "/anerd.db", 1000);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(
        (*db)->Exec("UPDATE schema_version SET version = 99 WHERE component = 'store'").ok());
  }
  EXPECT_EQ(ProbeStore::Open(dir.path()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ProbeResultFromJson("[1,2]").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ProbeResultFromJson(R"({"schema_version": 7})").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ProbeResultFromJson(R"({"schema_version": "x"})").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(ProbeStoreTest, IdsAreTimeStampedAndDistinct) {
  const std::string a = NewProbeResultId(0);
  EXPECT_THAT(a, ::testing::MatchesRegex("19700101-000000-[0-9a-f]{4}"));
  int same = 0;
  for (int i = 0; i < 20; ++i) same += NewProbeResultId(0) == a;
  EXPECT_LT(same, 3);
}

}  // namespace
}  // namespace anerd::probes
