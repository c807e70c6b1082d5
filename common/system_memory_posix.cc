#include <unistd.h>

#include "common/system_memory.h"

namespace anerd {

absl::StatusOr<uint64_t> PhysicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) {
    return absl::UnavailableError("sysconf does not report the physical memory size");
  }
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

}  // namespace anerd
