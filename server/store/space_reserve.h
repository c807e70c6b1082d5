// A reserve of disk space in the state dir, so that space can always be freed through the API and
// the daemon can start on a full disk (issue 16, item 8).
//
// The reserve is one file, <state_dir>/space.reserve, of kSpaceReserveBytes written bytes. With
// SQLite in WAL mode even a DELETE appends pages to the -wal file, so on a full disk deleting a
// kernel or a session failed with "database or disk is full" and nothing could be freed. Now:
//  * RunWithSpaceReserve runs an operation that frees space (a delete); when it fails for lack of
//    space (RESOURCE_EXHAUSTED, i.e. SQLITE_FULL, or an errno of ENOSPC/EDQUOT in the message) the
//    reserve is released and the operation runs once more; afterwards the reserve is re-created if
//    the space is there again (usually it is: the delete freed more than the reserve).
//  * At start-up ReleaseSpaceReserveIfLow gives the reserve back when the filesystem has less free
//    space than the reserve, so opening the database (its -wal and -shm files) cannot fail for
//    lack of space; EnsureSpaceReserve re-creates it whenever it can (best effort, never an error).
//
// Thread-safety: the functions may be called from any thread; they only touch the one file and
// tolerate each other (creation goes through a temporary name and a rename).
#ifndef ANERD_SERVER_STORE_SPACE_RESERVE_H_
#define ANERD_SERVER_STORE_SPACE_RESERVE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace anerd::store {

inline constexpr int64_t kSpaceReserveBytes = int64_t{4} << 20;

// Whether <state_dir>/space.reserve exists.
bool HasSpaceReserve(const std::string& state_dir);
// Creates the reserve if it is missing. False (and no partial file left) when there is no room.
bool EnsureSpaceReserve(const std::string& state_dir);
// Deletes the reserve; true if there was one.
bool ReleaseSpaceReserve(const std::string& state_dir);
// Releases the reserve when the filesystem holding `state_dir` has fewer than
// kSpaceReserveBytes free (statvfs). True when it released it.
bool ReleaseSpaceReserveIfLow(const std::string& state_dir);
// Whether `status` says the disk (or quota) is full.
bool IsOutOfSpace(const absl::Status& status);
// Runs `op`; on an out-of-space failure releases the reserve and runs it once more (see above).
absl::Status RunWithSpaceReserve(const std::string& state_dir,
                                 const std::function<absl::Status()>& op);

}  // namespace anerd::store

#endif  // ANERD_SERVER_STORE_SPACE_RESERVE_H_
