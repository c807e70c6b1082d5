#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "common/platform_io.h"

namespace anerd {

int CreateAnonymousSharedMemory() { return memfd_create("anerd-arena", MFD_CLOEXEC); }

bool SetUncachedWrites(int fd, bool uncached) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  return fcntl(fd, F_SETFL, uncached ? (flags | O_DIRECT) : (flags & ~O_DIRECT)) == 0;
}

bool StartWriteback(int fd, uint64_t offset, uint64_t length) {
  return sync_file_range(fd, static_cast<off64_t>(offset), static_cast<off64_t>(length),
                         SYNC_FILE_RANGE_WRITE) == 0;
}

void CloseDescriptorsExcept(int keep1, int keep2) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  std::vector<int> fds;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd > 2 && fd != keep1 && fd != keep2 && fd != dirfd(dir)) fds.push_back(fd);
  }
  closedir(dir);
  for (int fd : fds) close(fd);
}

}  // namespace anerd
