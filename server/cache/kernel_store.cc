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
#include "common/hash.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "server/cache/space_reserve.h"
#include "server/cache/sqlite.h"
#include "spdlog/spdlog.h"

namespace anerd::cache {
namespace {

constexpr int kBusyTimeoutMs = 5000;
constexpr char kRecordColumns[] =
    "id, name, backend, options, mil_sha, mil_bytes, weight_bytes, signature, created_ms, "
    "last_used_ms, compile_ms, hits";

constexpr char kCreateTables[] = R"sql(
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
-- No foreign key: Put's INSERT OR REPLACE on kernels must not cascade away the owners; rows
-- are removed with the record by DeleteRowsLocked.
CREATE TABLE IF NOT EXISTS kernel_owners (
  kernel_id TEXT NOT NULL,
  owner TEXT NOT NULL,
  PRIMARY KEY (kernel_id, owner));
CREATE INDEX IF NOT EXISTS kernel_owners_owner ON kernel_owners(owner);
)sql";

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

// Names in `dir` other than "." and "..". Missing directory = empty.
std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

// Creates the shard directory of a blob if needed, fsyncing its parent when it is new.
absl::Status EnsureShardDir(const std::string& blobs_dir, const std::string& shard) {
  const std::string dir = blobs_dir + "/" + shard;
  if (::mkdir(dir.c_str(), 0700) == 0) return SyncDirectory(blobs_dir);
  if (errno == EEXIST) return absl::OkStatus();
  return absl::ErrnoToStatus(errno, "cannot create blob directory " + dir);
}

}  // namespace

// The prepared statements, created once by Open and used under the store's mutex.
struct KernelStore::Statements {
  std::unique_ptr<Statement> upsert_kernel, select_kernel, list_kernels, delete_kernel;
  std::unique_ptr<Statement> insert_weight, select_weights, delete_weights;
  std::unique_ptr<Statement> record_use, count, blob_referenced;
  std::unique_ptr<Statement> begin, commit, rollback;
};

KernelStore::KernelStore(std::string state_dir, std::unique_ptr<SqliteDb> db)
    : state_dir_(std::move(state_dir)), blobs_dir_(state_dir_ + "/blobs"), db_(std::move(db)) {}

KernelStore::~KernelStore() {
  absl::MutexLock lock(&mu_);
  statements_.reset();
  db_.reset();
}

absl::Status KernelNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("kernel ", id, " not found"));
}

absl::StatusOr<std::unique_ptr<KernelStore>> KernelStore::Open(const std::string& state_dir) {
  ANERD_RETURN_IF_ERROR(MakeDirs(state_dir, 0700));
  ANERD_RETURN_IF_ERROR(MakeDirs(state_dir + "/blobs", 0700));
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                         SqliteDb::Open(state_dir + "/anerd.db", kBusyTimeoutMs));
  std::unique_ptr<KernelStore> store(new KernelStore(state_dir, std::move(db)));
  ANERD_RETURN_IF_ERROR(store->Migrate());
  ANERD_RETURN_IF_ERROR(store->Prepare());
  // Temporaries are only left by a crash mid-write; no writer can be running yet.
  for (const std::string& shard : ListDir(store->blobs_dir_)) {
    const std::string dir = store->blobs_dir_ + "/" + shard;
    for (const std::string& name : ListDir(dir)) {
      if (absl::StrContains(name, kAtomicTempMarker)) ::unlink((dir + "/" + name).c_str());
    }
  }
  return store;
}

absl::Status KernelStore::Migrate() {
  absl::MutexLock lock(&mu_);
  ANERD_RETURN_IF_ERROR(
      db_->Exec("CREATE TABLE IF NOT EXISTS schema_version ("
                "component TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL);"));
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> query,
      Statement::Prepare(db_->get(), "SELECT version FROM schema_version WHERE component = ?"));
  query->BindText(1, "kernels");
  ANERD_ASSIGN_OR_RETURN(bool has_row, query->Step());
  const int64_t version = has_row ? query->ColumnInt(0) : 0;
  query.reset();
  if (version > kKernelSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(db_->path(), " has kernel schema version ",
                                                      version, ", newer than this anerd supports (",
                                                      kKernelSchemaVersion, ")"));
  }
  if (version == kKernelSchemaVersion) return absl::OkStatus();
  // Every statement is CREATE ... IF NOT EXISTS, so this also migrates 1 -> 2 (adds
  // kernel_owners; existing kernels stay unowned).
  if (version > 0) {
    spdlog::info("kernel store: migrating schema {} -> {}", version, kKernelSchemaVersion);
  }
  absl::Status status = db_->Exec(
      absl::StrCat("BEGIN IMMEDIATE;", kCreateTables,
                   "INSERT OR REPLACE INTO schema_version (component, version) VALUES ('kernels', ",
                   kKernelSchemaVersion, "); COMMIT;"));
  if (!status.ok()) db_->Exec("ROLLBACK").IgnoreError();  // fails harmlessly if none is open
  return status;
}

