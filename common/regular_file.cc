#include "common/regular_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace anerd {
namespace {

absl::Status ErrnoError(int error, absl::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(error, absl::StrCat("cannot open ", what, " ", path));
}

absl::Status NotRegular(mode_t mode, absl::string_view what, const std::string& path) {
  return absl::InvalidArgumentError(absl::StrCat(what, " ", path, " is not a regular file (",
                                                 FileKindName(mode), "); name a regular file"));
}

}  // namespace

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

absl::string_view FileKindName(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISREG(mode)) return "a regular file";
  return "not a file";
}

absl::StatusOr<RegularFile> OpenRegularFile(const std::string& path, absl::string_view what) {
  // O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer.
  const int raw = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (raw < 0) return ErrnoError(errno, what, path);
  RegularFile file;
  file.fd = ScopedFd(raw);
  if (::fstat(raw, &file.st) != 0) return ErrnoError(errno, what, path);
  if (!S_ISREG(file.st.st_mode)) return NotRegular(file.st.st_mode, what, path);
  const int flags = ::fcntl(raw, F_GETFL);
  if (flags < 0 || ::fcntl(raw, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return ErrnoError(errno, what, path);
  }
  return file;
}

absl::Status CheckRegularFile(const std::string& path, absl::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, what, path);
  if (!S_ISREG(st.st_mode)) return NotRegular(st.st_mode, what, path);
  return absl::OkStatus();
}

}  // namespace anerd
