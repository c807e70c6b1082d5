#include "server/artifacts/artifact_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/atomic_file.h"
#include "common/paths.h"
#include "common/platform_io.h"
#include "common/status_macros.h"
#include "server/store/space_reserve.h"
#include "spdlog/spdlog.h"

namespace anerd::artifacts {
namespace {

using store::Statement;
using store::StatementScope;

constexpr size_t kMaxIo = size_t{1} << 30;
// An uncached upload's staging block: large enough that each disk write is worth its latency,
// small enough to hold per upload in flight.
constexpr size_t kStageBytes = size_t{2} << 20;
// Cached upload writes: how many bytes may be dirty before their writeback is started.
constexpr uint64_t kWritebackBytes = uint64_t{8} << 20;
std::atomic<uint64_t> next_temp{0};

absl::Status ErrnoError(absl::string_view what) {
  return absl::ErrnoToStatus(errno, std::string(what));
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

absl::StatusOr<std::unique_ptr<Statement>> Prepare(store::Store* s, absl::string_view sql)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu()) {
  return Statement::Prepare(s->db().get(), sql);
}

}  // namespace

std::string ArtifactRecord::NameFor(const std::string& owner) const {
  for (const auto& [o, name] : owners) {
    if (o == owner) return name;
  }
  return owners.empty() ? "" : owners.front().second;
}

bool ArtifactRecord::OwnedBy(const std::string& owner) const {
  return std::any_of(owners.begin(), owners.end(), [&](const auto& o) { return o.first == owner; });
}

absl::Status ValidateKind(absl::string_view kind) {
  if (kind == "dataset" || kind == "model" || kind == "tokenizer") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("kind: '", kind, "' is not an artifact kind (dataset, model or tokenizer)"));
}

absl::Status ArtifactNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("artifact ", id, " not found"));
}

PendingArtifact::~PendingArtifact() {
  if (!committed_) ::unlink(path_.c_str());
}

void PendingArtifact::FreeDeleter::operator()(char* p) const { std::free(p); }

absl::Status PendingArtifact::Append(absl::string_view data) {
  hash_.Update(data);
  return Write(data);
}

absl::Status PendingArtifact::Write(absl::string_view data) {
  size_ += data.size();
  if (uncached_ && stage_ == nullptr) {
    void* block = nullptr;
    if (::posix_memalign(&block, kUncachedWriteAlignment, kStageBytes) == 0) {
      stage_.reset(static_cast<char*>(block));
    } else if (SetUncachedWrites(fd_.get(), false)) {
      uncached_ = false;
    } else {
      return absl::ResourceExhaustedError("no memory to stage an uploaded artifact's writes");
    }
  }
  if (!uncached_ && staged_ == 0) return WriteAll(data);  // staged_ > 0 implies a stage_
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kStageBytes - staged_);
    std::memcpy(stage_.get() + staged_, data.data(), n);
    staged_ += n;
    data.remove_prefix(n);
    if (staged_ == kStageBytes) ANERD_RETURN_IF_ERROR(WriteStaged(/*last=*/false));
  }
  return absl::OkStatus();
}

absl::Status PendingArtifact::WriteStaged(bool last) {
  const size_t aligned = staged_ / kUncachedWriteAlignment * kUncachedWriteAlignment;
  ANERD_RETURN_IF_ERROR(WriteAll(absl::string_view(stage_.get(), aligned)));
  if (aligned < staged_) {
    if (!last) return absl::InternalError("an unaligned uncached write before the file's end");
    if (uncached_ && SetUncachedWrites(fd_.get(), false)) uncached_ = false;
    ANERD_RETURN_IF_ERROR(WriteAll(absl::string_view(stage_.get() + aligned, staged_ - aligned)));
  }
  staged_ = 0;
  return absl::OkStatus();
}

