#include "server/engine/session_manager.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/atomic_file.h"
#include "common/hash.h"
#include "common/memory_trim.h"
#include "common/regular_file.h"
#include "common/status_macros.h"
#include "common/system_memory.h"
#include "nlohmann/json.hpp"
#include "server/cache/space_reserve.h"
#include "server/cache/sqlite.h"
#include "server/engine/session_recovery.h"
#include "server/training/memory_estimate.h"
#include "spdlog/spdlog.h"

namespace anerd::engine {
namespace {

namespace fs = std::filesystem;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

constexpr SessionState kAllStates[] = {SessionState::kQueued,  SessionState::kCompiling,
                                       SessionState::kRunning, SessionState::kCheckpointing,
                                       SessionState::kStopped, SessionState::kCompleted,
                                       SessionState::kFailed,  SessionState::kInterrupted};

SessionState StateFromName(const std::string& name) {
  for (SessionState s : kAllStates) {
    if (name == SessionStateName(s)) return s;
  }
  return SessionState::kInterrupted;
}

// Appends `line` to `path` (created 0600), fsynced when `sync`. On a write error the file is cut
// back to its previous end, so a torn record never stays behind; the error names the path.
absl::Status AppendLine(const std::string& path, const std::string& line, bool sync) {
  auto error = [&path](int e, const char* what) {
    return absl::Status(absl::ErrnoToStatus(e, "").code(),
                        absl::StrCat(std::strerror(e), " ", what, " ", path));
  };
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return error(errno, "opening");
  struct stat st;
  const off_t before = ::fstat(fd, &st) == 0 ? st.st_size : -1;
  absl::Status status;
  for (size_t done = 0; done < line.size() && status.ok();) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = error(errno, "writing");
      if (before >= 0) (void)::ftruncate(fd, before);
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (status.ok() && sync && ::fsync(fd) != 0) status = error(errno, "syncing");
  if (::close(fd) != 0 && status.ok()) status = error(errno, "closing");
  return status;
}

// The last step reported in the log (0 if none).
int64_t LastReportedStep(const std::vector<SessionEventRecord>& events) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    if (it->kind == SessionEventRecord::Kind::kStep) return it->step.step;
  }
  return 0;
}

SessionEventRecord Warning(std::string text) {
  SessionEventRecord e;
  e.kind = SessionEventRecord::Kind::kWarning;
  e.text = std::move(text);
  return e;
}

// Sessions schema 2 records each session's owner (the client that started it; authz.h), so
// ownership survives restarts. Rows from schema 1 get "" (visible to admins only).
absl::Status AddOwnerColumn(cache::SqliteDb* db) {
  ANERD_ASSIGN_OR_RETURN(auto stmt,
                         cache::Statement::Prepare(db->get(), "PRAGMA table_info(sessions)"));
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    if (stmt->ColumnText(1) == "owner") return absl::OkStatus();
  }
  stmt.reset();
  return db->Exec("ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT ''");
}

// Canonical form of `path`; "" when it does not resolve.
std::string RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) == nullptr ? "" : std::string(resolved);
}

// Whether canonical `path` is canonical `dir` or lies under it.
bool IsUnder(const std::string& path, const std::string& dir) {
  return path == dir || absl::StartsWith(path, dir == "/" ? dir : dir + "/");
}

// Whether a component of canonical `path` below canonical `root` starts with '.'.
bool HasDotComponentBelow(const std::string& path, const std::string& root) {
  for (absl::string_view part : absl::StrSplit(absl::string_view(path).substr(root.size()), '/')) {
    if (!part.empty() && part[0] == '.') return true;
  }
  return false;
}

}  // namespace

absl::Status CheckDataPath(const std::string& field, const std::string& resolved,
                           const SessionOptions& options) {
  const std::string state_dir = RealPath(options.state_dir);
  if (!state_dir.empty() && IsUnder(resolved, state_dir)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": '", resolved, "' is in the daemon's state dir, which is never readable as data"));
  }
  for (const std::string& secret : options.secret_paths) {
    if (!secret.empty() && RealPath(secret) == resolved) {
      return absl::PermissionDeniedError(
          absl::StrCat(field, ": '", resolved, "' is one of the daemon's own secret files"));
    }
  }
  bool hidden = false;
  for (const std::string& root : options.data_roots) {
    const std::string r = RealPath(root);
    if (r.empty() || resolved == r || !IsUnder(resolved, r)) continue;
    if (!HasDotComponentBelow(resolved, r)) return absl::OkStatus();
    hidden = true;
  }
  if (hidden) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": '", resolved,
                     "' is a dot-file or lies in a dot-directory, which are never readable as "
                     "data even under a data root"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": '", resolved, "' is outside the daemon's data roots (",
                   absl::StrJoin(options.data_roots, ", "), "); allow it with anerd --data_root"));
}

namespace {

std::string NewSessionId() {
  return Sha256Hex(absl::StrCat(NowMs(), "/", getpid(), "/", rand())).substr(0, 12);
}

}  // namespace

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kQueued:
      return "queued";
    case SessionState::kCompiling:
      return "compiling";
    case SessionState::kRunning:
      return "running";
    case SessionState::kCheckpointing:
      return "checkpointing";
    case SessionState::kStopped:
      return "stopped";
    case SessionState::kCompleted:
      return "completed";
    case SessionState::kFailed:
      return "failed";
    case SessionState::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

