// For fuzz targets of readers that take a path: the input's bytes as an in-memory file
// (memfd_create), named by /proc/self/fd/N. No disk I/O, nothing left behind. Linux only.
#ifndef ANERD_TESTS_FUZZ_MEMFD_PATH_H_
#define ANERD_TESTS_FUZZ_MEMFD_PATH_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace anerd::fuzz {

class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) {
    fd_ = ::memfd_create("fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
  }
  ~MemFile() { ::close(fd_); }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_ = -1;
};

}  // namespace anerd::fuzz

#endif  // ANERD_TESTS_FUZZ_MEMFD_PATH_H_
