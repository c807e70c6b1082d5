#include <sys/sysctl.h>
#include <sys/types.h>

#include "common/system_memory.h"

namespace anerd {

absl::StatusOr<uint64_t> PhysicalMemoryBytes() {
  uint64_t bytes = 0;
  size_t size = sizeof(bytes);
  if (::sysctlbyname("hw.memsize", &bytes, &size, nullptr, 0) != 0 || bytes == 0) {
    return absl::UnavailableError("sysctl hw.memsize does not report the physical memory size");
  }
  return bytes;
}

}  // namespace anerd
