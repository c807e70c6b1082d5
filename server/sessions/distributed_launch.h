// Data-parallel sessions (issue 24): what the daemon checks before accepting `ranks` > 1.
// The ranks are anerd-rank processes (server/distributed/, the one binary linking MPI) started by
// mpirun; the daemon itself never links MPI, so a daemon built without MPI still starts and
// refuses such sessions with the reason.
// Thread-safety: pure functions over the filesystem and PATH (a few stat calls, the hostfile read).
#ifndef ANERD_SERVER_SESSIONS_DISTRIBUTED_LAUNCH_H_
#define ANERD_SERVER_SESSIONS_DISTRIBUTED_LAUNCH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/training/config.h"

namespace anerd::sessions {

// anerd-rank beside `daemon_path` (the running anerd), "" when absent.
std::string RankBinaryBeside(absl::string_view daemon_path);

// The executable `name` in a directory of $PATH, "" when none.
std::string FindOnPath(absl::string_view name);

// OK for one rank. For more: FAILED_PRECONDITION "ranks: N needs ..." when anerd-rank (built only
// with MPI) or mpirun is missing, naming what to install; INVALID_ARGUMENT / NOT_FOUND for a
// hostfile that does not parse (mpi_launch.h ParseHostfile, naming the line and host). Whether
// its hosts resolve is checked at launch (blocking name lookups never run on an RPC thread).
absl::Status CheckDistributedSession(const training::TrainSpec& spec,
                                     absl::string_view daemon_path);

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_DISTRIBUTED_LAUNCH_H_
