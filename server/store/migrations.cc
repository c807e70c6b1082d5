#include "server/store/migrations.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace anerd::store {
namespace {

struct Migration {
  int version;
  const char* summary;
  absl::Status (*apply)(SqliteDb& db);
};

// Adds `column` (with its SQL declaration) to `table` unless it is there already.
absl::Status AddColumnIfMissing(SqliteDb& db, const char* table, const char* column,
                                const char* declaration) {
  {
    ANERD_ASSIGN_OR_RETURN(
        auto q, Statement::Prepare(db.get(), absl::StrCat("PRAGMA table_info(", table, ")")));
    while (true) {
      ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      if (q->ColumnText(1) == column) return absl::OkStatus();
    }
  }
  return db.Exec(absl::StrCat("ALTER TABLE ", table, " ADD COLUMN ", column, " ", declaration));
}

absl::Status CreateKernels(SqliteDb& db) {
  return db.Exec(R"sql(
CREATE TABLE IF NOT EXISTS kernels (
  id TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  backend TEXT NOT NULL,
  options TEXT NOT NULL,
  mil_sha TEXT NOT NULL,
  mil_bytes INTEGER NOT NULL,
  weight_bytes INTEGER NOT NULL,
  signature TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  last_used_ms INTEGER NOT NULL,
  compile_ms REAL NOT NULL,
  hits INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS kernels_mil_sha ON kernels(mil_sha);
CREATE TABLE IF NOT EXISTS kernel_weights (
  kernel_id TEXT NOT NULL REFERENCES kernels(id) ON DELETE CASCADE,
  path TEXT NOT NULL,
  sha TEXT NOT NULL,
  PRIMARY KEY (kernel_id, path));
CREATE INDEX IF NOT EXISTS kernel_weights_sha ON kernel_weights(sha);
)sql");
}

// No foreign key: the kernel store's INSERT OR REPLACE on kernels must not cascade the owners
// away; they are removed with the record.
absl::Status CreateKernelOwners(SqliteDb& db) {
  return db.Exec(
      "CREATE TABLE IF NOT EXISTS kernel_owners (kernel_id TEXT NOT NULL, owner TEXT NOT NULL, "
      "PRIMARY KEY (kernel_id, owner));"
      "CREATE INDEX IF NOT EXISTS kernel_owners_owner ON kernel_owners(owner);");
}

absl::Status CreateProbeResults(SqliteDb& db) {
  return db.Exec(
      "CREATE TABLE IF NOT EXISTS probe_results (id TEXT PRIMARY KEY NOT NULL, probe TEXT NOT "
      "NULL, backend TEXT NOT NULL, created_ms INTEGER NOT NULL, document TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS probe_results_created ON probe_results (created_ms);");
}

absl::Status AddProbeOwner(SqliteDb& db) {
  return AddColumnIfMissing(db, "probe_results", "owner", "TEXT NOT NULL DEFAULT ''");
}

// Columns in this order: SessionStore writes rows positionally.
absl::Status CreateSessions(SqliteDb& db) {
  return db.Exec(
      "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, name TEXT, backend TEXT, "
      "state TEXT, step INTEGER, total_steps INTEGER, last_loss REAL, best_loss REAL, "
      "started_ms INTEGER, elapsed_s REAL, checkpoint_path TEXT, checkpoint_step INTEGER, "
      "checkpoint_seq INTEGER, error TEXT, spec TEXT)");
}

absl::Status AddSessionOwner(SqliteDb& db) {
  return AddColumnIfMissing(db, "sessions", "owner", "TEXT NOT NULL DEFAULT ''");
}

// Data-parallel sessions (issue 24): relaunches after faults so far, and the hosts of the latest
// launch (comma-separated).
absl::Status AddSessionRestartsAndHosts(SqliteDb& db) {
  ANERD_RETURN_IF_ERROR(
      AddColumnIfMissing(db, "sessions", "restarts", "INTEGER NOT NULL DEFAULT 0"));
  return AddColumnIfMissing(db, "sessions", "hosts", "TEXT NOT NULL DEFAULT ''");
}

// Content-addressed artifacts (datasets, models, tokenizers; server/artifacts/): one row per
// digest, and one owner row per client that uploaded it with that client's name for it.
absl::Status CreateArtifacts(SqliteDb& db) {
  return db.Exec(
      "CREATE TABLE IF NOT EXISTS artifacts (id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, "
      "size INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS artifact_owners (artifact_id TEXT NOT NULL, owner TEXT NOT "
      "NULL, name TEXT NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (artifact_id, owner));"
      "CREATE INDEX IF NOT EXISTS artifact_owners_owner ON artifact_owners(owner);");
}

// One capability probe per (chip, OS build): its rows as JSON (server/probes/rule_store.h).
absl::Status CreateAneRuleProbes(SqliteDb& db) {
  return db.Exec(
      "CREATE TABLE IF NOT EXISTS ane_rule_probes (chip TEXT NOT NULL, os_build TEXT NOT NULL, "
      "backend TEXT NOT NULL, probed_ms INTEGER NOT NULL, document TEXT NOT NULL, "
      "PRIMARY KEY (chip, os_build))");
}

constexpr Migration kMigrations[] = {
    {1, "kernels and their weights", CreateKernels},
    {2, "kernel owners", CreateKernelOwners},
    {3, "probe results", CreateProbeResults},
    {4, "probe result owners", AddProbeOwner},
    {5, "training sessions", CreateSessions},
    {6, "session owners", AddSessionOwner},
    {7, "artifacts and their owners", CreateArtifacts},
    {8, "ANE rule probes per chip and OS build", CreateAneRuleProbes},
    {9, "session restarts and hosts", AddSessionRestartsAndHosts},
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion,
              "one migration per schema version");

// Versions the per-component rows of pre-list databases reached.
struct LegacyComponent {
  const char* name;
  int last_known;
};
constexpr LegacyComponent kLegacy[] = {{"kernels", 2}, {"probes", 2}, {"sessions", 2}};

absl::StatusOr<int64_t> ComponentVersion(SqliteDb& db, const char* component) {
  ANERD_ASSIGN_OR_RETURN(
      auto q,
      Statement::Prepare(db.get(), "SELECT version FROM schema_version WHERE component = ?"));
  q->BindText(1, component);
  ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
  return row ? q->ColumnInt(0) : 0;
}

absl::Status CreateVersionTable(SqliteDb& db) {
  return db.Exec(
      "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY NOT NULL, "
      "version INTEGER NOT NULL)");
}

absl::Status Apply(SqliteDb& db, const Migration& m) {
  ANERD_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  absl::Status status = m.apply(db);
  if (status.ok()) {
    status = db.Exec(
        absl::StrCat("INSERT OR REPLACE INTO schema_version (component, version) VALUES ('store', ",
                     m.version, "); COMMIT;"));
  }
  if (!status.ok()) {
    db.Exec("ROLLBACK").IgnoreError();  // fails harmlessly if SQLite already rolled back
    return absl::Status(status.code(), absl::StrCat("migration ", m.version, " (", m.summary,
                                                    ") of ", db.path(), ": ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> SchemaVersion(SqliteDb& db) {
  ANERD_RETURN_IF_ERROR(CreateVersionTable(db));
  return ComponentVersion(db, "store");
}

absl::Status Migrate(SqliteDb& db) {
  ANERD_ASSIGN_OR_RETURN(const int64_t version, SchemaVersion(db));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(db.path(), " has schema version ", version,
                                                      ", newer than this anerd supports (",
                                                      kSchemaVersion, ")"));
  }
  for (const LegacyComponent& c : kLegacy) {
    ANERD_ASSIGN_OR_RETURN(const int64_t v, ComponentVersion(db, c.name));
    if (v > c.last_known) {
      return absl::FailedPreconditionError(
          absl::StrCat(db.path(), " has ", c.name, " schema version ", v,
                       ", newer than this anerd supports (", c.last_known, ")"));
    }
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= version) continue;
    if (version > 0) spdlog::info("store: migrating to schema {}: {}", m.version, m.summary);
    ANERD_RETURN_IF_ERROR(Apply(db, m));
  }
  return absl::OkStatus();
}

}  // namespace anerd::store
