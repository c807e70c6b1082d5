// KernelStore: the persistent kernel registry, a table adapter over the state dir's store
// (server/store/store.h: the one connection to anerd.db, its migrations and the blob directory).
//
// Layout: blobs (MIL text, weight files) are content-addressed files in the store's BlobDir
// (<state_dir>/blobs/<aa>/<sha256 hex>, written atomically). Kernel records live in tables
// `kernels` and `kernel_weights` of anerd.db (schema: server/store/migrations.cc).
//
// Ownership: table `kernel_owners(kernel_id, owner)` records which clients hold a kernel
// ("token:alice", "uid:501"; the daemon decides the names). Kernels are content-addressed, so
// several clients may own one; a client's delete only releases its ownership and the record goes
// when the last owner releases it. Kernels stored before owners existed have none.
//
// Blob lifetime: a blob stays while any record references it (as its MIL or one of its weights).
// Put, Commit and Delete remove the blobs a replaced or deleted record no longer shares with any
// other record. A blob written by PutBlob is pinned in memory against that collection until a Put
// referencing it lands (pins do not survive restarts; CollectGarbage at start-up sweeps orphans).
//
// Thread-safety: every method may be called concurrently from any thread; database access is
// serialised by the store's lock and blob bytes are written and hashed outside it. Every method
// but BlobPath does blocking I/O (the database, blob files) and tells the guard so
// (common/blocking_io_guard.h): never call one on a device executor's thread.
// Ownership: the adapter does not own a shared store (it must outlive the adapter); Open(dir)
// makes one the adapter owns. Returned records and bytes are copies.
#ifndef ANERD_SERVER_CACHE_KERNEL_STORE_H_
#define ANERD_SERVER_CACHE_KERNEL_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace anerd::cache {

// The NOT_FOUND every call naming an unknown kernel id gets.
absl::Status KernelNotFound(const std::string& id);

struct KernelRecord {
  std::string id;       // content hash (hex) = the kernel id
  std::string name;     // user label, may be empty
  std::string backend;  // backend name, e.g. "cpu"
  std::string options;  // cache::EncodeCompileOptions (kernel_key.h), e.g. "numerics=ane"
  std::string mil_sha;  // blob hash of the MIL text
  // Canonical weight path -> blob hash. Put stores them sorted by path; Get/List return them so.
  std::vector<std::pair<std::string, std::string>> weights;
  uint64_t mil_bytes = 0, weight_bytes = 0;
  std::string signature;  // cache::EncodeSignature (kernel_key.h), "x:fp16[1,64,1,16]->y:..."
  int64_t created_ms = 0, last_used_ms = 0;  // unix ms
  double compile_ms = 0;                     // last compile time, milliseconds
  uint64_t hits = 0;                         // cache hits + evaluations count (engine decides)
};

class KernelStore {
 public:
  // An adapter over `store` (not owned; must outlive the adapter).
  static absl::StatusOr<std::unique_ptr<KernelStore>> Open(store::Store* store);
  // An adapter over a store of its own: store::Store::Open(state_dir) (for tools and tests).
  static absl::StatusOr<std::unique_ptr<KernelStore>> Open(const std::string& state_dir);
  ~KernelStore();
  KernelStore(const KernelStore&) = delete;
  KernelStore& operator=(const KernelStore&) = delete;

  // Stores `bytes` as a blob and returns its SHA-256 hex. Idempotent; an existing blob whose
  // content no longer matches its name is rewritten. Pins the blob (see file comment).
  absl::StatusOr<std::string> PutBlob(absl::string_view bytes);
  // The blob's bytes, verified against its hash. INVALID_ARGUMENT for a malformed sha, NOT_FOUND
  // if missing, DATA_LOSS if its content no longer matches its hash (message names the path).
  absl::StatusOr<std::string> GetBlob(const std::string& sha) const;
  // Whether the blob file exists (not verified).
  bool HasBlob(const std::string& sha) const;
  // Where blob `sha` lives: <state_dir>/blobs/<aa>/<sha>.
  std::string BlobPath(const std::string& sha) const;