absl::Status PendingArtifact::WriteAll(absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd_.get(), data.data(), std::min(data.size(), kMaxIo));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && uncached_ && SetUncachedWrites(fd_.get(), false)) {
      uncached_ = false;  // the file system took the flag but refuses the write: cached from here
      continue;
    }
    if (n < 0) return ErrnoError("cannot store an uploaded artifact");
    data.remove_prefix(static_cast<size_t>(n));
    written_ += static_cast<uint64_t>(n);
  }
  // Cached bytes: have the disk take each full writeback window while the rest arrives.
  if (!uncached_ && written_ - writeback_from_ >= kWritebackBytes) {
    StartWriteback(fd_.get(), writeback_from_, written_ - writeback_from_);
    writeback_from_ = written_;
  }
  return absl::OkStatus();
}

ArtifactStore::ArtifactStore(store::Store* store)
    : store_(store), blobs_(store->state_dir() + "/blobs/artifacts") {}

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(store::Store* store) {
  std::unique_ptr<ArtifactStore> s(new ArtifactStore(store));
  ANERD_RETURN_IF_ERROR(MakeDirs(s->blobs_.dir(), 0700));
  s->blobs_.RemoveTemporaries();
  // Uploads land as temporaries in the top directory (they have no shard until their digest is
  // known).
  if (DIR* d = ::opendir(s->blobs_.dir().c_str())) {
    std::vector<std::string> stale;
    while (const dirent* e = ::readdir(d)) {
      if (absl::StrContains(e->d_name, kAtomicTempMarker)) stale.push_back(e->d_name);
    }
    ::closedir(d);
    for (const std::string& name : stale) ::unlink((s->blobs_.dir() + "/" + name).c_str());
  }
  ANERD_RETURN_IF_ERROR(s->SweepOrphans());
  return s;
}

absl::Status ArtifactStore::SweepOrphans() {
  std::set<std::string> known;
  {
    absl::MutexLock lock(&store_->mu());
    ANERD_ASSIGN_OR_RETURN(auto q, Prepare(store_, "SELECT id FROM artifacts"));
    while (true) {
      ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      known.insert(q->ColumnText(0));
    }
  }
  std::vector<std::string> orphans;
  for (const std::string& sha : blobs_.List()) {
    if (known.count(sha) == 0) orphans.push_back(sha);
  }
  if (!orphans.empty()) {
    spdlog::info("artifacts: removing {} blobs without a record (an upload cut by a crash)",
                 blobs_.Remove(orphans));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PendingArtifact>> ArtifactStore::Begin() {
  const std::string path = absl::StrCat(blobs_.dir(), "/upload", kAtomicTempMarker, getpid(), ".",
                                        next_temp.fetch_add(1));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot create an upload file in ", blobs_.dir()));
  const bool uncached = SetUncachedWrites(fd, true);
  return std::unique_ptr<PendingArtifact>(new PendingArtifact(path, ScopedFd(fd), uncached));
}

std::string ArtifactStore::NewTempPath() {
  return absl::StrCat(blobs_.dir(), "/derived", kAtomicTempMarker, getpid(), ".",
                      next_temp.fetch_add(1));
}

absl::StatusOr<std::unique_ptr<PendingArtifact>> ArtifactStore::Adopt(const std::string& path,
                                                                      std::string* sha256) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    absl::Status s = ErrnoError(absl::StrCat("cannot open ", path));
    ::unlink(path.c_str());
    return s;
  }
  std::unique_ptr<PendingArtifact> p(new PendingArtifact(path, ScopedFd(fd), /*uncached=*/false));
  Sha256 copy;
  std::string buf(size_t{1} << 20, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat("cannot read ", path));  // p unlinks it
    if (n == 0) break;
    const absl::string_view data(buf.data(), static_cast<size_t>(n));
    p->hash_.Update(data);
    copy.Update(data);
    p->size_ += static_cast<uint64_t>(n);
  }
  *sha256 = copy.HexDigest();
  return p;
}

