// BlobDir: the content-addressed blob files of the state dir, <state_dir>/blobs/<aa>/<sha256 hex>
// (aa = the first two hex digits). Each blob is written to a temporary file, fsynced, renamed and
// its directory fsynced (common/atomic_file.h), so a crash leaves either no blob or a whole one.
//
// Which blobs are still needed is not this class's business: the kernel store decides
// (references and pins) and calls Remove. Every path is built from a validated hash, so no name
// read back from a damaged database can reach a file outside the directory.
//
// Thread-safety: all methods may be called from any thread (they touch only the filesystem;
// writes of the same blob race harmlessly to identical content).
#ifndef ANERD_SERVER_STORE_BLOB_DIR_H_
#define ANERD_SERVER_STORE_BLOB_DIR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::store {

class BlobDir {
 public:
  explicit BlobDir(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  // <dir>/<aa>/<sha> (`sha` is not validated; callers check IsSha256Hex first).
  std::string Path(const std::string& sha) const;
  // Whether a well-formed `sha` has a regular file (its content is not verified).
  bool Has(const std::string& sha) const;
  // Writes `bytes` as blob `sha` unless a file with exactly that content is already there (an
  // existing blob whose content no longer matches is rewritten).
  absl::Status Write(const std::string& sha, absl::string_view bytes) const;
  // The blob's bytes, verified against its hash. INVALID_ARGUMENT for a malformed sha, NOT_FOUND
  // if missing, DATA_LOSS if its content no longer matches its hash (message names the path).
  absl::StatusOr<std::string> Read(const std::string& sha) const;
  // Unlinks the blobs in `shas` that are well-formed and present, fsyncing their shard
  // directories; returns how many were removed (failures other than ENOENT are logged).
  int64_t Remove(const std::vector<std::string>& shas) const;
  // Every well-formed blob name in its right shard.
  std::vector<std::string> List() const;
  // Deletes temporaries left by a crash mid-write. Call before any writer runs.
  void RemoveTemporaries() const;

 private:
  std::string dir_;
};

}  // namespace anerd::store

#endif  // ANERD_SERVER_STORE_BLOB_DIR_H_
