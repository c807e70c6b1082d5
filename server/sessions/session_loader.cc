// SessionManager at start-up: rows for orphaned directories, loading the table and the event
// logs, and what becomes of sessions the daemon lost while they ran.
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/sessions/session_internal.h"
#include "server/sessions/session_manager.h"
#include "server/sessions/session_recovery.h"
#include "server/store/space_reserve.h"
#include "server/training/memory_estimate.h"
#include "spdlog/spdlog.h"

namespace anerd::sessions {
absl::Status SessionManager::AdoptOrphanDirs() {
  ANERD_ASSIGN_OR_RETURN(const std::set<std::string> known, rows_.Ids());
  for (const std::string& id : OrphanSessionDirs(options_.state_dir, known)) {
    absl::StatusOr<RecoveredSession> r = RecoverSessionDir(options_.state_dir, id);
    if (!r.ok()) {
      spdlog::error("session {}: not in the database and not recoverable, left in place: {}", id,
                    r.status().ToString());
      continue;
    }
    SessionRow s;
    s.id = id;
    s.name = r->name;
    s.backend = registry_->Find(r->backend) != nullptr ? r->backend : default_backend_;
    s.spec = r->spec;
    s.total_steps = r->total_steps;
    s.started_ms = r->started_ms;
    s.step = s.checkpoint_step = r->checkpoint_step;
    s.last_loss = s.best_loss = r->last_loss;
    s.checkpoint_path = r->checkpoint_path;
    // Its place in the event log is unknown: the log is kept for reading, never cut back.
    s.state = r->checkpoint_path.empty()             ? SessionState::kFailed
              : r->checkpoint_step >= r->total_steps ? SessionState::kCompleted
                                                     : SessionState::kStopped;
    s.error =
        absl::StrCat("recovered from ", SessionDir(id), " after the state database lost its record",
                     r->checkpoint_path.empty() ? "; it has no checkpoint to resume from" : "");
    ANERD_RETURN_IF_ERROR(rows_.Put(s));
    spdlog::warn("session {}: {} (state {}, step {})", id, s.error, SessionStateName(s.state),
                 s.step);
  }
  return absl::OkStatus();
}

absl::Status SessionManager::LoadAll() {
  ANERD_ASSIGN_OR_RETURN(std::vector<SessionRow> rows, rows_.LoadAll());
  for (SessionRow& row : rows) {
    auto s = std::make_unique<Session>();
    s->id = row.id;
    s->name = row.name;
    s->backend = row.backend;
    s->owner = row.owner;
    s->state = row.state;
    s->step = row.step;
    s->total_steps = row.total_steps;
    s->last_loss = row.last_loss;
    s->best_loss = row.best_loss;
    s->started_ms = row.started_ms;
    s->elapsed_seconds = row.elapsed_seconds;
    s->checkpoint_path = row.checkpoint_path;
    s->checkpoint_step = row.checkpoint_step;
    s->checkpoint_seq = row.checkpoint_seq;
    s->error = row.error;
    s->spec = std::move(row.spec);
    s->restarts = row.restarts;
    s->hosts = std::move(row.hosts);
    Session* raw = Insert(std::move(s));
    const std::string damage = raw->log->Load();
    if (!damage.empty()) {
      spdlog::error("session {}: damaged event log: {}", raw->id, damage);
      raw->error = absl::StrCat("damaged event log (kept as events.jsonl.corrupt): ", damage);
    }
    LoadEvalState(raw);
    // Records are renumbered when the file has gaps (failed appends): find the checkpoint's.
    if (!raw->checkpoint_path.empty()) {
      if (auto seq = raw->log->FindCheckpoint(raw->checkpoint_step)) raw->checkpoint_seq = *seq;
    }
    if (IsActive(raw->state)) {
      RecoverInterrupted(raw, damage);
    } else if (!damage.empty()) {
      SetState(raw, SessionState::kFailed);
    }
  }
  return absl::OkStatus();
}

namespace {

// What a watcher replaying the log reads where the daemon died: the last step reported, where
// training continues and which steps run (and are reported) again.
std::string RecoveryWarning(int64_t reached, int64_t resume_step, bool has_checkpoint,
                            bool resumed) {
  std::string text = reached > 0
                         ? absl::StrCat("the daemon stopped unexpectedly after step ", reached)
                         : std::string("the daemon stopped unexpectedly before the first step");
  if (!resumed) return absl::StrCat(text, "; not resumed (see error)");
  absl::StrAppend(&text, has_checkpoint
                             ? absl::StrCat("; resuming from the checkpoint at step ", resume_step)
                             : "; no checkpoint yet: starting again from step 1");
  if (reached > resume_step) {
    absl::StrAppend(&text, "; steps ", resume_step + 1, "-", reached,
                    " run again (the log keeps only their new run)");
  }
  return text;
}

}  // namespace

void SessionManager::RecoverInterrupted(Session* s, const std::string& damage) {
  // The daemon died while this session ran: training continues from the last checkpoint, so the
  // log is cut back to it and the steps after it will be logged again, once.
  // A start-up that never finished (no checkpoint, no step) may be what stopped the daemon:
  // resuming it automatically could repeat that forever.
  const bool died_starting = s->state == SessionState::kCompiling && s->checkpoint_path.empty() &&
                             s->log->LastReportedStep() == 0;
  const int64_t reached = s->log->LastReportedStep();
  const size_t keep = s->checkpoint_path.empty() ? 0 : s->checkpoint_seq + 1;
  absl::Status rewrite = s->log->Truncate(keep);
  const uint64_t kept = s->log->size();
  s->checkpoint_seq = kept == 0 ? 0 : kept - 1;
  s->step = s->checkpoint_path.empty() ? 0 : s->checkpoint_step;
  const bool fail = !rewrite.ok() || died_starting || !damage.empty();
  (void)s->log->Append(WarningEvent(RecoveryWarning(reached, s->step, !s->checkpoint_path.empty(),
                                                    /*resumed=*/!fail)));
  if (!fail) return SetState(s, SessionState::kInterrupted);
  if (!rewrite.ok()) {
    s->error = absl::StrCat("cannot rewrite the event log: ", rewrite.message());
  } else if (died_starting) {
    s->error =
        "the daemon stopped while this session was starting (building its trainer); it is not "
        "resumed automatically in case the start is what stopped the daemon; resume it with "
        "anectl train resume " +
        s->id;
  }
  SetState(s, SessionState::kFailed);
}

absl::Status SessionManager::RoomToResume(const Session& s) const {
  std::error_code ec;
  const std::filesystem::space_info space = std::filesystem::space(SessionDir(s.id), ec);
  if (ec) return absl::OkStatus();  // unknown: let the resume find out
  absl::StatusOr<training::MemoryEstimate> estimate = training::EstimateTrainingMemory(s.spec);
  const double checkpoint = estimate.ok() ? estimate->checkpoint : 0;
  // The next checkpoint is written beside the current one, then renamed over it; the space
  // reserve is re-created after start-up; the event log and the row need a little more.
  const double needed = checkpoint + static_cast<double>(store::kSpaceReserveBytes) + (1 << 20);
  if (static_cast<double>(space.available) >= needed) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      training::FormatBytes(static_cast<double>(space.available)), " free in ", SessionDir(s.id),
      ", its next checkpoint needs about ", training::FormatBytes(needed)));
}

}  // namespace anerd::sessions