absl::Status SessionNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("no training session '", id, "'"));
}

bool IsActive(SessionState state) {
  return state == SessionState::kQueued || state == SessionState::kCompiling ||
         state == SessionState::kRunning || state == SessionState::kCheckpointing;
}

struct SessionManager::Session {
  std::string id, name, backend;
  std::string owner;  // the client that started it ("" = unowned); see SessionSnapshot
  training::TrainSpec spec;
  SessionState state = SessionState::kQueued;
  int64_t step = 0, total_steps = 0, started_ms = 0, checkpoint_step = 0;
  uint64_t checkpoint_seq = 0;  // events up to this seq are covered by the checkpoint
  double last_loss = std::nan(""), best_loss = std::nan(""), elapsed_seconds = 0;
  std::string checkpoint_path, error;
  std::unique_ptr<training::Trainer> trainer;  // touched only by this session's executor tasks
  int64_t extra_steps = 0;                     // pending for the next Resume of the trainer
  bool stop_requested = false;
  double run_ms = 0;  // step time of this run, for the ETA
  int64_t run_steps = 0;
  // After a backend worker died mid-step the session replays from its last checkpoint; steps up
  // to this one were already reported and are not reported again.
  int64_t replay_until = 0;
  int worker_failures = 0;     // consecutive, without a step completing in between
  double memory_estimate = 0;  // bytes (training/memory_estimate.h), counted while active
  std::vector<SessionEventRecord> events;
  std::vector<Waiter> waiters;
};

SessionManager::SessionManager(const backend::BackendRegistry* registry,
                               std::map<std::string, DeviceExecutor*> executors,
                               std::string default_backend, SessionOptions options)
    : registry_(registry),
      executors_(std::move(executors)),
      default_backend_(std::move(default_backend)),
      options_(std::move(options)) {
  absl::StatusOr<uint64_t> ram = PhysicalMemoryBytes();
  physical_memory_ = ram.ok() ? *ram : 0;
  memory_limit_ = options_.memory_limit_bytes;
  if (memory_limit_ == 0) {
    memory_limit_ =
        static_cast<uint64_t>(static_cast<double>(physical_memory_) * kDefaultMemoryFraction);
  }
  if (memory_limit_ == 0) spdlog::warn("sessions: {}; no memory limit", ram.status().ToString());
  notifier_ = std::thread([this] { NotifierLoop(); });
}

SessionManager::~SessionManager() {
  Shutdown();
  {
    absl::MutexLock lock(&wake_mu_);
    notifier_stop_ = true;
  }
  notifier_.join();
}

std::string SessionManager::SessionDir(const std::string& id) const {
  return absl::StrCat(options_.state_dir, "/sessions/", id);
}

