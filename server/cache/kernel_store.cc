#include "server/cache/kernel_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/blocking_io_guard.h"
#include "common/hash.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "server/store/space_reserve.h"
#include "server/store/sqlite.h"
#include "spdlog/spdlog.h"

namespace anerd::cache {
namespace {

using store::Statement;
using store::StatementScope;

constexpr char kRecordColumns[] =
    "id, name, backend, options, mil_sha, mil_bytes, weight_bytes, signature, created_ms, "
    "last_used_ms, compile_ms, hits";

std::vector<std::string> BlobsOf(const KernelRecord& record) {
  std::vector<std::string> shas = {record.mil_sha};
  for (const auto& [path, sha] : record.weights) shas.push_back(sha);
  return shas;
}

absl::Status ValidateRecord(const KernelRecord& record) {
  if (record.id.empty()) return absl::InvalidArgumentError("kernel record has an empty id");
  if (!IsSha256Hex(record.mil_sha)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel ", record.id, ": malformed MIL blob hash '", record.mil_sha, "'"));
  }
  std::set<std::string> paths;
  for (const auto& [path, sha] : record.weights) {
    if (path.empty() || !paths.insert(path).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("kernel ", record.id, ": empty or duplicated weight path '", path, "'"));
    }
    if (!IsSha256Hex(sha)) {
      return absl::InvalidArgumentError(absl::StrCat("kernel ", record.id, ": weight ", path,
                                                     " has a malformed blob hash '", sha, "'"));
    }
  }
  return absl::OkStatus();
}

int64_t ToSql(uint64_t value) {
  return static_cast<int64_t>(
      std::min<uint64_t>(value, static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
}

}  // namespace

// The prepared statements, created once by Open and used under the store's mutex.
struct KernelStore::Statements {
  std::unique_ptr<Statement> upsert_kernel, select_kernel, list_kernels, delete_kernel;
  std::unique_ptr<Statement> insert_weight, select_weights, delete_weights;
  std::unique_ptr<Statement> record_use, count, blob_referenced;
};

KernelStore::KernelStore(store::Store* store, std::unique_ptr<store::Store> owned)
    : owned_(std::move(owned)), store_(store), mu_(store->mu()) {}

KernelStore::~KernelStore() {
  absl::MutexLock lock(&mu_);
  statements_.reset();
}

absl::Status KernelNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("kernel ", id, " not found"));
}

absl::StatusOr<std::unique_ptr<KernelStore>> KernelStore::Open(store::Store* store) {
  std::unique_ptr<KernelStore> kernels(new KernelStore(store, nullptr));
  ANERD_RETURN_IF_ERROR(kernels->Prepare());
  return kernels;
}

absl::StatusOr<std::unique_ptr<KernelStore>> KernelStore::Open(const std::string& state_dir) {
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> owned, store::Store::Open(state_dir));
  store::Store* store = owned.get();
  std::unique_ptr<KernelStore> kernels(new KernelStore(store, std::move(owned)));
  ANERD_RETURN_IF_ERROR(kernels->Prepare());
  return kernels;
}

