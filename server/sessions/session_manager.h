// SessionManager: training sessions owned by the daemon. A session trains one model with the
// training engine on one backend; it outlives clients and daemon restarts.
//
// States and the calls legal in each (others get FAILED_PRECONDITION naming the state):
//   queued        accepted, waiting for its first executor turn        Stop, Get, Watch
//   compiling     building the trainer (kernels compile once)          Stop, Get, Watch
//   running       taking steps                                        Stop, Export, Get, Watch
//   checkpointing writing a checkpoint (then back to running)          Stop, Export, Get, Watch
//   stopped       stopped by a client after a checkpoint              Resume, Delete, Export, Get
//   completed     reached its step count (final checkpoint written)   Resume(+steps), Delete,
//   Export failed        the engine returned an error (see `error`)          Resume (if
//   checkpointed), Delete interrupted   the daemon stopped or crashed while it ran          Resume,
//   Delete, Export
// Sessions that were active when the daemon last stopped come back `interrupted` and, with
// resume_interrupted, resume from their last checkpoint. When the backend's worker process dies
// mid-step (UNAVAILABLE), the session goes back to `compiling`, rebuilds its trainer from the
// last checkpoint and replays the steps since then without reporting them twice, so a watcher
// sees one warning event and an unbroken step sequence. A session found `compiling` on start (the
// daemon died while building its trainer, e.g. out of memory) comes back `failed` instead and is
// never resumed automatically into the same failure.
//
// Memory: Start and Resume (also the automatic one) estimate the session's memory
// (training/memory_estimate.h) and refuse with RESOURCE_EXHAUSTED when it plus the other active
// sessions' estimates exceeds memory_limit_bytes. An exception thrown on a session's executor task
// (std::bad_alloc, ...) fails that session with the reason; it never reaches the executor.
//
// Durability: every event-log append and checkpoint write is checked. A write error (ENOSPC,
// EFBIG, EIO) pauses the session as `failed` with "...: <strerror> writing <path>"; its step goes
// back to the last durable checkpoint and Resume continues from there once space is freed (steps
// already reported are replayed without being reported twice). `completed` is set only after the
// final checkpoint and the event log are fsynced.
//
// Scheduling: each active session has at most one step task queued on its backend's
// DeviceExecutor and re-queues itself after every step, so sessions, kernel evaluations and probes
// interleave fairly (FIFO) and RPCs never wait for more than one step.
//
// Events: every step, state change, checkpoint and warning is appended to the session's event log
// (memory + sessions/<id>/events.jsonl, format in session_events.h) with a gap-free sequence
// number. Watchers pull from the log at their own pace, so a slow watcher never slows training and
// never loses events. On start a torn tail of the file is cut; a damaged line before it marks the
// session `failed` with an error naming the file and line (the original file is kept as
// events.jsonl.corrupt and the valid records are kept).
//
// Thread-safety: all public methods may be called from any thread.
#ifndef ANERD_SERVER_ENGINE_SESSION_MANAGER_H_
#define ANERD_SERVER_ENGINE_SESSION_MANAGER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/registry.h"
#include "server/engine/device_executor.h"
#include "server/engine/session_events.h"
#include "server/training/config.h"
#include "server/training/trainer.h"

namespace anerd::cache {
class SqliteDb;
}

namespace anerd::engine {

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
const char* SessionStateName(SessionState state);
bool IsActive(SessionState state);  // queued, compiling, running, checkpointing
// The NOT_FOUND every call naming an unknown session id gets (also used for sessions a caller may
// not see, so that they look exactly like missing ones).
absl::Status SessionNotFound(const std::string& id);

struct SessionOptions {
  std::string state_dir;
  int max_sessions = 4;                 // --max_sessions: active at once
  std::vector<std::string> data_roots;  // --data_root: data/model paths must lie under one
  // Files never readable as data even under a root: the token file, the TLS key.
  std::vector<std::string> secret_paths;
  bool resume_interrupted = true;  // --resume_interrupted
  // --session_memory_limit_bytes: the estimated memory (training/memory_estimate.h) of all active
  // sessions together must stay below it; 0 = kDefaultMemoryFraction of physical RAM.
  uint64_t memory_limit_bytes = 0;
};
inline constexpr double kDefaultMemoryFraction = 0.75;

// OK when canonical path `resolved` (named by request field `field`) may be read as training data
// or a model: it lies under one of `options.data_roots` with no dot-file or dot-directory
// component below that root, and it is neither in the state dir nor one of the secret paths.
// PERMISSION_DENIED naming the field and the reason otherwise.
absl::Status CheckDataPath(const std::string& field, const std::string& resolved,
                           const SessionOptions& options);

struct SessionSnapshot {
  std::string id;
  std::string name;
  std::string backend;
  // The client that started it ("token:alice", "uid:501"; "" = none recorded). Persisted; the
  // service decides who may see the session (server/service/authz.h).
  std::string owner;
  SessionState state = SessionState::kQueued;
  int64_t step = 0;
  int64_t total_steps = 0;
  double last_loss = 0;
  double best_loss = 0;
  int64_t started_ms = 0;
  double elapsed_seconds = 0;
  double eta_seconds = 0;
  std::string checkpoint_path;
  int64_t checkpoint_step = 0;
  training::TrainSpec spec;
  std::string error;
};

class SessionManager {
 public:
  // Pointers are not owned and must outlive the manager.
  SessionManager(const backend::BackendRegistry* registry,
                 std::map<std::string, DeviceExecutor*> executors, std::string default_backend,
                 SessionOptions options);
  ~SessionManager();

