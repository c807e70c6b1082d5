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

// Sets the C library allocator up for a process that streams large messages (gRPC's 1 MiB upload
// chunks, tensors): blocks up to 4 MiB come from the heap instead of a fresh mmap each, and up to
// 64 MiB of freed heap stays mapped instead of being handed back at every free. glibc's defaults
// (a dynamic threshold whose trim limit follows it) unmapped and re-faulted every chunk: on this
// paravirtualised guest the page faults made a 128 MiB gRPC stream 3-5x slower (bench/README.md,
// artifact_bench). Memory beyond that is still returned by TrimFreeMemory after large requests.
// Call once at start, before other threads exist. False where there is nothing to set (non-glibc).
bool TuneAllocatorForStreaming();

// TrimFreeMemory() when `bytes` >= kTrimAfterBytes.
inline void TrimFreeMemoryAfter(int64_t bytes) {
  if (bytes >= kTrimAfterBytes) TrimFreeMemory();
}

}  // namespace anerd

#endif  // ANERD_COMMON_MEMORY_TRIM_H_
