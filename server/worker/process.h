// The process side of a backend worker: spawning it, reaping and killing it, and its heartbeat.
// No policy lives here (when to restart, what counts as a crash): that is worker_backend.cc's.
//
// Front side: SpawnWorkerProcess starts `binary --worker_channel_fd=3 --worker_heartbeat_fd=4
// --worker_parent_pid=<front> ARGS...` with one end of a socketpair on fd 3 and a shared
// heartbeat page on fd 4, signals unblocked and SIGPIPE at its default. The returned Process owns
// the channel and the page; it never blocks on the child (TryReap polls).
// Worker side: PrepareWorkerProcess and StartHeartbeat, called first thing by the worker.
//
// Thread-safety: a Process is plain data. The worker pool guards its fields as process.h's
// comments say (call_mu_ / mu_ of the pool); the functions here take no locks.
#ifndef ANERD_SERVER_WORKER_PROCESS_H_
#define ANERD_SERVER_WORKER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/worker/channel.h"

namespace anerd::worker {

// A monotonic clock as an absl::Time: supervision deadlines must not see a wall-clock step or a
// system sleep as a worker that stopped beating. Only ever compare it with other MonotonicNow()s.
absl::Time MonotonicNow();

// "killed by signal 9 (Killed)", "exited with status 3", ... for a waitpid status.
std::string DescribeWait(int status);

// The heartbeat page shared between front and worker.
struct HeartbeatPage {
  uint64_t beats;  // accessed with __atomic builtins
};

// One worker process as the front sees it.
struct Process {
  pid_t pid = 0;
  uint64_t generation = 0;
  absl::Time started;                // wall clock, for uptime
  std::unique_ptr<Channel> channel;  // used under the pool's call_mu_
  SharedArena arena;                 // front mapping of the current arena (call_mu_)
  bool arena_unsent = false;         // the worker has not been given `arena` yet (call_mu_)
  SharedArena heartbeat;
  int64_t compiles_used = 0;  // as last reported (call_mu_; copied under mu_ for status)
  // Supervision, guarded by the pool's mu_.
  uint64_t last_beats = 0;
  absl::Time last_beat_change;  // MonotonicNow(), like call_started and retired_at
  bool in_call = false;
  absl::Time call_started;
  std::string call_what;
  std::string kill_reason;  // why the front killed it
  // Killed because the caller of its call gave up (cancelled, past its deadline): a recycle,
  // never held against the program it ran.
  bool cancelled = false;
  bool reaped = false;
  int wait_status = 0;
  bool death_recorded = false;
  absl::Time retired_at = absl::InfiniteFuture();

  // Reaps the child if it has exited (never blocks); then `reaped` and `wait_status` are set.
  // Returns `reaped`.
  bool TryReap();
  // SIGKILL (no-op once reaped).
  void Kill();
  // SIGKILL, then waits for the exit (blocking) and reaps it.
  void KillAndWait();
  // Reads the heartbeat counter at `now` (MonotonicNow()): true when it has not moved for longer
  // than `timeout` (the worker is hung or stopped). Updates last_beats / last_beat_change.
  bool HeartbeatStale(absl::Time now, absl::Duration timeout);
};

struct SpawnOptions {
  std::string name;               // for messages, e.g. "ane-sim"
  std::string binary;             // the anerd executable
  std::vector<std::string> args;  // after the descriptor flags, e.g. {"--worker=ane-sim"}
};

// Starts a worker process (see the file comment). INTERNAL naming the binary when it cannot be
// started; RESOURCE_EXHAUSTED when descriptors or shared memory run out.
absl::StatusOr<std::unique_ptr<Process>> SpawnWorkerProcess(const SpawnOptions& options,
                                                            uint64_t generation);

// Worker side. Exits at once if the parent is no longer `parent_pid` (0 = do not check); ignores
// SIGINT, SIGTERM (the front owns the orderly shutdown) and SIGPIPE; closes every descriptor but
// stdio and `keep1`/`keep2`.
void PrepareWorkerProcess(int64_t parent_pid, int keep1, int keep2);
// Worker side. Maps the heartbeat page `fd` (-1 = none) and increments it every 100 ms from a
// detached thread, which also exits the process when the front is gone (re-parented), even if the
// serving thread is stuck in a device.
void StartHeartbeat(int fd, int64_t parent_pid);

}  // namespace anerd::worker

#endif  // ANERD_SERVER_WORKER_PROCESS_H_