absl::Status SessionManager::Init() {
  ANERD_ASSIGN_OR_RETURN(db_, cache::SqliteDb::Open(options_.state_dir + "/anerd.db", 5000));
  ANERD_RETURN_IF_ERROR(db_->Exec(
      "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER);"
      "INSERT OR REPLACE INTO schema_version (component, version) VALUES ('sessions', 2);"
      "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, name TEXT, backend TEXT, "
      "state TEXT, step INTEGER, total_steps INTEGER, last_loss REAL, best_loss REAL, "
      "started_ms INTEGER, elapsed_s REAL, checkpoint_path TEXT, checkpoint_step INTEGER, "
      "checkpoint_seq INTEGER, error TEXT, spec TEXT)"));
  ANERD_RETURN_IF_ERROR(AddOwnerColumn(db_.get()));
  std::vector<std::string> to_resume;
  {
    absl::MutexLock lock(&mu_);
    ANERD_RETURN_IF_ERROR(AdoptOrphanDirs());
    ANERD_RETURN_IF_ERROR(LoadAll());
    for (auto& [id, s] : sessions_) {
      if (s->state == SessionState::kInterrupted) to_resume.push_back(id);
    }
  }
  if (options_.resume_interrupted) {
    for (const std::string& id : to_resume) {
      absl::StatusOr<SessionSnapshot> r = Resume(id, 0);
      spdlog::info("session {}: resuming after restart: {}", id,
                   r.ok() ? "ok" : r.status().ToString());
      if (!r.ok()) {
        // E.g. too large for this machine's memory (limit lowered, another machine): say why.
        absl::MutexLock lock(&mu_);
        absl::StatusOr<Session*> s = Find(id);
        if (s.ok() && !IsActive((*s)->state)) {
          (*s)->error = absl::StrCat("not resumed after restart: ", r.status().message());
          SetState(*s, SessionState::kFailed);
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status SessionManager::AdoptOrphanDirs() {
  std::set<std::string> known;
  {
    ANERD_ASSIGN_OR_RETURN(auto ids,
                           cache::Statement::Prepare(db_->get(), "SELECT id FROM sessions"));
    for (bool row = true; row;) {
      ANERD_ASSIGN_OR_RETURN(row, ids->Step());
      if (row) known.insert(ids->ColumnText(0));
    }
  }
  for (const std::string& id : OrphanSessionDirs(options_.state_dir, known)) {
    absl::StatusOr<RecoveredSession> r = RecoverSessionDir(options_.state_dir, id);
    if (!r.ok()) {
      spdlog::error("session {}: not in the database and not recoverable, left in place: {}", id,
                    r.status().ToString());
      continue;
    }
    Session s;
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
    ANERD_RETURN_IF_ERROR(Persist(s));
    spdlog::warn("session {}: {} (state {}, step {})", id, s.error, SessionStateName(s.state),
                 s.step);
  }
  return absl::OkStatus();
}

absl::Status SessionManager::LoadAll() {
  ANERD_ASSIGN_OR_RETURN(
      auto stmt, cache::Statement::Prepare(
                     db_->get(),
                     "SELECT id, name, backend, state, step, total_steps, last_loss, best_loss, "
                     "started_ms, elapsed_s, checkpoint_path, checkpoint_step, checkpoint_seq, "
                     "error, spec, owner FROM sessions"));
  while (true) {
    ANERD_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    auto s = std::make_unique<Session>();
    s->id = stmt->ColumnText(0);
    s->name = stmt->ColumnText(1);
    s->backend = stmt->ColumnText(2);
    s->state = StateFromName(stmt->ColumnText(3));
    s->step = stmt->ColumnInt(4);
    s->total_steps = stmt->ColumnInt(5);
    s->last_loss = stmt->ColumnDouble(6);
    s->best_loss = stmt->ColumnDouble(7);
    s->started_ms = stmt->ColumnInt(8);
    s->elapsed_seconds = stmt->ColumnDouble(9);
    s->checkpoint_path = ResolveCheckpointPath(options_.state_dir, s->id, stmt->ColumnText(10));
    s->checkpoint_step = stmt->ColumnInt(11);
    s->checkpoint_seq = static_cast<uint64_t>(stmt->ColumnInt(12));
    s->error = stmt->ColumnText(13);
    s->owner = stmt->ColumnText(15);
    absl::StatusOr<training::TrainSpec> spec = training::SpecFromText(stmt->ColumnText(14));
    if (!spec.ok()) {
      spdlog::warn("session {}: unreadable spec, skipped: {}", s->id, spec.status().ToString());
      continue;
    }
    s->spec = *std::move(spec);
    Session* raw = s.get();
    sessions_[s->id] = std::move(s);
    const std::string damage = LoadEvents(raw);
    if (!damage.empty()) {
      spdlog::error("session {}: damaged event log: {}", raw->id, damage);
      raw->error = absl::StrCat("damaged event log (kept as events.jsonl.corrupt): ", damage);
    }
    if (IsActive(raw->state)) {
      // The daemon died while this session ran: training continues from the last checkpoint, so
      // the log is cut back to it and the steps after it will be logged again, once.
      // A start-up that never finished (no checkpoint, no step) may be what stopped the daemon:
      // resuming it automatically could repeat that forever.
      const bool died_starting = raw->state == SessionState::kCompiling &&
                                 raw->checkpoint_path.empty() && LastReportedStep(raw->events) == 0;
      const size_t keep = raw->checkpoint_path.empty() ? 0 : raw->checkpoint_seq + 1;
      if (raw->events.size() > keep) raw->events.resize(keep);
      raw->checkpoint_seq = raw->events.empty() ? 0 : raw->events.size() - 1;
      raw->step = raw->checkpoint_path.empty() ? 0 : raw->checkpoint_step;
      std::string text;
      for (const SessionEventRecord& e : raw->events) text += EncodeEventLine(e) + "\n";
      absl::Status rewrite = WriteFileAtomically(SessionDir(raw->id) + "/events.jsonl", text);
      const bool fail = !rewrite.ok() || died_starting || !damage.empty();
      (void)Append(raw, Warning(fail ? "the daemon stopped unexpectedly; not resumed (see error)"
                                     : "the daemon stopped unexpectedly; resuming from the last "
                                       "checkpoint"));
      if (fail) {
        if (!rewrite.ok()) {
          raw->error = absl::StrCat("cannot rewrite the event log: ", rewrite.message());
        } else if (died_starting) {
          raw->error =
              "the daemon stopped while this session was starting (building its trainer); it is "
              "not resumed automatically in case the start is what stopped the daemon; resume it "
              "with anectl train resume " +
              raw->id;
        }
        SetState(raw, SessionState::kFailed);
      } else {
        SetState(raw, SessionState::kInterrupted);
      }
      continue;
    }
    if (!damage.empty()) SetState(raw, SessionState::kFailed);
  }
  return absl::OkStatus();
}

std::string SessionManager::LoadEvents(Session* s) {
  const std::string path = SessionDir(s->id) + "/events.jsonl";
  absl::StatusOr<EventLogContents> log = ReadEventLog(path);
  if (!log.ok()) return std::string(log.status().message());
  s->events = std::move(log->events);
  if (!log->corruption.empty()) {
    // Keep the original for inspection and continue with the valid records.
    std::error_code ec;
    fs::rename(path, path + ".corrupt", ec);
    std::string text;
    for (const SessionEventRecord& e : s->events) text += EncodeEventLine(e) + "\n";
    if (absl::Status w = WriteFileAtomically(path, text); !w.ok()) {
      spdlog::error("session {}: {}", s->id, w.ToString());
    }
  } else if (log->torn_tail) {
    spdlog::warn("session {}: cutting a torn record at the end of {} (byte {})", s->id, path,
                 log->valid_bytes);
    if (::truncate(path.c_str(), log->valid_bytes) != 0) {
      spdlog::error("session {}: cannot truncate {}: {}", s->id, path, std::strerror(errno));
    }
  }
  // Records are renumbered when the file has gaps (failed appends): find the checkpoint's record.
  for (size_t i = s->events.size(); !s->checkpoint_path.empty() && i-- > 0;) {
    const SessionEventRecord& e = s->events[i];
    if (e.kind == SessionEventRecord::Kind::kCheckpoint &&
        e.checkpoint_step == s->checkpoint_step) {
      s->checkpoint_seq = i;
      break;
    }
  }
  return log->corruption;
}

absl::Status SessionManager::Persist(const Session& s) {
  ANERD_ASSIGN_OR_RETURN(
      auto stmt,
      cache::Statement::Prepare(
          db_->get(), "INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  stmt->BindText(1, s.id);
  stmt->BindText(2, s.name);
  stmt->BindText(3, s.backend);
  stmt->BindText(4, SessionStateName(s.state));
  stmt->BindInt(5, s.step);
  stmt->BindInt(6, s.total_steps);
  stmt->BindDouble(7, s.last_loss);
  stmt->BindDouble(8, s.best_loss);
  stmt->BindInt(9, s.started_ms);
  stmt->BindDouble(10, s.elapsed_seconds);
  stmt->BindText(11, StoredCheckpointPath(options_.state_dir, s.checkpoint_path));
  stmt->BindInt(12, s.checkpoint_step);
  stmt->BindInt(13, static_cast<int64_t>(s.checkpoint_seq));
  stmt->BindText(14, s.error);
  stmt->BindText(15, training::SpecToText(s.spec));
  stmt->BindText(16, s.owner);
  return stmt->Run();
}

absl::Status SessionManager::CheckPaths(const training::TrainSpec& spec) const {
  auto check = [&](const std::string& field, const std::string& path) -> absl::Status {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": cannot open '", path, "' on the daemon's machine"));
    }
    ANERD_RETURN_IF_ERROR(CheckDataPath(field, resolved, options_));
    return CheckRegularFile(resolved, field);  // a FIFO would block its reader
  };
  ANERD_RETURN_IF_ERROR(check("data", spec.data_path));
  if (!spec.init_model_path.empty()) ANERD_RETURN_IF_ERROR(check("init", spec.init_model_path));
  return absl::OkStatus();
}

absl::StatusOr<SessionSnapshot> SessionManager::Start(training::TrainSpec spec, std::string name,
                                                      std::string backend, std::string owner) {
  ANERD_RETURN_IF_ERROR(training::ValidateSpec(spec));
  if (spec.data_path.empty()) return absl::InvalidArgumentError("data: a data file is required");
  {
    absl::MutexLock lock(&mu_);
    ANERD_RETURN_IF_ERROR(CheckMemory(spec, ""));
  }
  ANERD_RETURN_IF_ERROR(CheckPaths(spec));
  if (backend.empty()) backend = default_backend_;
  if (registry_->Find(backend) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("backend: unknown backend '", backend, "'"));
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the daemon is shutting down; retry");
  int active = 0;
  for (const auto& [id, s] : sessions_) active += IsActive(s->state) ? 1 : 0;
  if (active >= options_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        active, " sessions are already active, the limit (raise it with anerd --max_sessions)"));
  }
  ANERD_RETURN_IF_ERROR(CheckMemory(spec, ""));  // again: others may have started meanwhile
  auto s = std::make_unique<Session>();
  s->id = NewSessionId();
  s->name = name.empty() ? s->id : std::move(name);
  s->backend = backend;
  s->owner = std::move(owner);
  s->spec = std::move(spec);
  s->total_steps = s->spec.steps;
  s->started_ms = NowMs();
  std::error_code ec;
  fs::create_directories(SessionDir(s->id), ec);
  if (ec) return absl::PermissionDeniedError("cannot create " + SessionDir(s->id));
  // The manifest lets the session be rebuilt from its directory if the database is lost.
  ANERD_RETURN_IF_ERROR(
      WriteSessionManifest(SessionDir(s->id), s->id, s->name, s->backend, s->started_ms, s->spec));
  Session* raw = s.get();
  sessions_[raw->id] = std::move(s);
  SetState(raw, SessionState::kQueued);
  Schedule(raw);
  spdlog::info("session {} ({}) queued: {} steps on {}", raw->id, raw->name, raw->total_steps,
               raw->backend);
  return Snapshot(*raw);
}

absl::Status SessionManager::CheckMemory(const training::TrainSpec& spec,
                                         const std::string& except_id) {
  if (memory_limit_ == 0) return absl::OkStatus();
  ANERD_ASSIGN_OR_RETURN(training::MemoryEstimate estimate, training::EstimateTrainingMemory(spec));
  double others = 0;
  for (const auto& [id, s] : sessions_) {
    if (id != except_id && IsActive(s->state)) others += s->memory_estimate;
  }
  const double limit = static_cast<double>(memory_limit_);
  if (estimate.total() + others <= limit) return absl::OkStatus();
  const std::string machine =
      physical_memory_ == 0
          ? "this machine's memory is unknown"
          : absl::StrCat("this machine has ", training::FormatBytes(physical_memory_), " of RAM");
  return absl::ResourceExhaustedError(absl::StrCat(
      "the training session needs an estimated ", estimate.ToString(),
      others > 0 ? absl::StrCat(" on top of ", training::FormatBytes(others),
                                " estimated for the active sessions")
                 : "",
      "; the limit is ", training::FormatBytes(limit), " (", machine,
      "); use a smaller model or raise the limit with anerd --session_memory_limit_bytes"));
}

void SessionManager::Schedule(Session* s) {
  ++in_flight_;
  const std::string id = s->id;
  if (s->memory_estimate == 0) {
    absl::StatusOr<training::MemoryEstimate> m = training::EstimateTrainingMemory(s->spec);
    s->memory_estimate = m.ok() ? m->total() : 0;
  }
  executors_.at(s->backend)
      ->Submit({}, "training step", [this, id](absl::Status admission, absl::Duration queued) {
        // The task boundary: nothing thrown on the session's path (std::bad_alloc from a model
        // that does not fit after all, ...) reaches the executor thread.
        try {
          RunTask(id, admission, queued);
        } catch (const std::exception& e) {
          FailAfterException(id, e.what());
        } catch (...) {
          FailAfterException(id, "an unknown exception");
        }
      });
}

void SessionManager::FailAfterException(const std::string& id, const char* what) {
  absl::MutexLock lock(&mu_);
  --in_flight_;
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session* s = it->second.get();
  const bool oom = std::string(what) == std::bad_alloc().what();
  s->error =
      absl::StrCat("training failed: ", what,
                   oom ? " (out of memory: the model does not fit in this machine's memory)" : "");
  spdlog::error("session {}: {}", id, s->error);
  s->trainer.reset();
  s->step = s->checkpoint_path.empty() ? 0 : s->checkpoint_step;
  s->replay_until = std::max(s->replay_until, LastReportedStep(s->events));
  SetState(s, SessionState::kFailed);
}

absl::Status SessionManager::EnsureTrainer(Session* s, backend::Backend* backend) {
  if (s->trainer != nullptr) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<training::Trainer>> trainer =
      s->checkpoint_path.empty()
          ? training::Trainer::Create(s->spec, backend)
          : training::Trainer::Resume(s->checkpoint_path, backend, s->extra_steps);
  if (!trainer.ok()) return trainer.status();
  s->trainer = *std::move(trainer);
  return absl::OkStatus();
}

void SessionManager::RunTask(const std::string& id, absl::Status admission, absl::Duration queued) {
  Session* s = nullptr;
  bool need_trainer = false;
  {
    absl::MutexLock lock(&mu_);
    s = sessions_.at(id).get();
    const bool stopping = !admission.ok() || shutting_down_ || s->stop_requested;
    if (stopping) {
      const SessionState final_state = s->stop_requested && admission.ok() && !shutting_down_
                                           ? SessionState::kStopped
                                           : SessionState::kInterrupted;
      s->stop_requested = false;
      if (s->trainer != nullptr && s->step > s->checkpoint_step) {
        if (absl::Status c = Checkpoint(s); !c.ok()) {
          PauseOnWriteError(s, c);
          --in_flight_;
          return;
        }
      }
      s->trainer.reset();
      SetState(s, final_state);
      --in_flight_;
      return;
    }
    need_trainer = s->trainer == nullptr;
    if (need_trainer) SetState(s, SessionState::kCompiling);
  }
  if (need_trainer) {
    absl::Status st = EnsureTrainer(s, registry_->Find(s->backend));
    absl::MutexLock lock(&mu_);
    if (!st.ok() && RecoverFromWorkerLoss(s, st)) {
      --in_flight_;
      return;
    }
    if (!st.ok()) {
      s->error = std::string(st.message());
      SetState(s, SessionState::kFailed);
      --in_flight_;
      return;
    }
    s->total_steps = s->trainer->total_steps();
    s->step = s->trainer->step();
    // Steps the log already holds (a resume after a write error or a failure) are replayed
    // without being reported again.
    s->replay_until = std::max(s->replay_until, LastReportedStep(s->events));
    SetState(s, SessionState::kRunning);
    if (s->extra_steps > 0 && !s->checkpoint_path.empty()) {
      // Record the raised step count in the checkpoint, so a crash before the next periodic
      // checkpoint still resumes toward the new total.
      if (absl::Status c = Checkpoint(s); !c.ok()) {
        PauseOnWriteError(s, c);
        --in_flight_;
        return;
      }
    }
    s->extra_steps = 0;
    Schedule(s);  // the first step takes its own turn
    --in_flight_;
    return;
  }
  absl::StatusOr<training::StepReport> report = s->trainer->Step();
  absl::MutexLock lock(&mu_);
  if (!report.ok() && RecoverFromWorkerLoss(s, report.status())) {
    --in_flight_;
    return;
  }
  if (!report.ok()) {
    s->error = std::string(report.status().message());
    s->trainer.reset();
    SetState(s, SessionState::kFailed);
    --in_flight_;
    return;
  }
  AfterStep(s, *report, absl::ToDoubleMilliseconds(queued));
  if (IsActive(s->state)) {
    Schedule(s);
  }
  --in_flight_;
}

bool SessionManager::RecoverFromWorkerLoss(Session* s, const absl::Status& error) {
  // UNAVAILABLE from a backend means its worker process died (backend.h, worker_backend.h): the
  // trainer's state may be half-updated, so it is rebuilt from the last checkpoint.
  // While the daemon drains, the session fails with the error instead (resumable by a client from
  // its checkpoint): replaying here would need the trainer the drain is about to drop.
  if (error.code() != absl::StatusCode::kUnavailable || shutting_down_ ||
      s->worker_failures >= kMaxWorkerFailures) {
    return false;
  }
  ++s->worker_failures;
  s->trainer.reset();
  s->replay_until = std::max(s->replay_until, s->step);
  s->step = s->checkpoint_path.empty() ? 0 : s->checkpoint_step;
  spdlog::warn("session {}: {}; resuming from step {}", s->id, std::string(error.message()),
               s->step);
  (void)Append(s, Warning(absl::StrCat(
                      "backend worker lost (", error.message(), "); resuming from step ", s->step,
                      s->replay_until > s->step ? ", replayed steps are not re-reported" : "")));
  Schedule(s);
  return true;
}

void SessionManager::AfterStep(Session* s, const training::StepReport& report, double queued_ms) {
  if (report.step <= s->replay_until) {
    // Replaying steps already reported before a worker was lost: same data and same state, so
    // the same results; only the checkpoint cadence and completion matter.
    s->step = report.step;
    MaybeCheckpoint(s);
    return;
  }
  s->worker_failures = 0;  // only new progress counts: a crash at the same step must not loop
  s->step = report.step;
  s->last_loss = report.loss;
  if (std::isnan(s->best_loss) || report.loss < s->best_loss) s->best_loss = report.loss;
  s->elapsed_seconds += report.step_ms / 1000;
  s->run_ms += report.step_ms;
  ++s->run_steps;
  SessionEventRecord e;
  e.kind = SessionEventRecord::Kind::kStep;
  e.step = report;
  e.queued_ms = queued_ms;
  if (absl::Status a = Append(s, std::move(e)); !a.ok()) return PauseOnWriteError(s, a);
  MaybeCheckpoint(s);
}

void SessionManager::MaybeCheckpoint(Session* s) {
  const bool done = s->trainer->done();
  const int64_t every = s->spec.checkpoint_every;
  if (done || (every > 0 && s->step % every == 0)) {
    // A checkpoint that cannot be written stops the session: training on would report progress
    // that a crash would lose. Completion is reported only once the final one is durable.
    if (absl::Status c = Checkpoint(s); !c.ok()) return PauseOnWriteError(s, c);
  }
  if (done) {
    s->trainer.reset();
    SetState(s, SessionState::kCompleted);
  }
}

absl::Status SessionManager::Checkpoint(Session* s) {
  // Written under the lock: the session's own steps are paused anyway, and checkpoints of the
  // models anerd trains on CPU take milliseconds to a few hundred ms.
  const SessionState previous = s->state;
  SetState(s, SessionState::kCheckpointing);
  const std::string path = SessionDir(s->id) + "/checkpoint.bin";
  absl::Status status = s->trainer->SaveCheckpoint(path);
  if (status.ok()) {
    s->checkpoint_path = path;
    s->checkpoint_step = s->step;
    SessionEventRecord e;
    e.kind = SessionEventRecord::Kind::kCheckpoint;
    e.text = path;
    e.checkpoint_step = s->step;
    // Synced: the steps logged before the checkpoint become durable with it.
    status = Append(s, std::move(e), /*sync=*/true);
    s->checkpoint_seq = s->events.back().seq;
  }
  SetState(s, previous);
  return status;
}

void SessionManager::PauseOnWriteError(Session* s, const absl::Status& error) {
  s->replay_until = std::max(s->replay_until, LastReportedStep(s->events));
  s->trainer.reset();
  s->step = s->checkpoint_path.empty() ? 0 : s->checkpoint_step;
  s->error = absl::StrCat(
      error.message(), "; paused at step ", s->step,
      s->checkpoint_path.empty() ? " (no checkpoint yet)" : " (the last durable checkpoint)",
      "; free space, then resume it: anectl train resume ", s->id);
  spdlog::error("session {}: {}", s->id, s->error);
  SetState(s, SessionState::kFailed);
}

void SessionManager::SetState(Session* s, SessionState state) {
  const bool changed = s->state != state || s->events.empty();
  s->state = state;
  if (changed) {
    SessionEventRecord e;
    e.kind = SessionEventRecord::Kind::kState;
    e.text = SessionStateName(state);
    (void)Append(s, std::move(e), /*sync=*/!IsActive(state));  // errors are logged there
  }
  if (absl::Status p = Persist(*s); !p.ok()) {
    spdlog::error("session {}: cannot persist state: {}", s->id, p.ToString());
  }
  if (!IsActive(state)) WakeWaiters(s);
  // A session that stopped running freed its trainer (model, optimizer state, activations).
  if (changed && !IsActive(state) && s->trainer == nullptr) TrimFreeMemory();
}

absl::Status SessionManager::Append(Session* s, SessionEventRecord event, bool sync) {
  event.seq = s->events.size();
  if (event.unix_ms == 0) event.unix_ms = NowMs();
  absl::Status status =
      AppendLine(SessionDir(s->id) + "/events.jsonl", EncodeEventLine(event) + "\n", sync);
  if (!status.ok()) spdlog::error("session {}: event log: {}", s->id, status.ToString());
  s->events.push_back(std::move(event));
  WakeWaiters(s);
  return status;
}

void SessionManager::WakeWaiters(Session* s) {
  std::vector<Waiter> keep;
  std::vector<std::function<void()>> wakes;
  for (Waiter& w : s->waiters) {
    if (w.from < s->events.size() || !IsActive(s->state)) {
      wakes.push_back(std::move(w.wake));
    } else {
      keep.push_back(std::move(w));
    }
  }
  s->waiters.swap(keep);
  if (wakes.empty()) return;
  // Wakes run on the notifier thread, never under mu_: a watcher's wake calls back in.
  absl::MutexLock lock(&wake_mu_);
  for (auto& w : wakes) wake_queue_.push_back(std::move(w));
}

void SessionManager::NotifierLoop() {
  while (true) {
    std::function<void()> wake;
    {
      absl::MutexLock lock(&wake_mu_);
      wake_mu_.Await(absl::Condition(
          +[](SessionManager* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->wake_mu_) {
            return m->notifier_stop_ || !m->wake_queue_.empty();
          },
          this));
      if (wake_queue_.empty()) return;
      wake = std::move(wake_queue_.front());
      wake_queue_.pop_front();
    }
    wake();
  }
}

SessionSnapshot SessionManager::Snapshot(const Session& s) const {
  SessionSnapshot out;
  out.id = s.id;
  out.name = s.name;
  out.backend = s.backend;
  out.owner = s.owner;
  out.state = s.state;
  out.step = s.step;
  out.total_steps = s.total_steps;
  out.last_loss = std::isnan(s.last_loss) ? 0 : s.last_loss;
  out.best_loss = std::isnan(s.best_loss) ? 0 : s.best_loss;
  out.started_ms = s.started_ms;
  out.elapsed_seconds = s.elapsed_seconds;
  if (IsActive(s.state) && s.run_steps > 0) {
    out.eta_seconds = (s.total_steps - s.step) * (s.run_ms / s.run_steps) / 1000;
  }
  out.checkpoint_path = s.checkpoint_path;
  out.checkpoint_step = s.checkpoint_step;
  out.spec = s.spec;
  out.error = s.error;
  return out;
}

absl::StatusOr<SessionManager::Session*> SessionManager::Find(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return SessionNotFound(id);
  return it->second.get();
}

std::vector<SessionSnapshot> SessionManager::List() {
  absl::MutexLock lock(&mu_);
  std::vector<SessionSnapshot> out;
  for (const auto& [id, s] : sessions_) out.push_back(Snapshot(*s));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.started_ms > b.started_ms; });
  return out;
}

