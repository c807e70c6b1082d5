#include "server/store/store.h"

#include <utility>

#include "common/paths.h"
#include "common/status_macros.h"
#include "server/store/migrations.h"

namespace anerd::store {
namespace {

constexpr int kBusyTimeoutMs = 5000;

}  // namespace

Store::Store(std::string state_dir, std::unique_ptr<SqliteDb> db)
    : state_dir_(std::move(state_dir)), blobs_(state_dir_ + "/blobs"), db_(std::move(db)) {}

Store::~Store() {
  absl::MutexLock lock(&mu_);
  db_.reset();
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& state_dir) {
  ANERD_RETURN_IF_ERROR(MakeDirs(state_dir, 0700));
  ANERD_RETURN_IF_ERROR(MakeDirs(state_dir + "/blobs", 0700));
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                         SqliteDb::Open(state_dir + "/anerd.db", kBusyTimeoutMs));
  std::unique_ptr<Store> store(new Store(state_dir, std::move(db)));
  {
    absl::MutexLock lock(&store->mu_);
    ANERD_RETURN_IF_ERROR(Migrate(*store->db_));
  }
  // Temporaries are only left by a crash mid-write; no writer can be running yet.
  store->blobs_.RemoveTemporaries();
  return store;
}

absl::Status Store::InTransaction(const std::function<absl::Status()>& body) {
  ANERD_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  absl::Status status = body();
  if (status.ok()) status = db_->Exec("COMMIT");
  if (!status.ok()) db_->Exec("ROLLBACK").IgnoreError();  // harmless if already rolled back
  return status;
}

}  // namespace anerd::store
