#include "server/daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace anerd::daemon {
namespace {

std::string ReadAll(int fd) {
  std::string out;
  char buf[512];
  if (lseek(fd, 0, SEEK_SET) < 0) return out;
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<InstanceLock>> InstanceLock::Acquire(
    const std::string& state_dir, const std::string& socket_path) {
  const std::string path = state_dir + "/anerd.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open lock file ", path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder(absl::StripAsciiWhitespace(ReadAll(fd)));
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return absl::UnavailableError(absl::StrCat("cannot lock ", path, ": ", std::strerror(err)));
    }
    std::pair<std::string, std::string> parts = absl::StrSplit(holder, absl::MaxSplits(' ', 1));
    return absl::FailedPreconditionError(
        absl::StrCat("another anerd (pid ", parts.first.empty() ? "unknown" : parts.first,
                     ") is running with socket ", parts.second.empty() ? "unknown" : parts.second,
                     " and state dir ", state_dir, "; stop it first (anectl service stop, or kill ",
                     parts.first, ")"));
  }
  const std::string content = absl::StrCat(getpid(), " ", socket_path, "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, content.data(), content.size(), 0) < 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<InstanceLock>(new InstanceLock(fd));
}

InstanceLock::~InstanceLock() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace anerd::daemon