absl::Status KernelStore::Prepare() {
  absl::MutexLock lock(&mu_);
  auto s = std::make_unique<Statements>();
  sqlite3* db = store_->db().get();
  const std::string cols = kRecordColumns;
  const std::pair<std::unique_ptr<Statement>*, std::string> sql[] = {
      {&s->upsert_kernel,
       "INSERT OR REPLACE INTO kernels (" + cols + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&s->select_kernel, "SELECT " + cols + " FROM kernels WHERE id = ?"},
      {&s->list_kernels, "SELECT " + cols + " FROM kernels ORDER BY created_ms DESC, id ASC"},
      {&s->delete_kernel, "DELETE FROM kernels WHERE id = ?"},
      {&s->insert_weight, "INSERT INTO kernel_weights (kernel_id, path, sha) VALUES (?, ?, ?)"},
      {&s->select_weights,
       "SELECT path, sha FROM kernel_weights WHERE kernel_id = ? ORDER BY path"},
      {&s->delete_weights, "DELETE FROM kernel_weights WHERE kernel_id = ?"},
      {&s->record_use,
       "UPDATE kernels SET hits = hits + ?1, last_used_ms = MAX(last_used_ms, ?2), "
       "compile_ms = CASE WHEN ?3 >= 0 THEN ?3 ELSE compile_ms END WHERE id = ?4"},
      {&s->count, "SELECT COUNT(*) FROM kernels"},
      {&s->blob_referenced,
       "SELECT EXISTS (SELECT 1 FROM kernels WHERE mil_sha = ?1) OR "
       "EXISTS (SELECT 1 FROM kernel_weights WHERE sha = ?1)"},
  };
  for (const auto& [slot, text] : sql) {
    ANERD_ASSIGN_OR_RETURN(*slot, Statement::Prepare(db, text));
  }
  statements_ = std::move(s);
  return absl::OkStatus();
}

std::string KernelStore::BlobPath(const std::string& sha) const {
  return store_->blobs().Path(sha);
}

bool KernelStore::HasBlob(const std::string& sha) const {
  NoteBlockingIo("kernel blob check " + sha);
  return store_->blobs().Has(sha);
}

absl::StatusOr<std::string> KernelStore::PutBlob(absl::string_view bytes) {
  const std::string sha = Sha256Hex(bytes);
  NoteBlockingIo("kernel blob write " + sha);
  {
    absl::MutexLock lock(&mu_);
    ++pins_[sha];  // before touching the file, so a concurrent Delete cannot collect it
  }
  absl::Status status = store_->blobs().Write(sha, bytes);
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    UnpinLocked(sha);
    return status;
  }
  return sha;
}

void KernelStore::UnpinLocked(const std::string& sha) {
  auto it = pins_.find(sha);
  if (it != pins_.end() && --it->second <= 0) pins_.erase(it);
}

absl::StatusOr<std::string> KernelStore::GetBlob(const std::string& sha) const {
  NoteBlockingIo("kernel blob read " + sha);
  return store_->blobs().Read(sha);
}

absl::Status KernelStore::WriteRecordLocked(const KernelRecord& r) {
  Statements& s = *statements_;
  {
    StatementScope q(*s.upsert_kernel);
    q->BindText(1, r.id);
    q->BindText(2, r.name);
    q->BindText(3, r.backend);
    q->BindText(4, r.options);
    q->BindText(5, r.mil_sha);
    q->BindInt(6, ToSql(r.mil_bytes));
    q->BindInt(7, ToSql(r.weight_bytes));
    q->BindText(8, r.signature);
    q->BindInt(9, r.created_ms);
    q->BindInt(10, r.last_used_ms);
    q->BindDouble(11, r.compile_ms);
    q->BindInt(12, ToSql(r.hits));
    ANERD_RETURN_IF_ERROR(q->Run());
  }
  {
    StatementScope q(*s.delete_weights);
    q->BindText(1, r.id);
    ANERD_RETURN_IF_ERROR(q->Run());
  }
  for (const auto& [path, sha] : r.weights) {
    StatementScope q(*s.insert_weight);
    q->BindText(1, r.id);
    q->BindText(2, path);
    q->BindText(3, sha);
    ANERD_RETURN_IF_ERROR(q->Run());
  }
  return absl::OkStatus();
}

absl::Status KernelStore::Put(const KernelRecord& record) {
  NoteBlockingIo("kernel record write " + record.id);
  ANERD_RETURN_IF_ERROR(ValidateRecord(record));
  KernelRecord sorted = record;
  std::sort(sorted.weights.begin(), sorted.weights.end());
  absl::MutexLock lock(&mu_);  // held from the check to the write, so no Delete collects a blob
  return PutLocked(sorted, "");
}