  // Inserts or replaces the record with `record.id`. INVALID_ARGUMENT for an empty id, a malformed
  // blob hash or a duplicated/empty weight path; FAILED_PRECONDITION naming a referenced blob that
  // is not in the store. Blobs only the replaced record used are removed.
  absl::Status Put(const KernelRecord& record);
  // A freshly compiled kernel in one step: writes `blobs` (the MIL text and weight files the
  // record references, by content), then stores the record and, when `owner` is not empty, its
  // ownership in one transaction (either both land or neither). Errors as PutBlob and Put.
  absl::Status Commit(const KernelRecord& record, const std::vector<absl::string_view>& blobs,
                      const std::string& owner);
  // NOT_FOUND naming the id.
  absl::StatusOr<KernelRecord> Get(const std::string& id) const;
  // Every record, newest (created_ms) first; ties by id. Database errors are logged and yield the
  // records read so far.
  std::vector<KernelRecord> List() const;
  // Removes the record (NOT_FOUND naming the id if absent) and the blobs no other record uses.
  // Works on a full disk when the state dir has a space reserve (space_reserve.h); so does
  // Release.
  absl::Status Delete(const std::string& id);
  // Adds `hits_delta` to hits, raises last_used_ms to `now_ms` (never lowers it) and, when
  // compile_ms >= 0, sets compile_ms. NOT_FOUND naming the id if absent.
  absl::Status RecordUse(const std::string& id, uint64_t hits_delta, int64_t now_ms,
                         double compile_ms /* <0 = keep */);
  // Ownership. AddOwner is idempotent (NOT_FOUND naming the id if there is no such record).
  absl::Status AddOwner(const std::string& id, const std::string& owner);
  // Owners of `id`, sorted (empty for an unowned or unknown id).
  absl::StatusOr<std::vector<std::string>> Owners(const std::string& id) const;
  // Kernels `owner` owns.
  absl::StatusOr<int64_t> CountOwned(const std::string& owner) const;
  // The ids of the kernels `owner` owns, sorted.
  absl::StatusOr<std::vector<std::string>> OwnedIds(const std::string& owner) const;
  // Removes `owner`'s ownership of `id`; when no owner remains (or `id` had none), removes the
  // record and its unshared blobs as Delete does. Returns true when the record was removed.
  // NOT_FOUND naming the id if absent; PERMISSION_DENIED if other owners hold it and `owner` is
  // not one of them.
  absl::StatusOr<bool> Release(const std::string& id, const std::string& owner);

  // Number of records (0 on a database error, which is logged).
  int64_t Count() const;
  // Removes blob files no record references and no PutBlob pinned (e.g. written for a compile that
  // then failed). Returns the number removed. Meant for start-up; safe at any time.
  absl::StatusOr<int64_t> CollectGarbage();

 private:
  struct Statements;
  KernelStore(store::Store* store, std::unique_ptr<store::Store> owned);

  absl::Status Prepare();
  absl::Status PutLocked(const KernelRecord& sorted, const std::string& owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnpinLocked(const std::string& sha) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<KernelRecord> GetLocked(const std::string& id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<std::string>> OwnersLocked(const std::string& id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AddOwnerLocked(const std::string& id, const std::string& owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReadWeightsLocked(KernelRecord* record) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteRecordLocked(const KernelRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeleteRowsLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // DeleteRowsLocked in a transaction, using the space reserve on a full disk (space_reserve.h).
  absl::Status DeleteRecordLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bool> BlobReferencedLocked(const std::string& sha) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unlinks those of `shas` that no record references and nothing pins; returns how many.
  int64_t RemoveUnreferencedBlobsLocked(const std::vector<std::string>& shas)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::unique_ptr<store::Store> owned_;  // set by Open(state_dir); destroyed last
  store::Store* const store_;
  absl::Mutex& mu_;  // the store's lock: every use of its connection holds it
  std::unique_ptr<Statements> statements_ ABSL_GUARDED_BY(mu_);  // destroyed before the store
  absl::flat_hash_map<std::string, int64_t> pins_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anerd::cache

#endif  // ANERD_SERVER_CACHE_KERNEL_STORE_H_
