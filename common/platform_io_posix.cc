#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/platform_io.h"

namespace anerd {

int CreateAnonymousSharedMemory() {
  std::random_device rd;
  const std::string name = absl::StrCat("/anerd-", getpid(), "-", rd());
  const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd >= 0) {
    shm_unlink(name.c_str());
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  return fd;
}

bool SetUncachedWrites(int fd, bool uncached) {
#ifdef F_NOCACHE
  return fcntl(fd, F_NOCACHE, uncached ? 1 : 0) != -1;
#else
  (void)fd;
  (void)uncached;
  errno = ENOTSUP;
  return false;
#endif
}

bool StartWriteback(int fd, uint64_t offset, uint64_t length) {
  (void)fd;
  (void)offset;
  (void)length;
  errno = ENOTSUP;
  return false;
}

void CloseDescriptorsExcept(int keep1, int keep2) {
  const int max = static_cast<int>(std::min<long>(sysconf(_SC_OPEN_MAX), 4096));
  for (int fd = 3; fd < max; ++fd) {
    if (fd != keep1 && fd != keep2) close(fd);
  }
}

}  // namespace anerd
