// The machine's physical memory, for limits that default to a fraction of it.
// Linux: sysconf(_SC_PHYS_PAGES) × page size (system_memory_posix.cc); macOS: sysctl hw.memsize
// (system_memory_macos.cc; CMake picks the file). Neither looks at cgroup or other soft limits.
// Thread-safety: safe to call from any thread.
#ifndef ANERD_COMMON_SYSTEM_MEMORY_H_
#define ANERD_COMMON_SYSTEM_MEMORY_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace anerd {

// Bytes of physical RAM; UNAVAILABLE when the system does not say.
absl::StatusOr<uint64_t> PhysicalMemoryBytes();

}  // namespace anerd

#endif  // ANERD_COMMON_SYSTEM_MEMORY_H_
