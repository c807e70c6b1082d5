#include "server/sessions/session_manager.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/memory_trim.h"
#include "common/paths.h"
#include "common/regular_file.h"
#include "common/status_macros.h"
#include "common/system_memory.h"
#include "server/sessions/distributed_launch.h"
#include "server/sessions/session_internal.h"
#include "server/sessions/session_recovery.h"
#include "server/sessions/session_sample.h"
#include "server/training/init_model.h"
#include "server/training/memory_estimate.h"
#include "server/training/validation_split.h"
#include "spdlog/spdlog.h"

namespace anerd::sessions {
namespace {

namespace fs = std::filesystem;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

std::string NewSessionId() {
  return Sha256Hex(absl::StrCat(NowMs(), "/", getpid(), "/", rand())).substr(0, 12);
}

}  // namespace

// Writes the rows a call left pending once it has released mu_ (declare it before the lock).
class FlushRowsAtExit {
 public:
  explicit FlushRowsAtExit(std::function<void()> flush) : flush_(std::move(flush)) {}
  ~FlushRowsAtExit() { flush_(); }

 private:
  std::function<void()> flush_;
};

SessionManager::SessionManager(const backend::BackendRegistry* registry, SubmitTask submit,
                               std::string default_backend, store::Store* store,
                               SessionOptions options, YieldTask yield)
    : registry_(registry),
      submit_(std::move(submit)),
      yield_(std::move(yield)),
      default_backend_(std::move(default_backend)),
      options_(std::move(options)),
      path_roots_{options_.data_roots, options_.state_dir, options_.secret_paths},
      rows_(store) {
  absl::StatusOr<uint64_t> ram = PhysicalMemoryBytes();
  physical_memory_ = ram.ok() ? *ram : 0;
  memory_limit_ = options_.memory_limit_bytes;
  if (memory_limit_ == 0) {
    memory_limit_ =
        static_cast<uint64_t>(static_cast<double>(physical_memory_) * kDefaultMemoryFraction);
  }
  if (memory_limit_ == 0) spdlog::warn("sessions: {}; no memory limit", ram.status().ToString());
}

SessionManager::~SessionManager() {
  Shutdown();
  FlushRows();
  notifier_.reset();  // runs the wakes still queued, while their sessions exist
}

std::string SessionManager::SessionDir(const std::string& id) const {
  return absl::StrCat(options_.state_dir, "/sessions/", id);
}

absl::Status SessionManager::Init() {
  ANERD_RETURN_IF_ERROR(AdoptOrphanDirs());
  std::vector<std::string> to_resume;
  {
    absl::MutexLock lock(&mu_);
    ANERD_RETURN_IF_ERROR(LoadAll());
    for (auto& [id, s] : sessions_) {
      if (s->state == SessionState::kInterrupted) to_resume.push_back(id);
      if (s->state != SessionState::kPaused || !options_.resume_interrupted) continue;
      // Resumed only with room for its next checkpoint: on a disk that is still full it would
      // only pause again.
      if (absl::Status room = RoomToResume(*s); !room.ok()) {
        spdlog::warn("session {}: stays paused: {}", id, std::string(room.message()));
        (void)s->log->Append(
            WarningEvent(absl::StrCat("not resumed at start-up: ", room.message(),
                                      "; free space, then anectl train resume ", id)));
        continue;
      }
      to_resume.push_back(id);
    }
  }
  FlushRows();
  if (!options_.resume_interrupted) return absl::OkStatus();
  for (const std::string& id : to_resume) {
    absl::StatusOr<SessionSnapshot> r = Resume(id, 0);
    spdlog::info("session {}: resuming after restart: {}", id,
                 r.ok() ? "ok" : r.status().ToString());
    if (r.ok()) continue;
    // E.g. too large for this machine's memory (limit lowered, another machine): say why.
    FlushRowsAtExit flush([this] { FlushRows(); });
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Session*> s = Find(id);
    if (s.ok() && !IsActive((*s)->state)) {
      (*s)->error = absl::StrCat("not resumed after restart: ", r.status().message());
      SetState(*s, SessionState::kFailed);
    }
  }
  return absl::OkStatus();
}

absl::Status SessionManager::CheckPaths(const training::TrainSpec& spec) const {
  // `artifact`: the id the service resolved the path from (a stored blob, in the state dir).
  auto check = [&](const char* field, const std::string& path,
                   const std::string& artifact) -> absl::Status {
    if (!artifact.empty()) return CheckRegularFile(path, field);
    ANERD_ASSIGN_OR_RETURN(const std::string resolved, ResolveUnderRoots(field, path, path_roots_));
    return CheckRegularFile(resolved, field);  // a FIFO would block its reader
  };
  ANERD_RETURN_IF_ERROR(check("data", spec.data_path, spec.data_artifact));
  if (!spec.init_model_path.empty()) {
    ANERD_RETURN_IF_ERROR(check("init", spec.init_model_path, spec.init_artifact));
  }
  if (!spec.val_data_path.empty()) {
    ANERD_RETURN_IF_ERROR(check("val_data", spec.val_data_path, spec.val_artifact));
  }
  if (!spec.hostfile.empty()) ANERD_RETURN_IF_ERROR(check("hostfile", spec.hostfile, ""));
  return absl::OkStatus();
}

SessionManager::Session* SessionManager::Insert(std::unique_ptr<Session> s) {
  Session* raw = s.get();
  raw->log =
      std::make_shared<EventLog>(SessionDir(raw->id) + "/events.jsonl", notifier_.get(), raw->id);
  sessions_[raw->id] = std::move(s);
  return raw;
}

absl::StatusOr<SessionSnapshot> SessionManager::Start(training::TrainSpec spec, std::string name,
                                                      std::string backend, std::string owner) {
  ANERD_RETURN_IF_ERROR(training::ValidateSpec(spec));
  if (spec.data_path.empty()) return absl::InvalidArgumentError("data: a data file is required");
  // `--init FILE` without a model: the shape comes from the file's header, read only after the
  // path checks so that no file outside the roots is opened.
  const bool model_from_init = spec.model_from_init;
  if (!model_from_init) {
    absl::MutexLock lock(&mu_);
    ANERD_RETURN_IF_ERROR(CheckMemory(spec, ""));
  }
  ANERD_RETURN_IF_ERROR(CheckPaths(spec));
  if (model_from_init) {
    ANERD_RETURN_IF_ERROR(training::ResolveInitModel(&spec));
    ANERD_RETURN_IF_ERROR(training::ValidateSpec(spec));
    absl::MutexLock lock(&mu_);
    ANERD_RETURN_IF_ERROR(CheckMemory(spec, ""));
  }
  ANERD_RETURN_IF_ERROR(training::ResolveValidationSplit(&spec));
  ANERD_RETURN_IF_ERROR(CheckSampleSpec(spec));
  ANERD_RETURN_IF_ERROR(CheckDistributedSession(spec, SelfExecutablePath()));
  if (backend.empty()) backend = default_backend_;
  if (registry_->Find(backend) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("backend: unknown backend '", backend, "'"));
  }
  FlushRowsAtExit flush([this] { FlushRows(); });
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the daemon is shutting down; retry");
  int active = 0;
  for (const auto& [id, s] : sessions_) {
    active += IsActive(s->state) ? 1 : 0;
    // Names work as ids in anectl: one client's live sessions never share one. (Other clients'
    // names are not compared: they are not visible to this one.)
    if (!name.empty() && IsActive(s->state) && s->name == name && s->owner == owner) {
      return absl::AlreadyExistsError(absl::StrCat("name: session ", s->id,
                                                   " is already running as '", name,
                                                   "'; pick another --name or stop it"));
    }
  }
  if (active >= options_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        active, " sessions are already active, the limit (raise it with anerd --max-sessions)"));
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
  Session* raw = Insert(std::move(s));
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
      "); use a smaller model or raise the limit with anerd --session-memory-limit-bytes"));
}

