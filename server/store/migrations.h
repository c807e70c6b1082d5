// The schema of anerd.db as one numbered list of migrations, for every table in it (kernels,
// probe results, sessions). The database records how far it got as the row
// ('store', N) of table schema_version(component, version).
//
// Databases written before the list existed (anerd before issue 17) carry one row per
// component instead ('kernels' 1|2, 'probes' 1|2, 'sessions' 2): they are adopted by running the
// list from the start; every migration is idempotent (CREATE ... IF NOT EXISTS, columns added
// only when missing), so tables that already exist keep their rows. A component row above what
// that old code knew (a database from some other build) is refused like a newer store version.
//
// To change the schema: append a migration (never edit one that shipped) and raise
// kSchemaVersion; the adapter that uses the table follows.
//
// Thread-safety: call with the connection's owner holding its lock (store.h).
#ifndef ANERD_SERVER_STORE_MIGRATIONS_H_
#define ANERD_SERVER_STORE_MIGRATIONS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/sqlite.h"

namespace anerd::store {

//  1 kernels, kernel_weights         2 kernel_owners
//  3 probe_results                   4 probe_results.owner
//  5 sessions                        6 sessions.owner
//  7 artifacts, artifact_owners     8 ane_rule_probes
//  9 sessions.restarts, sessions.hosts
inline constexpr int kSchemaVersion = 9;

// The schema version recorded in `db` (0 = none: a new or a pre-list database).
absl::StatusOr<int64_t> SchemaVersion(SqliteDb& db);

// Brings `db` to kSchemaVersion, one transaction per migration. FAILED_PRECONDITION naming the
// version when the database is newer than this anerd.
absl::Status Migrate(SqliteDb& db);

}  // namespace anerd::store

#endif  // ANERD_SERVER_STORE_MIGRATIONS_H_
