// Returning freed heap memory to the OS after large requests. glibc keeps freed memory in its
// arenas (one per thread that allocated; executor and gRPC threads each have one), so a daemon
// that once evaluated a 1 GB tensor would keep that RSS indefinitely. malloc_trim(0) gives back
// every arena's free pages.
//
// Thread-safety: may be called from any thread (glibc locks each arena while trimming). Cost:
// proportional to the heap size (a few ms for a GB heap); call it after large requests only.
#ifndef ANERD_COMMON_MEMORY_TRIM_H_
#define ANERD_COMMON_MEMORY_TRIM_H_

#include <cstdint>

namespace anerd {

// Requests that freed at least this much are worth a trim.
inline constexpr int64_t kTrimAfterBytes = int64_t{32} << 20;

// Returns free heap memory to the OS. A no-op (returning false) where the C library has no
// malloc_trim (macOS's allocator returns large blocks by itself).
bool TrimFreeMemory();

// TrimFreeMemory() when `bytes` >= kTrimAfterBytes.
inline void TrimFreeMemoryAfter(int64_t bytes) {
  if (bytes >= kTrimAfterBytes) TrimFreeMemory();
}

}  // namespace anerd

#endif  // ANERD_COMMON_MEMORY_TRIM_H_
