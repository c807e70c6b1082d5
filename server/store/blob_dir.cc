#include "server/store/blob_dir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace anerd::store {
namespace {

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

std::string BlobDir::Path(const std::string& sha) const {
  return absl::StrCat(dir_, "/", sha.substr(0, 2), "/", sha);
}

bool BlobDir::Has(const std::string& sha) const {
  struct stat st;
  return IsSha256Hex(sha) && ::stat(Path(sha).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::Status BlobDir::Write(const std::string& sha, absl::string_view bytes) const {
  const std::string path = Path(sha);
  absl::StatusOr<std::string> existing = ReadFileToString(path, static_cast<int64_t>(bytes.size()));
  if (existing.ok() && *existing == bytes) return absl::OkStatus();
  ANERD_RETURN_IF_ERROR(EnsureShardDir(dir_, sha.substr(0, 2)));
  return WriteFileAtomically(path, bytes, 0600);
}

absl::StatusOr<std::string> BlobDir::Read(const std::string& sha) const {
  if (!IsSha256Hex(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("malformed blob hash '", sha, "'"));
  }
  const std::string path = Path(sha);
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

int64_t BlobDir::Remove(const std::vector<std::string>& shas) const {
  absl::flat_hash_set<std::string> shards;
  int64_t removed = 0;
  for (const std::string& sha : shas) {
    if (!IsSha256Hex(sha)) continue;  // never a path to unlink
    if (::unlink(Path(sha).c_str()) == 0) {
      ++removed;
      shards.insert(sha.substr(0, 2));
    } else if (errno != ENOENT) {
      spdlog::warn("blobs: cannot remove unused blob {}: {}", Path(sha), std::strerror(errno));
    }
  }
  for (const std::string& shard : shards) {
    SyncDirectory(dir_ + "/" + shard).IgnoreError();  // best effort: removal is advisory
  }
  return removed;
}

std::vector<std::string> BlobDir::List() const {
  std::vector<std::string> out;
  for (const std::string& shard : ListDir(dir_)) {
    for (const std::string& name : ListDir(dir_ + "/" + shard)) {
      if (IsSha256Hex(name) && shard == name.substr(0, 2)) out.push_back(name);
    }
  }
  return out;
}

void BlobDir::RemoveTemporaries() const {
  for (const std::string& shard : ListDir(dir_)) {
    const std::string dir = dir_ + "/" + shard;
    for (const std::string& name : ListDir(dir)) {
      if (absl::StrContains(name, kAtomicTempMarker)) ::unlink((dir + "/" + name).c_str());
    }
  }
}

}  // namespace anerd::store
