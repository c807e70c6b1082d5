// ArtifactStore: datasets, models and tokenizers that clients upload, content-addressed by the
// SHA-256 of their bytes (issue 19). A table adapter over the store (tables `artifacts` and
// `artifact_owners`, migration 7) plus a blob directory, <state_dir>/blobs/artifacts/<aa>/<sha>
// (apart from the kernel blobs, whose garbage collection knows nothing of artifacts).
//
// Receiving: Begin() creates a temporary file in the blob directory (its name carries the
// kAtomicTempMarker, so a daemon killed mid-upload leaves a file that Open removes); the caller
// appends the bytes and calls Commit, which checks the digest, fsyncs and renames the file into
// place and then writes the rows in one transaction. A PendingArtifact destroyed without Commit
// (a cut stream) unlinks its file. A blob renamed into place whose rows never landed (a kill
// between the two) has no row and is removed by the next Open, so nothing is ever half-visible:
// lists and lookups read only the tables. The upload RPC does the appending and committing on a
// thread of its own (upload_writer.h).
//
// Owners: like kernels, an artifact may have several owners (each with its own name for it);
// Release drops one and the bytes go with the last. Quotas (count and bytes per owner, 0 =
// unlimited) are checked inside the committing transaction.
//
// Thread-safety: all methods are thread-safe (the store's lock guards the database; blob files are
// written once under unique temporary names and renamed). A PendingArtifact is used by one thread
// at a time.
#ifndef ANERD_SERVER_ARTIFACTS_ARTIFACT_STORE_H_
#define ANERD_SERVER_ARTIFACTS_ARTIFACT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/hash.h"
#include "common/regular_file.h"
#include "server/store/blob_dir.h"
#include "server/store/store.h"

namespace anerd::artifacts {

struct ArtifactRecord {
  std::string id;    // lowercase SHA-256 hex of the bytes
  std::string kind;  // dataset | model | tokenizer
  uint64_t size = 0;
  int64_t created_ms = 0;
  // (owner, that owner's name for it), sorted by owner.
  std::vector<std::pair<std::string, std::string>> owners;

  // The name `owner` gave it, or the first owner's when `owner` is not one ("" when unowned).
  std::string NameFor(const std::string& owner) const;
  bool OwnedBy(const std::string& owner) const;
};

// Per-owner limits; 0 = unlimited.
struct ArtifactQuota {
  int64_t count = 0;   // --quota-artifacts
  uint64_t bytes = 0;  // --quota-artifact-bytes
};

// INVALID_ARGUMENT naming the field unless `kind` is dataset, model or tokenizer.
absl::Status ValidateKind(absl::string_view kind);
// NOT_FOUND "artifact ID not found" (the same message whether missing or hidden).
absl::Status ArtifactNotFound(absl::string_view id);

// The bytes of one upload while they arrive. Not copyable.
class PendingArtifact {
 public:
  ~PendingArtifact();  // unlinks the file unless committed
  PendingArtifact(const PendingArtifact&) = delete;
  PendingArtifact& operator=(const PendingArtifact&) = delete;

  // Appends and hashes `data` (the errno status, e.g. RESOURCE_EXHAUSTED on a full disk). Where
  // the file system allows, the bytes bypass the page cache (platform_io.h): they are staged in
  // an aligned 2 MiB block and written a block at a time, which costs a tenth of the CPU time of
  // cached writes and leaves Commit's fsync nothing to write back; the unaligned tail goes
  // through the cache at Commit. Elsewhere each call writes through the cache.
  absl::Status Append(absl::string_view data);
  // As Append, but the bytes are not hashed here: the caller hashes the same bytes in the same
  // order (UploadWriter does it on a second thread, beside the writes) and hands the digest of
  // all of them to SetDigest before Commit. Do not mix with Append.
  absl::Status Write(absl::string_view data);
  // The lowercase hex SHA-256 of every byte given to Write; Commit checks it instead of its own.
  void SetDigest(std::string hex) { digest_ = std::move(hex); }
  uint64_t size() const { return size_; }

