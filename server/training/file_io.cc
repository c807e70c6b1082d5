#include "server/training/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/blocking_io_guard.h"
#include "common/regular_file.h"
#include "common/status_macros.h"

namespace anerd::training {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int e = errno;
  // ENOENT → NOT_FOUND, ENOSPC → RESOURCE_EXHAUSTED, ...; the message names the path.
  return absl::ErrnoToStatus(e, absl::StrCat(what, " ", path));
}

}  // namespace

InFile::~InFile() {
  if (fd_ >= 0) close(fd_);
}

absl::Status InFile::Open(const std::string& path, absl::string_view what) {
  NoteBlockingIo(absl::StrCat(what, " read ", path));
  path_ = path;
  ANERD_ASSIGN_OR_RETURN(RegularFile file, OpenRegularFile(path, what));
  size_ = file.st.st_size;
  fd_ = file.fd.release();
  return absl::OkStatus();
}

absl::Status InFile::Read(int64_t offset, void* dst, int64_t n) const {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = pread(fd_, p, static_cast<size_t>(std::min<int64_t>(n, 1 << 30)), offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ErrnoError("cannot read", path_);
    if (got == 0) return absl::DataLossError(absl::StrCat(path_, ": unexpected end of file"));
    p += got;
    offset += got;
    n -= got;
  }
  return absl::OkStatus();
}

AtomicOutFile::~AtomicOutFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_ && !tmp_.empty()) unlink(tmp_.c_str());
}

absl::Status AtomicOutFile::Open(const std::string& path) {
  NoteBlockingIo("file write " + path);
  static std::atomic<int> counter{0};
  path_ = path;
  tmp_ = absl::StrCat(path, ".tmp.", getpid(), ".", counter++);
  fd_ = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) return ErrnoError("cannot create", tmp_);
  return absl::OkStatus();
}

absl::Status AtomicOutFile::Write(const void* data, int64_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t put = write(fd_, p, static_cast<size_t>(std::min<int64_t>(n, 1 << 30)));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return ErrnoError("cannot write", tmp_);
    p += put;
    n -= put;
  }
  return absl::OkStatus();
}

absl::Status AtomicOutFile::Commit() {
  if (fsync(fd_) != 0) return ErrnoError("cannot fsync", tmp_);
  const int rc = close(fd_);
  fd_ = -1;
  if (rc != 0) return ErrnoError("cannot close", tmp_);
  if (rename(tmp_.c_str(), path_.c_str()) != 0) return ErrnoError("cannot rename onto", path_);
  committed_ = true;
  const size_t slash = path_.rfind('/');
  return SyncDirectory(slash == std::string::npos ? "." : path_.substr(0, slash));
}

}  // namespace anerd::training