void SessionManager::SetState(Session* s, SessionState state) {
  if (absl::Status t = CheckTransition(s->state, state); !t.ok()) {
    spdlog::error("session {}: {}", s->id, t.ToString());  // a bug; the change still happens
  }
  const bool changed = s->state != state || s->log->size() == 0;
  s->state = state;
  if (changed) {
    SessionEventRecord e;
    e.kind = SessionEventRecord::Kind::kState;
    e.text = SessionStateName(state);
    // A failed or paused run carries its reason in the stream (watchers need not ask GetSession).
    if (state == SessionState::kFailed || state == SessionState::kPaused) e.detail = s->error;
    (void)s->log->Append(std::move(e), /*sync=*/!IsActive(state));  // errors are logged there
  }
  MarkDirty(*s);
  s->log->SetOpen(IsActive(state) || s->relaunching);  // closing it wakes the watchers
  // A session that stopped running freed its trainer (model, optimizer state, activations).
  if (changed && !IsActive(state) && s->trainer == nullptr) TrimFreeMemory();
}

SessionRow SessionManager::RowOf(const Session& s) {
  SessionRow r;
  r.id = s.id;
  r.name = s.name;
  r.backend = s.backend;
  r.owner = s.owner;
  r.state = s.state;
  r.step = s.step;
  r.total_steps = s.total_steps;
  r.started_ms = s.started_ms;
  r.checkpoint_step = s.checkpoint_step;
  r.checkpoint_seq = s.checkpoint_seq;
  r.last_loss = s.last_loss;
  r.best_loss = s.best_loss;
  r.elapsed_seconds = s.elapsed_seconds;
  r.checkpoint_path = s.checkpoint_path;
  r.error = s.error;
  r.spec = s.spec;
  r.restarts = s.restarts;
  r.hosts = s.hosts;
  return r;
}

