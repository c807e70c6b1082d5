// Thin RAII helpers over the SQLite C API, shared by the stores in the state dir's anerd.db.
//
// Ownership: SqliteDb owns the connection and closes it on destruction (statements must be
// destroyed first; sqlite3_close_v2 tolerates stragglers). A Statement owns one prepared
// statement. Thread-safety: none — the owning store serialises all use with its own mutex (the
// connection is opened with SQLITE_OPEN_NOMUTEX for that reason).
// Errors: SQLite result codes map to absl codes in SqliteStatus: BUSY/LOCKED -> UNAVAILABLE,
// FULL/NOMEM -> RESOURCE_EXHAUSTED, CORRUPT/NOTADB -> DATA_LOSS, CANTOPEN/PERM/READONLY ->
// PERMISSION_DENIED, anything else -> INTERNAL. Messages carry sqlite3_errmsg and what was done.
#ifndef ANERD_SERVER_STORE_SQLITE_H_
#define ANERD_SERVER_STORE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::store {

// The absl status for SQLite result `rc` on `db` while doing `what`.
absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what);

class SqliteDb {
 public:
  // Opens (creating) the database at `path` in WAL mode with `busy_timeout_ms`, foreign keys on
  // and synchronous=FULL (durability over speed: the records are small). The database file (and so
  // its -wal and -shm files) is created 0600, and an existing one loses group/other permissions.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path,
                                                        int busy_timeout_ms);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }
  // Runs one or more SQL statements without results.
  absl::Status Exec(const std::string& sql);
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t Changes() const { return sqlite3_changes(db_); }

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

class Statement {
 public:
  static absl::StatusOr<std::unique_ptr<Statement>> Prepare(sqlite3* db, absl::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite. Text is copied (SQLITE_TRANSIENT).
  void BindText(int index, absl::string_view value);
  void BindInt(int index, int64_t value);
  void BindDouble(int index, double value);
  // Advances: true when a row is available, false when done, or the error.
  absl::StatusOr<bool> Step();
  // Steps to completion, ignoring rows (for INSERT/UPDATE/DELETE).
  absl::Status Run();
  // Columns are 0-based.
  std::string ColumnText(int index) const;
  int64_t ColumnInt(int index) const;
  double ColumnDouble(int index) const;
  // Resets the statement and clears its bindings, ready for reuse. Call before each use.
  void Reset();

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// Resets `statement` on entry and on scope exit, so a half-stepped statement never keeps a read
// transaction open (which would stall WAL checkpoints). Use: `StatementScope q(*stmt); q->Bind..`.
class StatementScope {
 public:
  explicit StatementScope(Statement& statement) : statement_(statement) { statement_.Reset(); }
  ~StatementScope() { statement_.Reset(); }
  StatementScope(const StatementScope&) = delete;
  StatementScope& operator=(const StatementScope&) = delete;
  Statement* operator->() { return &statement_; }
  Statement* get() { return &statement_; }

 private:
  Statement& statement_;
};

}  // namespace anerd::store

#endif  // ANERD_SERVER_STORE_SQLITE_H_
