// Descriptor-level calls that differ between Linux and macOS, each behind one small function.
// Linux: platform_io_linux.cc (memfd, /proc/self/fd); other POSIX systems (macOS):
// platform_io_posix.cc (an unlinked shm_open object, a bounded close loop). CMake picks the file.
// Thread-safety: safe from any thread; CloseDescriptorsExcept is meant for a fresh process.
#ifndef ANERD_COMMON_PLATFORM_IO_H_
#define ANERD_COMMON_PLATFORM_IO_H_

namespace anerd {

// A new anonymous shared-memory object of size 0, close-on-exec, that no other process can open
// by name (its descriptor can be passed). -1 with errno set on failure.
int CreateAnonymousSharedMemory();

// Closes every descriptor above stdio except `keep1` and `keep2` (either may be -1).
void CloseDescriptorsExcept(int keep1, int keep2);

}  // namespace anerd

#endif  // ANERD_COMMON_PLATFORM_IO_H_