absl::Status KernelStore::Prepare() {
  absl::MutexLock lock(&mu_);
  auto s = std::make_unique<Statements>();
  sqlite3* db = db_->get();
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
      {&s->begin, "BEGIN IMMEDIATE"},
      {&s->commit, "COMMIT"},
      {&s->rollback, "ROLLBACK"},
  };
  for (const auto& [slot, text] : sql) {
    ANERD_ASSIGN_OR_RETURN(*slot, Statement::Prepare(db, text));
  }
  statements_ = std::move(s);
  return absl::OkStatus();
}

template <typename Body>
absl::Status KernelStore::InTransactionLocked(Body body) {
  {
    StatementScope begin(*statements_->begin);
    ANERD_RETURN_IF_ERROR(begin->Run());
  }
  absl::Status status = body();
  if (status.ok()) {
    StatementScope commit(*statements_->commit);
    status = commit->Run();
  }
  if (!status.ok()) {
    StatementScope rollback(*statements_->rollback);
    rollback->Run().IgnoreError();  // fails harmlessly if SQLite already rolled back
  }
  return status;
}

std::string KernelStore::BlobPath(const std::string& sha) const {
  return absl::StrCat(blobs_dir_, "/", sha.substr(0, 2), "/", sha);
}

bool KernelStore::HasBlob(const std::string& sha) const {
  struct stat st;
  return IsSha256Hex(sha) && ::stat(BlobPath(sha).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<std::string> KernelStore::PutBlob(absl::string_view bytes) {
  const std::string sha = Sha256Hex(bytes);
  {
    absl::MutexLock lock(&mu_);
    ++pins_[sha];  // before touching the file, so a concurrent Delete cannot collect it
  }
  absl::Status status = WriteBlobIfNeeded(sha, bytes);
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    UnpinLocked(sha);
    return status;
  }
  return sha;
}

absl::Status KernelStore::WriteBlobIfNeeded(const std::string& sha, absl::string_view bytes) {
  const std::string path = BlobPath(sha);
  absl::StatusOr<std::string> existing = ReadFileToString(path, static_cast<int64_t>(bytes.size()));
  if (existing.ok() && *existing == bytes) return absl::OkStatus();
  ANERD_RETURN_IF_ERROR(EnsureShardDir(blobs_dir_, sha.substr(0, 2)));
  return WriteFileAtomically(path, bytes, 0600);
}

void KernelStore::UnpinLocked(const std::string& sha) {
  auto it = pins_.find(sha);
  if (it != pins_.end() && --it->second <= 0) pins_.erase(it);
}

absl::StatusOr<std::string> KernelStore::GetBlob(const std::string& sha) const {
  if (!IsSha256Hex(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("malformed blob hash '", sha, "'"));
  }
  const std::string path = BlobPath(sha);
  absl::StatusOr<std::string> bytes = ReadFileToString(path, std::numeric_limits<int64_t>::max());
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat("blob ", sha, " is missing (", path, ")"));
  }
  if (!bytes.ok()) return bytes.status();
  if (Sha256Hex(*bytes) != sha) {
    return absl::DataLossError(
        absl::StrCat("blob ", path, " is corrupt: its content no longer matches its hash"));
  }
  return bytes;
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
  ANERD_RETURN_IF_ERROR(ValidateRecord(record));
  KernelRecord sorted = record;
  std::sort(sorted.weights.begin(), sorted.weights.end());
  absl::MutexLock lock(&mu_);  // held from the check to the write, so no Delete collects a blob
  for (const std::string& sha : BlobsOf(record)) {
    if (!HasBlob(sha)) {
      return absl::FailedPreconditionError(absl::StrCat("kernel ", record.id, " references blob ",
                                                        sha, " which is not in the store"));
    }
  }
  absl::StatusOr<KernelRecord> old = GetLocked(record.id);
  if (!old.ok() && !absl::IsNotFound(old.status())) return old.status();
  ANERD_RETURN_IF_ERROR(InTransactionLocked(
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return WriteRecordLocked(sorted); }));
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
  absl::MutexLock lock(&mu_);
  return GetLocked(id);
}