absl::Status ArtifactStore::CheckQuotaLocked(const NewArtifact& meta, uint64_t size) {
  if (meta.quota.count == 0 && meta.quota.bytes == 0) return absl::OkStatus();
  ANERD_ASSIGN_OR_RETURN(auto q, Prepare(store_,
                                         "SELECT COUNT(*), COALESCE(SUM(a.size), 0) FROM "
                                         "artifact_owners o JOIN artifacts a ON a.id = "
                                         "o.artifact_id WHERE o.owner = ? AND o.artifact_id != ?"));
  q->BindText(1, meta.owner);
  q->BindText(2, meta.sha256);
  ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
  const int64_t count = row ? q->ColumnInt(0) : 0;
  const uint64_t bytes = row ? static_cast<uint64_t>(q->ColumnInt(1)) : 0;
  if (meta.quota.count > 0 && count + 1 > meta.quota.count) {
    return absl::ResourceExhaustedError(
        absl::StrCat("client ", meta.owner, " already owns ", count,
                     " artifacts, its limit (raise it with "
                     "anerd --quota-artifacts, or delete some with anectl data rm)"));
  }
  if (meta.quota.bytes > 0 && (size > meta.quota.bytes || bytes > meta.quota.bytes - size)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "client ", meta.owner, " owns ", bytes, " bytes of artifacts; ", size,
        " more would exceed its limit of ", meta.quota.bytes,
        " (raise it with anerd --quota-artifact-bytes, or delete some with anectl data rm)"));
  }
  return absl::OkStatus();
}

absl::Status ArtifactStore::InsertLocked(const NewArtifact& meta, uint64_t size) {
  const int64_t now = NowMs();
  {
    ANERD_ASSIGN_OR_RETURN(
        auto q, Prepare(store_,
                        "INSERT OR IGNORE INTO artifacts (id, kind, size, created_ms) VALUES "
                        "(?, ?, ?, ?)"));
    q->BindText(1, meta.sha256);
    q->BindText(2, meta.kind);
    q->BindInt(3, static_cast<int64_t>(size));
    q->BindInt(4, now);
    ANERD_RETURN_IF_ERROR(q->Run());
  }
  ANERD_ASSIGN_OR_RETURN(
      auto q, Prepare(store_,
                      "INSERT INTO artifact_owners (artifact_id, owner, name, created_ms) VALUES "
                      "(?, ?, ?, ?) ON CONFLICT (artifact_id, owner) DO UPDATE SET name = "
                      "excluded.name"));
  q->BindText(1, meta.sha256);
  q->BindText(2, meta.owner);
  q->BindText(3, meta.name);
  q->BindInt(4, now);
  return q->Run();
}

absl::StatusOr<ArtifactRecord> ArtifactStore::Commit(std::unique_ptr<PendingArtifact> pending,
                                                     const NewArtifact& meta) {
  const std::string digest =
      pending->digest_.empty() ? pending->hash_.HexDigest() : pending->digest_;
  if (digest != meta.sha256) {
    return absl::InvalidArgumentError(absl::StrCat("sha256: the header declares ", meta.sha256,
                                                   " but the ", pending->size(),
                                                   " bytes received hash to ", digest));
  }
  ANERD_RETURN_IF_ERROR(pending->WriteStaged(/*last=*/true));
  if (::fsync(pending->fd_.get()) != 0) return ErrnoError("cannot sync an uploaded artifact");
  const std::string shard = blobs_.dir() + "/" + digest.substr(0, 2);
  if (::mkdir(shard.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError(absl::StrCat("cannot create ", shard));
  }
  absl::MutexLock lock(&store_->mu());
  absl::StatusOr<ArtifactRecord> existing = GetLocked(digest);
  const bool had_bytes = existing.ok() && blobs_.Has(digest);
  ANERD_RETURN_IF_ERROR(CheckQuotaLocked(meta, pending->size()));
  if (!had_bytes) {
    // The blob is in place before its row: a kill in between leaves only an orphan (swept).
    if (::rename(pending->path_.c_str(), blobs_.Path(digest).c_str()) != 0) {
      return ErrnoError(absl::StrCat("cannot store artifact ", digest));
    }
    pending->committed_ = true;
    ANERD_RETURN_IF_ERROR(SyncDirectory(shard));
  }
  absl::Status inserted = store_->InTransaction(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return InsertLocked(meta, pending->size()); });
  if (!inserted.ok()) {
    if (!had_bytes && !existing.ok()) blobs_.Remove({digest});
    return inserted;
  }
  return GetLocked(digest);
}