absl::StatusOr<SessionSnapshot> SessionManager::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  return Snapshot(*s);
}

absl::StatusOr<SessionSnapshot> SessionManager::Stop(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  if (!IsActive(s->state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session ", id, " is ", SessionStateName(s->state), "; only an active session can stop"));
  }
  s->stop_requested = true;  // honoured at its next executor turn, after a checkpoint
  return Snapshot(*s);
}

absl::StatusOr<SessionSnapshot> SessionManager::Resume(const std::string& id, int64_t extra_steps) {
  if (extra_steps < 0) return absl::InvalidArgumentError("steps: must not be negative");
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  if (IsActive(s->state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", id, " is already ", SessionStateName(s->state)));
  }
  if (s->state == SessionState::kCompleted && extra_steps == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session ", id, " is completed; resume it with more steps (anectl train resume ", id,
        " --steps N)"));
  }
  if (shutting_down_) return absl::UnavailableError("the daemon is shutting down; retry");
  if (extra_steps > std::numeric_limits<int64_t>::max() - std::max(s->total_steps, s->spec.steps)) {
    return absl::InvalidArgumentError("steps: the total step count would overflow");
  }
  ANERD_RETURN_IF_ERROR(CheckMemory(s->spec, id));
  if (s->checkpoint_path.empty()) {
    // Nothing to continue from: start over, and forget the partial log.
    s->events.clear();
    s->replay_until = 0;
    s->step = 0;
    (void)WriteFileAtomically(SessionDir(id) + "/events.jsonl", "");
    s->spec.steps += extra_steps;
  }
  s->extra_steps = extra_steps;
  s->total_steps += extra_steps;
  s->error.clear();
  s->run_ms = 0;
  s->run_steps = 0;
  SetState(s, SessionState::kQueued);
  Schedule(s);
  return Snapshot(*s);
}

absl::Status SessionManager::Delete(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  if (IsActive(s->state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session ", id, " is ", SessionStateName(s->state), "; stop it before deleting"));
  }
  ANERD_ASSIGN_OR_RETURN(
      auto stmt, cache::Statement::Prepare(db_->get(), "DELETE FROM sessions WHERE id = ?"));
  // Deleting frees space, so it must work on a full disk (server/cache/space_reserve.h).
  ANERD_RETURN_IF_ERROR(cache::RunWithSpaceReserve(options_.state_dir, [&] {
    stmt->Reset();
    stmt->BindText(1, id);
    return stmt->Run();
  }));
  std::error_code ec;
  fs::remove_all(SessionDir(id), ec);
  s->state = SessionState::kStopped;
  WakeWaiters(s);
  sessions_.erase(id);
  return absl::OkStatus();
}

void SessionManager::Export(const std::string& id,
                            std::function<void(absl::StatusOr<std::string>)> done) {
  std::string backend, checkpoint;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Session*> s = Find(id);
    if (!s.ok()) return done(s.status());
    if ((*s)->trainer == nullptr && (*s)->checkpoint_path.empty()) {
      return done(absl::FailedPreconditionError(absl::StrCat(
          "session ", id, " has no weights yet (", SessionStateName((*s)->state), ")")));
    }
    backend = (*s)->backend;
    checkpoint = (*s)->checkpoint_path;
  }
  executors_.at(backend)->Submit(
      {}, "export", [this, id, checkpoint, backend, done](absl::Status admission, absl::Duration) {
        if (!admission.ok()) return done(admission);
        try {
          ExportOnExecutor(id, checkpoint, backend, done);
        } catch (const std::exception& e) {
          done(absl::ResourceExhaustedError(absl::StrCat("export failed: ", e.what())));
        }
      });
}

void SessionManager::ExportOnExecutor(
    const std::string& id, const std::string& checkpoint, const std::string& backend,
    const std::function<void(absl::StatusOr<std::string>)>& done) {
  const std::string path = SessionDir(id) + "/export.tmp";
  training::Trainer* live = nullptr;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Session*> s = Find(id);
    if (!s.ok()) return done(s.status());
    live = (*s)->trainer.get();  // safe: trainer changes only on this executor thread
  }
  if (live != nullptr) {
    absl::Status st = live->ExportLlama2c(path);
    return st.ok() ? done(path) : done(st);
  }
  absl::StatusOr<std::unique_ptr<training::Trainer>> loaded =
      training::Trainer::Resume(checkpoint, registry_->Find(backend));
  if (!loaded.ok()) return done(loaded.status());
  absl::Status st = (*loaded)->ExportLlama2c(path);
  return st.ok() ? done(path) : done(st);
}

