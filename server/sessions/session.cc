#include "server/sessions/session.h"

#include "absl/strings/str_cat.h"

namespace anerd::sessions {
namespace {

using S = SessionState;

constexpr S kAllStates[kSessionStateCount] = {S::kQueued,        S::kCompiling, S::kRunning,
                                              S::kCheckpointing, S::kPaused,    S::kStopped,
                                              S::kCompleted,     S::kFailed,    S::kInterrupted};

// kTransitions[from] lists the states `from` may go to; the rows follow the enum's order.
struct Row {
  S from;
  S to[7];
  int count;
};
constexpr Row kTransitions[kSessionStateCount] = {
    {S::kQueued, {S::kCompiling, S::kStopped, S::kInterrupted, S::kFailed}, 4},
    {S::kCompiling, {S::kRunning, S::kStopped, S::kInterrupted, S::kFailed}, 4},
    {S::kRunning,
     {S::kCheckpointing, S::kCompiling, S::kCompleted, S::kPaused, S::kStopped, S::kInterrupted,
      S::kFailed},
     7},
    {S::kCheckpointing, {S::kRunning, S::kPaused, S::kStopped, S::kInterrupted, S::kFailed}, 5},
    {S::kPaused, {S::kQueued, S::kStopped, S::kFailed}, 3},
    {S::kStopped, {S::kQueued, S::kFailed}, 2},
    {S::kCompleted, {S::kQueued, S::kFailed}, 2},
    {S::kFailed, {S::kQueued}, 1},
    {S::kInterrupted, {S::kQueued, S::kFailed}, 2},
};

}  // namespace

const char* SessionStateName(SessionState state) {
  switch (state) {
    case S::kQueued:
      return "queued";
    case S::kCompiling:
      return "compiling";
    case S::kRunning:
      return "running";
    case S::kCheckpointing:
      return "checkpointing";
    case S::kPaused:
      return "paused";
    case S::kStopped:
      return "stopped";
    case S::kCompleted:
      return "completed";
    case S::kFailed:
      return "failed";
    case S::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

SessionState StateFromName(absl::string_view name) {
  for (SessionState s : kAllStates) {
    if (name == SessionStateName(s)) return s;
  }
  return S::kInterrupted;
}

bool IsActive(SessionState state) {
  return state == S::kQueued || state == S::kCompiling || state == S::kRunning ||
         state == S::kCheckpointing;
}

bool IsLegalTransition(SessionState from, SessionState to) {
  if (from == to) return true;
  for (const Row& row : kTransitions) {
    if (row.from != from) continue;
    for (int i = 0; i < row.count; ++i) {
      if (row.to[i] == to) return true;
    }
  }
  return false;
}

absl::Status CheckTransition(SessionState from, SessionState to) {
  if (IsLegalTransition(from, to)) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("illegal session state change ", SessionStateName(from),
                                          " -> ", SessionStateName(to)));
}

absl::Status SessionNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("no training session '", id, "'"));
}

}  // namespace anerd::sessions