  // Opens the session table, adopts session directories that have no record (after a lost
  // database), loads sessions, marks those that were active `interrupted` and resumes them when
  // asked.
  absl::Status Init();

  // Validates `spec` (INVALID_ARGUMENT naming the field; PERMISSION_DENIED for paths outside
  // the data roots; RESOURCE_EXHAUSTED beyond max_sessions) and queues the session.
  // `owner` is recorded with the session (SessionSnapshot::owner).
  absl::StatusOr<SessionSnapshot> Start(training::TrainSpec spec, std::string name,
                                        std::string backend, std::string owner = "");
  std::vector<SessionSnapshot> List();
  absl::StatusOr<SessionSnapshot> Get(const std::string& id);
  absl::StatusOr<SessionSnapshot> Stop(const std::string& id);
  absl::StatusOr<SessionSnapshot> Resume(const std::string& id, int64_t extra_steps);
  absl::Status Delete(const std::string& id);
  // Writes the session's latest weights as a llama2.c file to a temp path, on the executor;
  // `done` receives the path (the caller deletes it).
  void Export(const std::string& id, std::function<void(absl::StatusOr<std::string>)> done);

  // Watching. The first sequence number at or after `from_step` (0 = the start).
  absl::StatusOr<uint64_t> SeqForStep(const std::string& id, int64_t from_step);
  absl::StatusOr<uint64_t> NextSeq(const std::string& id);
  // Copies up to `max` events from `from`. `ended` is set when no event at or after `from` will
  // ever come (the session is not active and the log is fully read).
  absl::Status ReadEvents(const std::string& id, uint64_t from, size_t max,
                          std::vector<SessionEventRecord>* out, bool* ended);
  // Calls `wake` once, from any thread, when an event at or after `from` exists or the session
  // stops being active (immediately if that is already so). Returns a token for CancelWake.
  int64_t WakeWhenAvailable(const std::string& id, uint64_t from, std::function<void()> wake);
  void CancelWake(const std::string& id, int64_t token);

  // Stops scheduling, checkpoints running sessions (marking them interrupted so they resume on
  // the next start) and waits for in-flight steps. Call before the executors shut down.
  void Shutdown();

 private:
  struct Session;
  struct Waiter {
    int64_t token;
    uint64_t from;
    std::function<void()> wake;
  };

  absl::Status CheckPaths(const training::TrainSpec& spec) const;
  void Schedule(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunTask(const std::string& id, absl::Status admission, absl::Duration queued);
  void ExportOnExecutor(const std::string& id, const std::string& checkpoint,
                        const std::string& backend,
                        const std::function<void(absl::StatusOr<std::string>)>& done);
  // Fails the session whose task threw; the task's in-flight count is released.
  void FailAfterException(const std::string& id, const char* what);
  // RESOURCE_EXHAUSTED when `spec`'s estimate plus the other active sessions' (all but
  // `except_id`) exceeds the limit.
  absl::Status CheckMemory(const training::TrainSpec& spec, const std::string& except_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the trainer and marks the session failed after a write error, back at its last
  // durable checkpoint.
  void PauseOnWriteError(Session* s, const absl::Status& error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loads the event log of `s` from disk (cutting a torn tail); returns the damage found, if any.
  std::string LoadEvents(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EnsureTrainer(Session* s, backend::Backend* backend);
  void AfterStep(Session* s, const training::StepReport& report, double queued_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeCheckpoint(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When `error` says the backend's worker process was lost (UNAVAILABLE), drops the trainer and
  // schedules a resume from the last checkpoint (at most kMaxWorkerFailures times in a row);
  // returns whether it did.
  bool RecoverFromWorkerLoss(Session* s, const absl::Status& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static constexpr int kMaxWorkerFailures = 3;
  absl::Status Checkpoint(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetState(Session* s, SessionState state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds the event to memory and appends it to the file (fsynced when `sync`); a write error is
  // returned (the event stays in memory, the file is cut back to its previous end).
  absl::Status Append(Session* s, SessionEventRecord event, bool sync = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeWaiters(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Persist(const Session& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records sessions whose directory has no row (the database was lost or corrupt) from what the
  // directory holds (session_recovery.h): stopped or completed with a checkpoint, else failed.
  absl::Status AdoptOrphanDirs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SessionSnapshot Snapshot(const Session& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string SessionDir(const std::string& id) const;
  absl::StatusOr<Session*> Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const backend::BackendRegistry* registry_;
  std::map<std::string, DeviceExecutor*> executors_;
  std::string default_backend_;
  SessionOptions options_;
  std::unique_ptr<cache::SqliteDb> db_;
  uint64_t physical_memory_ = 0;  // 0 = unknown
  uint64_t memory_limit_ = 0;     // effective limit; 0 = none

  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);

  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;

  // Watcher wakes are run by one notifier thread, outside mu_.
  void NotifierLoop();
  absl::Mutex wake_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::deque<std::function<void()>> wake_queue_ ABSL_GUARDED_BY(wake_mu_);
  bool notifier_stop_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread notifier_;
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_SESSION_MANAGER_H_