absl::StatusOr<ArtifactRecord> ArtifactStore::AddOwner(const NewArtifact& meta) {
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(ArtifactRecord record, GetLocked(meta.sha256));
  ANERD_RETURN_IF_ERROR(CheckQuotaLocked(meta, record.size));
  NewArtifact m = meta;
  m.kind = record.kind;
  ANERD_RETURN_IF_ERROR(store_->InTransaction(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return InsertLocked(m, record.size); }));
  return GetLocked(meta.sha256);
}

absl::StatusOr<ArtifactRecord> ArtifactStore::GetLocked(const std::string& id) const {
  ArtifactRecord r;
  {
    ANERD_ASSIGN_OR_RETURN(
        auto q, Prepare(store_, "SELECT id, kind, size, created_ms FROM artifacts WHERE id = ?"));
    q->BindText(1, id);
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) return ArtifactNotFound(id);
    r.id = q->ColumnText(0);
    r.kind = q->ColumnText(1);
    r.size = static_cast<uint64_t>(q->ColumnInt(2));
    r.created_ms = q->ColumnInt(3);
  }
  ANERD_ASSIGN_OR_RETURN(
      auto q, Prepare(store_,
                      "SELECT owner, name FROM artifact_owners WHERE artifact_id = ? ORDER BY "
                      "owner"));
  q->BindText(1, id);
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    r.owners.emplace_back(q->ColumnText(0), q->ColumnText(1));
  }
  return r;
}

absl::StatusOr<ArtifactRecord> ArtifactStore::Get(const std::string& id) const {
  if (!IsSha256Hex(id)) return ArtifactNotFound(id);
  absl::MutexLock lock(&store_->mu());
  return GetLocked(id);
}

absl::StatusOr<std::vector<ArtifactRecord>> ArtifactStore::List() const {
  absl::MutexLock lock(&store_->mu());
  std::vector<std::string> ids;
  {
    ANERD_ASSIGN_OR_RETURN(
        auto q, Prepare(store_, "SELECT id FROM artifacts ORDER BY created_ms DESC, id"));
    while (true) {
      ANERD_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      ids.push_back(q->ColumnText(0));
    }
  }
  std::vector<ArtifactRecord> out;
  for (const std::string& id : ids) {
    ANERD_ASSIGN_OR_RETURN(ArtifactRecord r, GetLocked(id));
    out.push_back(std::move(r));
  }
  return out;
}

absl::Status ArtifactStore::DeleteLocked(const std::string& id) {
  // Even a DELETE appends to the WAL: on a full disk it runs again with the reserve released.
  ANERD_RETURN_IF_ERROR(
      store::RunWithSpaceReserve(store_->state_dir(), [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return store_->InTransaction([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
          for (const char* sql : {"DELETE FROM artifact_owners WHERE artifact_id = ?",
                                  "DELETE FROM artifacts WHERE id = ?"}) {
            ANERD_ASSIGN_OR_RETURN(auto q, Prepare(store_, sql));
            q->BindText(1, id);
            ANERD_RETURN_IF_ERROR(q->Run());
          }
          return absl::OkStatus();
        });
      }));
  blobs_.Remove({id});  // after the rows: a crash in between leaves an orphan, swept at start
  return absl::OkStatus();
}

absl::Status ArtifactStore::Release(const std::string& id, const std::string& owner) {
  if (!IsSha256Hex(id)) return ArtifactNotFound(id);
  absl::MutexLock lock(&store_->mu());
  ANERD_ASSIGN_OR_RETURN(ArtifactRecord r, GetLocked(id));
  if (!r.OwnedBy(owner)) {
    return absl::PermissionDeniedError(absl::StrCat("artifact ", id, " is not owned by ", owner));
  }
  if (r.owners.size() == 1) return DeleteLocked(id);
  return store_->InTransaction([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
    ANERD_ASSIGN_OR_RETURN(
        auto q, Prepare(store_, "DELETE FROM artifact_owners WHERE artifact_id = ? AND owner = ?"));
    q->BindText(1, id);
    q->BindText(2, owner);
    return q->Run();
  });
}

absl::Status ArtifactStore::Delete(const std::string& id) {
  if (!IsSha256Hex(id)) return ArtifactNotFound(id);
  absl::MutexLock lock(&store_->mu());
  ANERD_RETURN_IF_ERROR(GetLocked(id).status());
  return DeleteLocked(id);
}

}  // namespace anerd::artifacts
