// Descriptor-level calls that differ between Linux and macOS, each behind one small function.
// Linux: platform_io_linux.cc (memfd, /proc/self/fd, O_DIRECT); other POSIX systems (macOS):
// platform_io_posix.cc (an unlinked shm_open object, a bounded close loop, F_NOCACHE). CMake picks
// the file.
// Thread-safety: safe from any thread; CloseDescriptorsExcept is meant for a fresh process.
#ifndef ANERD_COMMON_PLATFORM_IO_H_
#define ANERD_COMMON_PLATFORM_IO_H_

#include <cstddef>
#include <cstdint>

namespace anerd {

// Buffers, file offsets and lengths of uncached writes are multiples of this (Linux O_DIRECT asks
// for the file system's block size; 4096 covers every common one).
inline constexpr size_t kUncachedWriteAlignment = 4096;

// Turns uncached writes on or off for `fd`: bytes go from the caller's buffer to the disk without
// a copy in the page cache (Linux: O_DIRECT, so every write must then be aligned as above, or it
// fails with EINVAL; macOS: F_NOCACHE). False, with errno set, when the file system does not
// support it (tmpfs, some network file systems); `fd` is then unchanged.
bool SetUncachedWrites(int fd, bool uncached);

// Asks the kernel to start writing the dirty pages of [offset, offset + length) of `fd` to the
// disk now, without waiting (Linux: sync_file_range(SYNC_FILE_RANGE_WRITE)), so that a later
// fsync finds little left to write. Not durability: still fsync. False (errno set) where
// unsupported (other systems: a no-op that returns false with ENOTSUP).
bool StartWriteback(int fd, uint64_t offset, uint64_t length);

// A new anonymous shared-memory object of size 0, close-on-exec, that no other process can open
// by name (its descriptor can be passed). -1 with errno set on failure.
int CreateAnonymousSharedMemory();

// Closes every descriptor above stdio except `keep1` and `keep2` (either may be -1).
void CloseDescriptorsExcept(int keep1, int keep2);

}  // namespace anerd

#endif  // ANERD_COMMON_PLATFORM_IO_H_
