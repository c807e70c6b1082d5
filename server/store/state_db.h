// The start-up check of the state dir's database (<state_dir>/anerd.db), run once before any
// store opens it, so that a damaged or lost database is detected instead of being used silently.
//
//  * A database that SQLite cannot open or whose `PRAGMA quick_check` is not "ok" is corrupt: it
//    is moved aside with its -wal and -shm files (anerd.db.corrupt-<UTC time>[-wal|-shm]), which
//    leaves a fresh, empty database for the stores to create.
//  * A missing or empty (0-byte) database while state files exist (session directories under
//    sessions/, blob files under blobs/) is a lost registry, not a fresh state dir.
//  * In both cases the result says so (`registry_lost`) and carries findings: one line each,
//    naming the file and what was done, for the log and for `anectl doctor`. The callers then
//    rebuild what the directories allow: sessions from their directories (SessionManager adopts
//    directories without a record), and the kernel blobs are kept (no garbage collection) until a
//    clean start.
//
//  * Databases moved aside by earlier starts stay findings until they are deleted.
//
// Writes nothing on a healthy database (start-up works on a full disk).
// Thread-safety: call once, before the stores open the database.
#ifndef ANERD_SERVER_STORE_STATE_DB_H_
#define ANERD_SERVER_STORE_STATE_DB_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace anerd::store {

struct StateDbCheck {
  bool registry_lost = false;         // corrupt, or missing/empty while state files exist
  std::string moved_to;               // where the corrupt database went ("" = not moved)
  std::vector<std::string> findings;  // human-readable, one problem each
};

// Checks <state_dir>/anerd.db as described above. Errors only when the database is corrupt and
// cannot be moved aside (the message names the file and what to do).
absl::StatusOr<StateDbCheck> CheckStateDb(const std::string& state_dir);

}  // namespace anerd::store

#endif  // ANERD_SERVER_STORE_STATE_DB_H_