std::vector<KernelRecord> KernelStore::List() const {
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
        Statement::Prepare(db_->get(), "DELETE FROM kernel_owners WHERE kernel_id = ?"));
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
  return RunWithSpaceReserve(state_dir_, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return InTransactionLocked(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return DeleteRowsLocked(id); });
  });
}

absl::Status KernelStore::Delete(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(KernelRecord record, GetLocked(id));
  ANERD_RETURN_IF_ERROR(DeleteRecordLocked(id));
  RemoveUnreferencedBlobsLocked(BlobsOf(record));
  return absl::OkStatus();
}

absl::Status KernelStore::AddOwner(const std::string& id, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  ANERD_RETURN_IF_ERROR(GetLocked(id).status());
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(db_->get(),
                         "INSERT OR IGNORE INTO kernel_owners (kernel_id, owner) VALUES (?, ?)"));
  q->BindText(1, id);
  q->BindText(2, owner);
  return q->Run();
}

absl::StatusOr<std::vector<std::string>> KernelStore::Owners(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  return OwnersLocked(id);
}

absl::StatusOr<std::vector<std::string>> KernelStore::OwnersLocked(const std::string& id) const {
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(db_->get(),
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
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(db_->get(), "SELECT COUNT(*) FROM kernel_owners WHERE owner = ?"));
  q->BindText(1, owner);
  ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
  return row ? q->ColumnInt(0) : 0;
}

absl::StatusOr<std::vector<std::string>> KernelStore::OwnedIds(const std::string& owner) const {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<Statement> q,
      Statement::Prepare(db_->get(),
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
        Statement::Prepare(db_->get(),
                           "DELETE FROM kernel_owners WHERE kernel_id = ? AND owner = ?"));
    ANERD_RETURN_IF_ERROR(RunWithSpaceReserve(state_dir_, [&] {
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
  absl::MutexLock lock(&mu_);
  StatementScope q(*statements_->record_use);
  q->BindInt(1, ToSql(hits_delta));
  q->BindInt(2, now_ms);
  q->BindDouble(3, compile_ms);
  q->BindText(4, id);
  ANERD_RETURN_IF_ERROR(q->Run());
  if (sqlite3_changes(db_->get()) == 0) {
    return KernelNotFound(id);
  }
  return absl::OkStatus();
}

int64_t KernelStore::Count() const {
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
  absl::flat_hash_set<std::string> shards;
  int64_t removed = 0;
  for (const std::string& sha : absl::flat_hash_set<std::string>(shas.begin(), shas.end())) {
    // A hash read back from a damaged database may be anything ("../.."): never a path to unlink.
    if (!IsSha256Hex(sha) || pins_.contains(sha)) continue;
    absl::StatusOr<bool> referenced = BlobReferencedLocked(sha);
    if (!referenced.ok() || *referenced) continue;  // when unsure, keep the blob
    if (::unlink(BlobPath(sha).c_str()) == 0) {
      ++removed;
      shards.insert(sha.substr(0, 2));
    } else if (errno != ENOENT) {
      spdlog::warn("kernel store: cannot remove unused blob {}: {}", BlobPath(sha),
                   std::strerror(errno));
    }
  }
  for (const std::string& shard : shards) {
    SyncDirectory(blobs_dir_ + "/" + shard).IgnoreError();  // best effort: removal is advisory
  }
  return removed;
}

absl::StatusOr<int64_t> KernelStore::CollectGarbage() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> candidates;
  for (const std::string& shard : ListDir(blobs_dir_)) {
    const std::string dir = blobs_dir_ + "/" + shard;
    for (const std::string& name : ListDir(dir)) {
      if (IsSha256Hex(name) && shard == name.substr(0, 2)) candidates.push_back(name);
    }
  }
  // Re-check references one by one (the set of all references could be large to hold).
  int64_t removed = 0;
  for (const std::string& sha : candidates) {
    ANERD_ASSIGN_OR_RETURN(bool referenced, BlobReferencedLocked(sha));
    if (!referenced) removed += RemoveUnreferencedBlobsLocked({sha});
  }
  return removed;
}

}  // namespace anerd::cache
