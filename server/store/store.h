// Store: the one owner of the state dir's database (<state_dir>/anerd.db) and blob directory
// (<state_dir>/blobs/). It holds the only SQLite connection (WAL mode, synchronous=FULL, 5 s busy
// timeout; sqlite.h) and runs the schema migrations (migrations.h) when it opens. The kernel,
// probe and session stores are table adapters over it; none opens the database itself.
//
// The corruption check (state_db.h: quick_check, move aside) runs before Open; Open works on
// whatever database it then finds, creating a fresh one when there is none.
//
// Thread-safety: the connection is not thread-safe (SQLITE_OPEN_NOMUTEX): every use of db(),
// including a statement's whole life from bind to reset, holds mu(). blobs() is thread-safe.
// Adapters keep their prepared statements and must be destroyed before the Store.
#ifndef ANERD_SERVER_STORE_STORE_H_
#define ANERD_SERVER_STORE_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/blob_dir.h"
#include "server/store/sqlite.h"

namespace anerd::store {

class Store {
 public:
  // Creates <state_dir> (0700) and blobs/ if needed, removes temporaries a crash left in blobs/,
  // opens or creates anerd.db and migrates it. FAILED_PRECONDITION when the database is newer
  // than this anerd; PERMISSION_DENIED / DATA_LOSS etc. from the filesystem or SQLite.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& state_dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& state_dir() const { return state_dir_; }
  const BlobDir& blobs() const { return blobs_; }

  absl::Mutex& mu() const ABSL_LOCK_RETURNED(mu_) { return mu_; }
  SqliteDb& db() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return *db_; }
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back when it or the commit fails.
  absl::Status InTransaction(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 private:
  Store(std::string state_dir, std::unique_ptr<SqliteDb> db);

  const std::string state_dir_;
  const BlobDir blobs_;
  mutable absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anerd::store

#endif  // ANERD_SERVER_STORE_STORE_H_
