// Owner-only permissions for the daemon's files. The state dir holds tokens, training data
// derivatives and session records: files there are 0600 and directories 0700 whatever the umask
// the daemon inherited.
//
// Thread-safety: RestrictUmask changes the process umask (call once, at start-up, before threads
// create files); TightenTree may be called from any thread.
#ifndef ANERD_COMMON_FILE_MODES_H_
#define ANERD_COMMON_FILE_MODES_H_

#include <cstdint>
#include <string>

namespace anerd {

// Sets the process umask to 077, so every file and directory created afterwards (by this process
// or by libraries such as SQLite and spdlog) has no group or other permissions.
void RestrictUmask();

// Walks `root` (not following symlinks) and removes group/other permissions: regular files become
// at most 0600 (their owner bits kept, e.g. 0400 stays), directories 0700. Sockets, symlinks and
// other types are left alone. Returns how many entries were changed; errors are skipped (the walk
// is best effort: it runs at start-up, also on a full or read-only disk).
int64_t TightenTree(const std::string& root);

}  // namespace anerd

#endif  // ANERD_COMMON_FILE_MODES_H_