 private:
  friend class ArtifactStore;
  struct FreeDeleter {
    void operator()(char* p) const;
  };
  PendingArtifact(std::string path, ScopedFd fd, bool uncached)
      : path_(std::move(path)), fd_(std::move(fd)), uncached_(uncached) {}
  // Writes all of `data`; an uncached write the file system refuses (EINVAL) is retried cached.
  absl::Status WriteAll(absl::string_view data);
  // Writes the staged bytes: whole alignment units uncached, an unaligned rest (only ever the
  // file's end: `last`) cached.
  absl::Status WriteStaged(bool last);

  std::string path_;
  ScopedFd fd_;
  Sha256 hash_;
  std::string digest_;  // from SetDigest; empty: hash_'s
  uint64_t size_ = 0;
  uint64_t written_ = 0;         // bytes in the file
  uint64_t writeback_from_ = 0;  // cached writes: the first byte whose writeback is not started
  bool uncached_;                // the descriptor bypasses the page cache
  std::unique_ptr<char, FreeDeleter> stage_;  // kUncachedWriteAlignment-aligned, when uncached_
  size_t staged_ = 0;
  bool committed_ = false;
};

class ArtifactStore {
 public:
  // Creates blobs/artifacts, removes temporaries a crash left there and blobs without a row.
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(store::Store* store);
  ArtifactStore(const ArtifactStore&) = delete;
  ArtifactStore& operator=(const ArtifactStore&) = delete;

  // A new temporary file for one upload (errno status naming the directory).
  absl::StatusOr<std::unique_ptr<PendingArtifact>> Begin();
  // A fresh temporary path in the blob directory (nothing is created) for a file the daemon
  // writes itself (a tokenized dataset); its name carries kAtomicTempMarker, so Open sweeps it if
  // the daemon dies before Adopt's PendingArtifact is committed or dropped.
  std::string NewTempPath();
  // Takes over the complete file at `path` (a NewTempPath) as a pending artifact: reads it once
  // to hash it and sets `*sha256` to its digest, for Commit. The file is unlinked on error and
  // when the PendingArtifact is dropped uncommitted.
  absl::StatusOr<std::unique_ptr<PendingArtifact>> Adopt(const std::string& path,
                                                         std::string* sha256);

  struct NewArtifact {
    std::string kind;
    std::string name;
    std::string sha256;  // what the client declared
    std::string owner;
    ArtifactQuota quota;
  };
  // Verifies `pending` against `meta.sha256` (INVALID_ARGUMENT naming both digests on a mismatch),
  // moves it into place and records it with `meta.owner` as an owner (see the file comment).
  // RESOURCE_EXHAUSTED when the owner's quota would be exceeded (nothing is stored then).
  absl::StatusOr<ArtifactRecord> Commit(std::unique_ptr<PendingArtifact> pending,
                                        const NewArtifact& meta);
  // Adds `meta.owner` (with its name) to existing artifact `meta.sha256`, without bytes: for
  // callers that already own it or have just proven they hold its bytes. NOT_FOUND if absent.
  absl::StatusOr<ArtifactRecord> AddOwner(const NewArtifact& meta);

  absl::StatusOr<ArtifactRecord> Get(const std::string& id) const;
  // Every artifact, newest first.
  absl::StatusOr<std::vector<ArtifactRecord>> List() const;
  // Drops `owner`'s ownership (PERMISSION_DENIED when not an owner); the artifact and its bytes go
  // when no owner is left.
  absl::Status Release(const std::string& id, const std::string& owner);
  // Removes the artifact whoever owns it (admins).
  absl::Status Delete(const std::string& id);

  // Where the bytes of a stored artifact are (for readers: sessions, downloads).
  std::string BlobPath(const std::string& id) const { return blobs_.Path(id); }
  const store::BlobDir& blobs() const { return blobs_; }

 private:
  explicit ArtifactStore(store::Store* store);
  absl::Status SweepOrphans();
  absl::Status CheckQuotaLocked(const NewArtifact& meta, uint64_t size);
  absl::Status InsertLocked(const NewArtifact& meta, uint64_t size);
  absl::StatusOr<ArtifactRecord> GetLocked(const std::string& id) const;
  absl::Status DeleteLocked(const std::string& id);

  store::Store* store_;  // not owned
  store::BlobDir blobs_;
};

}  // namespace anerd::artifacts

#endif  // ANERD_SERVER_ARTIFACTS_ARTIFACT_STORE_H_