void SessionManager::MarkDirty(const Session& s) { pending_rows_[s.id] = RowOf(s); }

void SessionManager::FlushRows() {
  // persist_mu_ orders the writers: rows taken later are written later, so the newest wins.
  absl::MutexLock persist(&persist_mu_);
  std::map<std::string, SessionRow> rows;
  {
    absl::MutexLock lock(&mu_);
    rows.swap(pending_rows_);
  }
  for (const auto& [id, row] : rows) {
    if (absl::Status p = rows_.Put(row); !p.ok()) {
      spdlog::error("session {}: cannot persist state: {}", id, p.ToString());
    }
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
  out.logdir = SessionDir(s.id);
  out.spec = s.spec;
  out.error = s.error;
  if (!std::isnan(s.best_val_loss)) out.best_val_loss = s.best_val_loss;
  out.best_val_step = s.best_val_step;
  out.best_checkpoint_path = s.best_checkpoint_path;
  out.last_eval = s.last_eval;
  out.last_sample = s.last_sample;
  out.last_step = s.last_step;
  out.restarts = s.restarts;
  out.hosts = s.hosts;
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

absl::StatusOr<SessionTrace> SessionManager::Trace(const std::string& id, int64_t first_step,
                                                   int64_t last_step) {
  std::shared_ptr<training::SpanLog> spans;
  {
    absl::MutexLock lock(&mu_);
    ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
    spans = s->spans;
  }
  SessionTrace out;
  out.last_step = last_step > 0 ? last_step : spans->current_step();
  out.first_step = first_step > 0 ? first_step : std::max<int64_t>(1, out.last_step - 99);
  if (out.first_step > out.last_step && last_step > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("first_step ", out.first_step, " is after last_step ", out.last_step));
  }
  if (out.last_step - out.first_step + 1 > kMaxTraceSteps) {
    return absl::InvalidArgumentError(absl::StrCat("steps ", out.first_step, "..", out.last_step,
                                                   ": at most ", kMaxTraceSteps,
                                                   " steps per trace"));
  }
  out.spans = spans->Spans(out.first_step, out.last_step, kMaxTraceSpans);
  out.thread_names = spans->ThreadNames();
  out.dropped = spans->dropped();
  return out;
}

absl::StatusOr<SessionSnapshot> SessionManager::Stop(const std::string& id) {
  FlushRowsAtExit flush([this] { FlushRows(); });
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  if (s->state == SessionState::kPaused) {
    // Given up instead of waiting for space: it stays at its last durable checkpoint.
    SetState(s, SessionState::kStopped);
    return Snapshot(*s);
  }
  if (!IsActive(s->state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", id, " is ", SessionStateName(s->state),
                     "; only an active or paused session can stop"));
  }
  s->stop_requested = true;  // honoured at its next executor turn, after a checkpoint
  // A data-parallel job ends now; its last checkpoint (rank 0's, written atomically) stays.
  if (s->job != nullptr) s->job->Terminate();
  return Snapshot(*s);
}

