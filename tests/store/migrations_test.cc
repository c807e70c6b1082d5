// Issue 17: one owner of anerd.db with one numbered list of migrations. Databases written by the
// code before it (per-component schema_version rows, tables of every age) open and migrate with
// their rows; newer ones are refused.
#include "server/store/migrations.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/kernel_store.h"
#include "server/probes/probe_store.h"
#include "server/store/sqlite.h"
#include "server/store/store.h"
#include "tests/testing/process_harness.h"

namespace anerd::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Column(SqliteDb& db, const std::string& sql) {
  std::vector<std::string> out;
  absl::StatusOr<std::unique_ptr<Statement>> q = Statement::Prepare(db.get(), sql);
  EXPECT_TRUE(q.ok()) << q.status();
  if (!q.ok()) return out;
  while (true) {
    absl::StatusOr<bool> row = (*q)->Step();
    EXPECT_TRUE(row.ok()) << row.status();
    if (!row.ok() || !*row) return out;
    out.push_back((*q)->ColumnText(0));
  }
}

std::unique_ptr<SqliteDb> OpenRaw(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(dir + "/anerd.db", 1000);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *std::move(db) : nullptr;
}

// The oldest schema each store of the old code created (kernels 1, probes 1, the sessions table
// before owners), with a row in each, exactly as that code wrote them.
constexpr char kOldestSchema[] = R"sql(
CREATE TABLE schema_version (component TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL);
INSERT INTO schema_version VALUES ('kernels', 1), ('probes', 1), ('sessions', 2);
CREATE TABLE kernels (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, backend TEXT NOT NULL,
  options TEXT NOT NULL, mil_sha TEXT NOT NULL, mil_bytes INTEGER NOT NULL,
  weight_bytes INTEGER NOT NULL, signature TEXT NOT NULL, created_ms INTEGER NOT NULL,
  last_used_ms INTEGER NOT NULL, compile_ms REAL NOT NULL, hits INTEGER NOT NULL);
CREATE INDEX kernels_mil_sha ON kernels(mil_sha);
CREATE TABLE kernel_weights (kernel_id TEXT NOT NULL REFERENCES kernels(id) ON DELETE CASCADE,
  path TEXT NOT NULL, sha TEXT NOT NULL, PRIMARY KEY (kernel_id, path));
CREATE INDEX kernel_weights_sha ON kernel_weights(sha);
INSERT INTO kernels VALUES ('k1', 'old', 'cpu', 'numerics=ane',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1, 0, 'x', 1, 2, 0.5, 3);
CREATE TABLE probe_results (id TEXT PRIMARY KEY NOT NULL, probe TEXT NOT NULL,
  backend TEXT NOT NULL, created_ms INTEGER NOT NULL, document TEXT NOT NULL);
CREATE INDEX probe_results_created ON probe_results (created_ms);
INSERT INTO probe_results VALUES ('p1', 'latency', 'cpu', 5, '{}');
CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT, backend TEXT, state TEXT, step INTEGER,
  total_steps INTEGER, last_loss REAL, best_loss REAL, started_ms INTEGER, elapsed_s REAL,
  checkpoint_path TEXT, checkpoint_step INTEGER, checkpoint_seq INTEGER, error TEXT, spec TEXT);
INSERT INTO sessions VALUES ('s1', 'n', 'cpu', 'stopped', 3, 9, 1.5, 1.5, 7, 0.1, '', 0, 0, '', '');
)sql";

TEST(MigrationsTest, TheOldestSchemaOfTheOldCodeMigratesKeepingItsRows) {
  testing::TempDir dir;
  ASSERT_TRUE(OpenRaw(dir.path())->Exec(kOldestSchema).ok());
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  store->reset();
  std::unique_ptr<SqliteDb> db = OpenRaw(dir.path());
  EXPECT_EQ(*SchemaVersion(*db), kSchemaVersion);
  EXPECT_THAT(Column(*db, "SELECT name FROM kernels"), ElementsAre("old"));
  EXPECT_THAT(Column(*db, "SELECT owner FROM probe_results"), ElementsAre(""));
  EXPECT_THAT(Column(*db, "SELECT id || ':' || owner || ':' || step FROM sessions"),
              ElementsAre("s1::3"));
  EXPECT_THAT(Column(*db, "SELECT name FROM sqlite_master WHERE name = 'kernel_owners'"),
              ElementsAre("kernel_owners"));
  EXPECT_TRUE(db->Exec("INSERT INTO kernel_owners VALUES ('k1', 'uid:1')").ok());
}

TEST(MigrationsTest, TheListRunsOnceAndAFreshDatabaseGetsEveryTable) {
  testing::TempDir dir;
  ASSERT_TRUE(Store::Open(dir.path()).ok());
  ASSERT_TRUE(Store::Open(dir.path()).ok()) << "opening again migrates nothing";
  std::unique_ptr<SqliteDb> db = OpenRaw(dir.path());
  EXPECT_THAT(Column(*db, "SELECT component || '=' || version FROM schema_version"),
              ElementsAre("store=" + std::to_string(kSchemaVersion)));
  EXPECT_THAT(Column(*db,
                     "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                     "'sqlite%' ORDER BY name"),
              ElementsAre("ane_rule_probes", "artifact_owners", "artifacts", "kernel_owners",
                          "kernel_weights", "kernels", "probe_results", "schema_version",
                          "sessions"));
}

TEST(MigrationsTest, NewerDatabasesAreRefusedNamingTheirVersion) {
  for (const char* sql : {"INSERT OR REPLACE INTO schema_version VALUES ('store', 99)",
                          "INSERT OR REPLACE INTO schema_version VALUES ('sessions', 99)"}) {
    testing::TempDir dir;
    ASSERT_TRUE(Store::Open(dir.path()).ok());
    ASSERT_TRUE(OpenRaw(dir.path())->Exec(sql).ok());
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path());
    ASSERT_FALSE(store.ok()) << sql;
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(store.status().message(), HasSubstr("99"));
  }
}

TEST(MigrationsTest, TheAdaptersShareTheOneConnection) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::unique_ptr<cache::KernelStore>> kernels =
      cache::KernelStore::Open(store->get());
  absl::StatusOr<std::unique_ptr<probes::ProbeStore>> probes =
      probes::ProbeStore::Open(store->get());
  ASSERT_TRUE(kernels.ok() && probes.ok());
  cache::KernelRecord r;
  r.id = "k";
  r.backend = "cpu";
  r.mil_sha = *(*kernels)->PutBlob("program");
  ASSERT_TRUE((*kernels)->Put(r).ok());
  EXPECT_TRUE((*kernels)->HasBlob(r.mil_sha));
  EXPECT_EQ((*store)->blobs().Path(r.mil_sha), (*kernels)->BlobPath(r.mil_sha));
  probes::ProbeResult p;
  p.id = "p";
  ASSERT_TRUE((*probes)->Put(p).ok());
  EXPECT_EQ((*probes)->List("", 10)->size(), 1u);
  EXPECT_EQ((*kernels)->Count(), 1);
}

}  // namespace
}  // namespace anerd::store
