// Opening files a client named without letting the file wedge the daemon.
//
// A path a client supplies (token data, a model file, ...) may name a FIFO, a device or a socket:
// a plain open() of a FIFO blocks until a writer appears, and reads from a device may never end.
// Every file a client names is therefore opened through OpenRegularFile: open(O_NONBLOCK), fstat,
// refuse anything but a regular file, then clear O_NONBLOCK. CheckRegularFile is the same test
// with stat() only, for validating a request before work is queued.
//
// Thread-safety: all functions are safe to call concurrently; none blocks on a FIFO.
#ifndef ANERD_COMMON_REGULAR_FILE_H_
#define ANERD_COMMON_REGULAR_FILE_H_

#include <sys/stat.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd {

// An owned file descriptor, closed on destruction. Movable, not copyable.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// A regular file opened read-only (O_CLOEXEC, blocking reads) and its fstat.
struct RegularFile {
  ScopedFd fd;
  struct stat st {};
};

// Opens `path` for reading without blocking on it. `what` names the file in errors ("token
// data", "model file"). INVALID_ARGUMENT "<what> <path> is not a regular file (a FIFO)" for a
// FIFO, socket, device or directory; NOT_FOUND / PERMISSION_DENIED / ... from errno otherwise,
// naming the path.
absl::StatusOr<RegularFile> OpenRegularFile(const std::string& path, absl::string_view what);

// stat()s `path` (following symlinks) and returns the same errors as OpenRegularFile without
// opening it.
absl::Status CheckRegularFile(const std::string& path, absl::string_view what);

// "a FIFO", "a directory", "a socket", "a character device", ... for an st_mode.
absl::string_view FileKindName(mode_t mode);

}  // namespace anerd

#endif  // ANERD_COMMON_REGULAR_FILE_H_