absl::StatusOr<SessionSnapshot> SessionManager::Resume(const std::string& id, int64_t extra_steps,
                                                       int ranks) {
  if (extra_steps < 0) return absl::InvalidArgumentError("steps: must not be negative");
  FlushRowsAtExit flush([this] { FlushRows(); });
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
  if (ranks > 0 && ranks != s->spec.ranks) {
    training::TrainSpec moved = s->spec;
    ANERD_RETURN_IF_ERROR(training::ResumeOnRanks(ranks, &moved));
    ANERD_RETURN_IF_ERROR(CheckDistributedSession(moved, SelfExecutablePath()));
    ANERD_RETURN_IF_ERROR(CheckMemory(moved, id));
    s->spec = std::move(moved);
  }
  ANERD_RETURN_IF_ERROR(CheckMemory(s->spec, id));
  if (s->checkpoint_path.empty()) {
    // Nothing to continue from: start over, and forget the partial log.
    s->log->Clear();
    s->replay_until = 0;
    s->step = 0;
    s->spec.steps += extra_steps;
  }
  s->extra_steps = extra_steps;
  s->total_steps += extra_steps;
  s->restarts = 0;  // a resume by the user starts a new budget of automatic relaunches
  s->error.clear();
  s->run_ms = 0;
  s->run_steps = 0;
  SetState(s, SessionState::kQueued);
  Schedule(s);
  return Snapshot(*s);
}

absl::Status SessionManager::Delete(const std::string& id) {
  absl::MutexLock persist(&persist_mu_);  // no pending row of it is written after the delete
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  if (IsActive(s->state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session ", id, " is ", SessionStateName(s->state), "; stop it before deleting"));
  }
  ANERD_RETURN_IF_ERROR(rows_.Delete(id));
  pending_rows_.erase(id);
  std::error_code ec;
  fs::remove_all(SessionDir(id), ec);
  s->log->SetOpen(false);
  sessions_.erase(id);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SessionManager::SeqForStep(const std::string& id, int64_t from_step) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  return s->log->SeqForStep(from_step);
}

absl::StatusOr<uint64_t> SessionManager::NextSeq(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
  return s->log->size();
}

absl::Status SessionManager::ReadEvents(const std::string& id, uint64_t from, size_t max,
                                        std::vector<SessionEventRecord>* out, bool* ended) {
  std::shared_ptr<EventLog> log;
  {
    absl::MutexLock lock(&mu_);
    ANERD_ASSIGN_OR_RETURN(Session * s, Find(id));
    log = s->log;
  }
  log->Read(from, max, out, ended);
  return absl::OkStatus();
}

int64_t SessionManager::WakeWhenAvailable(const std::string& id, uint64_t from,
                                          std::function<void()> wake) {
  std::shared_ptr<EventLog> log;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it != sessions_.end()) log = it->second->log;
  }
  if (log == nullptr) {
    wake();
    return 0;
  }
  return log->WakeWhenAvailable(from, std::move(wake));
}

void SessionManager::CancelWake(const std::string& id, int64_t token) {
  std::shared_ptr<EventLog> log;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    log = it->second->log;
  }
  log->CancelWake(token);
}

void SessionManager::Shutdown() {
  std::vector<Supervisor> supervisors;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    // No rank outlives the daemon: the jobs end and their sessions become interrupted.
    for (auto& [id, s] : sessions_) {
      if (s->job != nullptr) s->job->Terminate();
    }
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &in_flight_));
    supervisors.swap(supervisors_);
  }
  for (Supervisor& t : supervisors) t.thread.join();
  rpc_io_.reset();  // what was queued before the flag was set; Evaluate and Export refuse now
  FlushRows();
}

}  // namespace anerd::sessions