absl::Status KernelStore::Commit(const KernelRecord& record,
                                 const std::vector<absl::string_view>& blobs,
                                 const std::string& owner) {
  NoteBlockingIo("kernel commit " + record.id);
  ANERD_RETURN_IF_ERROR(ValidateRecord(record));
  std::vector<std::string> written;
  absl::Status status;
  for (absl::string_view bytes : blobs) {
    absl::StatusOr<std::string> sha = PutBlob(bytes);  // pinned until the record lands
    if (!sha.ok()) {
      status = sha.status();
      break;
    }
    written.push_back(*std::move(sha));
  }
  KernelRecord sorted = record;
  std::sort(sorted.weights.begin(), sorted.weights.end());
  absl::MutexLock lock(&mu_);
  if (status.ok()) status = PutLocked(sorted, owner);  // releases the pins when it lands
  if (!status.ok()) {
    for (const std::string& sha : written) UnpinLocked(sha);
    RemoveUnreferencedBlobsLocked(written);
  }
  return status;
}

absl::Status KernelStore::PutLocked(const KernelRecord& sorted, const std::string& owner) {
  for (const std::string& sha : BlobsOf(sorted)) {
    if (!store_->blobs().Has(sha)) {
      return absl::FailedPreconditionError(absl::StrCat("kernel ", sorted.id, " references blob ",
                                                        sha, " which is not in the store"));
    }
  }
  absl::StatusOr<KernelRecord> old = GetLocked(sorted.id);
  if (!old.ok() && !absl::IsNotFound(old.status())) return old.status();
  ANERD_RETURN_IF_ERROR(store_->InTransaction([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ANERD_RETURN_IF_ERROR(WriteRecordLocked(sorted));
    return owner.empty() ? absl::OkStatus() : AddOwnerLocked(sorted.id, owner);
  }));
  for (const std::string& sha : BlobsOf(sorted)) UnpinLocked(sha);
  if (old.ok()) RemoveUnreferencedBlobsLocked(BlobsOf(*old));
  return absl::OkStatus();
}

absl::Status KernelStore::ReadWeightsLocked(KernelRecord* record) const {
  StatementScope q(*statements_->select_weights);
  q->BindText(1, record->id);
  record->weights.clear();
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) return absl::OkStatus();
    record->weights.emplace_back(q->ColumnText(0), q->ColumnText(1));
  }
}

namespace {

// Reads the kRecordColumns of the current row (weights are read separately).
KernelRecord RecordFromRow(Statement* q) {
  KernelRecord r;
  r.id = q->ColumnText(0);
  r.name = q->ColumnText(1);
  r.backend = q->ColumnText(2);
  r.options = q->ColumnText(3);
  r.mil_sha = q->ColumnText(4);
  r.mil_bytes = static_cast<uint64_t>(q->ColumnInt(5));
  r.weight_bytes = static_cast<uint64_t>(q->ColumnInt(6));
  r.signature = q->ColumnText(7);
  r.created_ms = q->ColumnInt(8);
  r.last_used_ms = q->ColumnInt(9);
  r.compile_ms = q->ColumnDouble(10);
  r.hits = static_cast<uint64_t>(q->ColumnInt(11));
  return r;
}

}  // namespace

absl::StatusOr<KernelRecord> KernelStore::GetLocked(const std::string& id) const {
  KernelRecord record;
  {
    StatementScope q(*statements_->select_kernel);
    q->BindText(1, id);
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) return KernelNotFound(id);
    record = RecordFromRow(q.get());
  }
  ANERD_RETURN_IF_ERROR(ReadWeightsLocked(&record));
  return record;
}

absl::StatusOr<KernelRecord> KernelStore::Get(const std::string& id) const {
  NoteBlockingIo("kernel record read " + id);
  absl::MutexLock lock(&mu_);
  return GetLocked(id);
}

