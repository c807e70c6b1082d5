// Shared use of the framework's per-program temp dirs (NSTemporaryDirectory()/<hexIdentifier>,
// docs/ANE_NOTES.md §1.3): identical programs map to the same dir, and the dir is per user, not
// per process, so models in this process and in other anerd processes (a retiring worker and its
// replacement) may use one dir at once.
//
// Per dir: a reference count in this process, and across processes two lock files beside it:
//   "<dir>.anerd-guard"  exclusive, held only while a process populates or removes the dir;
//   "<dir>.anerd-users"  shared by every process using the dir.
// flock locks die with their process, so a killed worker never strands a dir: the next first user
// (nobody holds "users") clears and repopulates it, and the last user removes it. The two small
// lock files stay behind.
//
// Threads: both functions are thread-safe (one process-wide mutex, held across the callbacks).
// Blocking: Acquire and Release may wait for another process's guard, which is held only for the
// length of a populate or a remove. Pure POSIX: tested on Linux with real processes.
#ifndef ANERD_SERVER_BACKEND_ANE_TEMP_DIR_LEASE_H_
#define ANERD_SERVER_BACKEND_ANE_TEMP_DIR_LEASE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace anerd::backend::ane {

// Takes a reference on `dir`. When no process on the machine uses it yet, `populate` runs under
// the guard and must clear and fill the dir; its false is INTERNAL naming the dir. A lock file
// that cannot be opened or locked is INTERNAL naming it.
absl::Status AcquireTempDir(const std::string& dir, const std::function<bool()>& populate);

// Drops a reference taken by AcquireTempDir. When it was the last use on the machine, `remove`
// runs under the guard (best effort: a dir left behind is cleared by the next first user).
void ReleaseTempDir(const std::string& dir, const std::function<void()>& remove);

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_TEMP_DIR_LEASE_H_