absl::StatusOr<uint64_t> SessionManager::SeqForStep(const std::string& id, int64_t from_step) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  for (const SessionEventRecord& e : s->events) {
    if (e.kind == SessionEventRecord::Kind::kStep && e.step.step >= from_step) {
      // Include the state events just before the first wanted step.
      uint64_t seq = e.seq;
      while (seq > 0 && s->events[seq - 1].kind != SessionEventRecord::Kind::kStep) --seq;
      return from_step <= 1 ? 0 : seq;
    }
  }
  return from_step <= 1 ? 0 : s->events.size();
}

absl::StatusOr<uint64_t> SessionManager::NextSeq(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  return s->events.size();
}

absl::Status SessionManager::ReadEvents(const std::string& id, uint64_t from, size_t max,
                                        std::vector<SessionEventRecord>* out, bool* ended) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  for (uint64_t seq = from; seq < s->events.size() && out->size() < max; ++seq) {
    out->push_back(s->events[seq]);
  }
  *ended = !IsActive(s->state) && from + out->size() >= s->events.size();
  return absl::OkStatus();
}

int64_t SessionManager::WakeWhenAvailable(const std::string& id, uint64_t from,
                                          std::function<void()> wake) {
  mu_.Lock();
  auto it = sessions_.find(id);
  if (it == sessions_.end() || from < it->second->events.size() || !IsActive(it->second->state)) {
    mu_.Unlock();
    wake();
    return 0;
  }
  const int64_t token = next_token_++;
  it->second->waiters.push_back({token, from, std::move(wake)});
  mu_.Unlock();
  return token;
}

void SessionManager::CancelWake(const std::string& id, int64_t token) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  auto& w = it->second->waiters;
  w.erase(std::remove_if(w.begin(), w.end(), [&](const Waiter& x) { return x.token == token; }),
          w.end());
}

void SessionManager::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_ && in_flight_ == 0) return;
  shutting_down_ = true;
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &in_flight_));
}

}  // namespace anerd::engine