std::vector<KernelRecord> KernelStore::List() const {
  NoteBlockingIo("kernel list");
  absl::MutexLock lock(&mu_);
  std::vector<KernelRecord> records;
  absl::Status status;
  {
    StatementScope q(*statements_->list_kernels);
    while (status.ok()) {
      absl::StatusOr<bool> row = q->Step();
      if (!row.ok()) status = row.status();
      if (!row.ok() || !*row) break;
      records.push_back(RecordFromRow(q.get()));
    }
  }
  for (KernelRecord& record : records) {
    if (status.ok()) status = ReadWeightsLocked(&record);
  }
  if (!status.ok()) spdlog::error("kernel store: listing kernels failed: {}", status.ToString());
  return records;
}

absl::Status KernelStore::DeleteRowsLocked(const std::string& id) {
  {
    ANERD_ASSIGN_OR_RETURN(
        std::unique_ptr<Statement> q,
        Statement::Prepare(store_->db().get(), "DELETE FROM kernel_owners WHERE kernel_id = ?"));
    q->BindText(1, id);
    ANERD_RETURN_IF_ERROR(q->Run());
  }
  {
    StatementScope q(*statements_->delete_weights);
    q->BindText(1, id);
    ANERD_RETURN_IF_ERROR(q->Run());
  }
  StatementScope q(*statements_->delete_kernel);
  q->BindText(1, id);
  return q->Run();
}

absl::Status KernelStore::DeleteRecordLocked(const std::string& id) {
  // Even a DELETE appends to the WAL: on a full disk it runs again with the reserve released.
  return store::RunWithSpaceReserve(store_->state_dir(), [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return store_->InTransaction(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return DeleteRowsLocked(id); });
  });
}

absl::Status KernelStore::Delete(const std::string& id) {
  NoteBlockingIo("kernel delete " + id);
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(KernelRecord record, GetLocked(id));
  ANERD_RETURN_IF_ERROR(DeleteRecordLocked(id));
  RemoveUnreferencedBlobsLocked(BlobsOf(record));
  return absl::OkStatus();
}

absl::Status KernelStore::AddOwner(const std::string& id, const std::string& owner) {
  NoteBlockingIo("kernel owner write " + id);
  absl::MutexLock lock(&mu_);
  ANERD_RETURN_IF_ERROR(GetLocked(id).status());
  return AddOwnerLocked(id, owner);
}

absl::Status KernelStore::AddOwnerLocked(const std::string& id, const std::string& owner) {
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(store_->db().get(),
                         "INSERT OR IGNORE INTO kernel_owners (kernel_id, owner) VALUES (?, ?)"));
  q->BindText(1, id);
  q->BindText(2, owner);
  return q->Run();
}

absl::StatusOr<std::vector<std::string>> KernelStore::Owners(const std::string& id) const {
  NoteBlockingIo("kernel owners read " + id);
  absl::MutexLock lock(&mu_);
  return OwnersLocked(id);
}

absl::StatusOr<std::vector<std::string>> KernelStore::OwnersLocked(const std::string& id) const {
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(store_->db().get(),
                         "SELECT owner FROM kernel_owners WHERE kernel_id = ? ORDER BY owner"));
  q->BindText(1, id);
  std::vector<std::string> owners;
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    owners.push_back(q->ColumnText(0));
  }
  return owners;
}

absl::StatusOr<int64_t> KernelStore::CountOwned(const std::string& owner) const {
  NoteBlockingIo("kernel owned count " + owner);
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(store_->db().get(), "SELECT COUNT(*) FROM kernel_owners WHERE owner = ?"));
  q->BindText(1, owner);
  ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
  return row ? q->ColumnInt(0) : 0;
}

absl::StatusOr<std::vector<std::string>> KernelStore::OwnedIds(const std::string& owner) const {
  NoteBlockingIo("kernel owned ids " + owner);
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(store_->db().get(),
                         "SELECT kernel_id FROM kernel_owners WHERE owner = ? ORDER BY kernel_id"));
  q->BindText(1, owner);
  std::vector<std::string> ids;
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    ids.push_back(q->ColumnText(0));
  }
  return ids;
}

