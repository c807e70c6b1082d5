// A training session's state machine: the states, their names (as stored in anerd.db and shown by
// the API) and the one table of legal transitions.
//
// States and the calls legal in each (others get FAILED_PRECONDITION naming the state):
//   queued        accepted, waiting for its first executor turn      Stop, Get, Watch
//   compiling     building the trainer (kernels compile once)        Stop, Get, Watch
//   running       taking steps                                       Stop, Export, Get, Watch
//   checkpointing writing a checkpoint (then back to running)        Stop, Export, Get, Watch
//   paused        a write error (full disk, EIO, file size limit) stopped it at its last durable
//                 checkpoint; `error` names the error and how to resume
//                                                                    Resume, Stop (-> stopped),
//                                                                    Delete, Export, Get
//   stopped       stopped by a client after a checkpoint             Resume, Delete, Export, Get
//   completed     reached its step count (final checkpoint written)  Resume(+steps), Delete,
//                                                                    Export, Get
//   failed        the engine returned an error (see `error`)         Resume, Delete, Export, Get
//   interrupted   the daemon stopped or crashed while it ran         Resume, Delete, Export, Get
//
// Start-up: interrupted sessions resume automatically (--resume-interrupted); a paused one only
// when the state dir's filesystem now has room for its next checkpoint (session_manager.h), so a
// disk that is still full does not pause it again at every start.
//
// Thread-safety: pure functions.
#ifndef ANERD_SERVER_SESSIONS_SESSION_H_
#define ANERD_SERVER_SESSIONS_SESSION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anerd::sessions {

enum class SessionState {
  kQueued,
  kCompiling,
  kRunning,
  kCheckpointing,
  kPaused,
  kStopped,
  kCompleted,
  kFailed,
  kInterrupted
};
inline constexpr int kSessionStateCount = 9;

const char* SessionStateName(SessionState state);
// The state named `name`; an unknown name (a damaged row) reads as interrupted, which the
// loader then treats like a session the daemon lost while it ran.
SessionState StateFromName(absl::string_view name);
bool IsActive(SessionState state);  // queued, compiling, running, checkpointing (not paused)

// Whether a session may go from `from` to `to`. Staying in a state is always legal (it records
// nothing new). The table:
//   queued        -> compiling, stopped, interrupted, failed
//   compiling     -> running, stopped, interrupted, failed
//   running       -> checkpointing, compiling (the backend's worker was lost), completed,
//                    paused (a write error), stopped, interrupted, failed
//   checkpointing -> running, paused, stopped, interrupted, failed
//   paused        -> queued (Resume), stopped (Stop: given up, not waiting for space), failed
//   stopped, completed, interrupted, failed -> queued (Resume), failed (a damaged log at load, a
//                    resume after restart that was refused)
bool IsLegalTransition(SessionState from, SessionState to);
// OK for a legal transition; INTERNAL naming both states otherwise (a bug in the caller).
absl::Status CheckTransition(SessionState from, SessionState to);

// The NOT_FOUND every call naming an unknown session id gets (also used for sessions a caller may
// not see, so that they look exactly like missing ones).
absl::Status SessionNotFound(const std::string& id);

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_SESSION_H_
