// A training session's state machine: the states, their names (as stored in anerd.db and shown by
// the API) and the one table of legal transitions.
//
// States and the calls legal in each (others get FAILED_PRECONDITION naming the state):
//   queued        accepted, waiting for its first executor turn        Stop, Get, Watch
//   compiling     building the trainer (kernels compile once)          Stop, Get, Watch
//   running       taking steps                                         Stop, Export, Get, Watch
//   checkpointing writing a checkpoint (then back to running)          Stop, Export, Get, Watch
//   stopped       stopped by a client after a checkpoint               Resume, Delete, Export, Get
//   completed     reached its step count (final checkpoint written)    Resume(+steps), Delete,
//   Export failed        the engine returned an error (see `error`)           Resume, Delete,
//   Export interrupted   the daemon stopped or crashed while it ran           Resume, Delete,
//   Export
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
  kStopped,
  kCompleted,
  kFailed,
  kInterrupted
};
inline constexpr int kSessionStateCount = 8;

const char* SessionStateName(SessionState state);
// The state named `name`; an unknown name (a damaged row) reads as interrupted, which the
// loader then treats like a session the daemon lost while it ran.
SessionState StateFromName(absl::string_view name);
bool IsActive(SessionState state);  // queued, compiling, running, checkpointing

// Whether a session may go from `from` to `to`. Staying in a state is always legal (it records
// nothing new). The table:
//   queued        -> compiling, stopped, interrupted, failed
//   compiling     -> running, stopped, interrupted, failed
//   running       -> checkpointing, compiling (the backend's worker was lost), completed,
//                    stopped, interrupted, failed
//   checkpointing -> running, stopped, interrupted, failed
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