absl::StatusOr<bool> KernelStore::Release(const std::string& id, const std::string& owner) {
  NoteBlockingIo("kernel release " + id);
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(KernelRecord record, GetLocked(id));
  ANERD_ASSIGN_OR_RETURN(std::vector<std::string> owners, OwnersLocked(id));
  const bool owns = std::find(owners.begin(), owners.end(), owner) != owners.end();
  if (!owners.empty() && !owns) {
    return absl::PermissionDeniedError(absl::StrCat("kernel ", id, " belongs to ", owners.size(),
                                                    " other client(s); only they can delete it"));
  }
  if (owners.size() > 1) {
    ANERD_ASSIGN_OR_RETURN(
        std::unique_ptr<Statement> q,
        Statement::Prepare(store_->db().get(),
                           "DELETE FROM kernel_owners WHERE kernel_id = ? AND owner = ?"));
    ANERD_RETURN_IF_ERROR(store::RunWithSpaceReserve(store_->state_dir(), [&] {
      q->Reset();
      q->BindText(1, id);
      q->BindText(2, owner);
      return q->Run();
    }));
    return false;
  }
  ANERD_RETURN_IF_ERROR(DeleteRecordLocked(id));
  RemoveUnreferencedBlobsLocked(BlobsOf(record));
  return true;
}

absl::Status KernelStore::RecordUse(const std::string& id, uint64_t hits_delta, int64_t now_ms,
                                    double compile_ms) {
  NoteBlockingIo("kernel use write " + id);
  absl::MutexLock lock(&mu_);
  StatementScope q(*statements_->record_use);
  q->BindInt(1, ToSql(hits_delta));
  q->BindInt(2, now_ms);
  q->BindDouble(3, compile_ms);
  q->BindText(4, id);
  ANERD_RETURN_IF_ERROR(q->Run());
  if (store_->db().Changes() == 0) {
    return KernelNotFound(id);
  }
  return absl::OkStatus();
}

int64_t KernelStore::Count() const {
  NoteBlockingIo("kernel count");
  absl::MutexLock lock(&mu_);
  StatementScope q(*statements_->count);
  absl::StatusOr<bool> row = q->Step();
  if (!row.ok() || !*row) {
    spdlog::error("kernel store: counting kernels failed: {}", row.status().ToString());
    return 0;
  }
  return q->ColumnInt(0);
}

absl::StatusOr<bool> KernelStore::BlobReferencedLocked(const std::string& sha) const {
  StatementScope q(*statements_->blob_referenced);
  q->BindText(1, sha);
  ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
  return row && q->ColumnInt(0) != 0;
}

int64_t KernelStore::RemoveUnreferencedBlobsLocked(const std::vector<std::string>& shas) {
  std::vector<std::string> unused;
  for (const std::string& sha : absl::flat_hash_set<std::string>(shas.begin(), shas.end())) {
    // A hash read back from a damaged database may be anything ("../.."): never a path to unlink.
    if (!IsSha256Hex(sha) || pins_.contains(sha)) continue;
    absl::StatusOr<bool> referenced = BlobReferencedLocked(sha);
    if (referenced.ok() && !*referenced) unused.push_back(sha);  // when unsure, keep the blob
  }
  return store_->blobs().Remove(unused);
}

absl::StatusOr<int64_t> KernelStore::CollectGarbage() {
  NoteBlockingIo("kernel blob collection");
  absl::MutexLock lock(&mu_);
  // Re-check references one by one (the set of all references could be large to hold).
  int64_t removed = 0;
  for (const std::string& sha : store_->blobs().List()) {
    ANERD_ASSIGN_OR_RETURN(bool referenced, BlobReferencedLocked(sha));
    if (!referenced) removed += RemoveUnreferencedBlobsLocked({sha});
  }
  return removed;
}

}  // namespace anerd::cache
