// SessionManager: training sessions owned by the daemon. A session trains one model with the
// training engine on one backend; it outlives clients and daemon restarts. Its states and the
// calls legal in each are in session.h; its row in anerd.db in session_store.h; its event log in
// event_log.h; its directory in session_recovery.h.
//
// Sessions that were active when the daemon last stopped come back `interrupted` and, with
// resume_interrupted, resume from their last checkpoint; their log is cut back to that checkpoint
// and gets one warning event naming the step the daemon had reached, the checkpoint step and the
// steps that run again. When the backend's worker process dies
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
// EFBIG, EIO) pauses the session (`paused`, session.h) with "...: <strerror> writing <path>;
// paused at step N ...; free space, then resume it: anectl train resume ID"; its step goes back to
// the last durable checkpoint and Resume continues from there once space is freed (steps already
// reported are replayed without being reported twice); Stop gives it up (`stopped`). At start-up a
// paused session is resumed (with resume_interrupted) only when the filesystem of the state dir
// has room for its next checkpoint (the checkpoint part of its memory estimate plus the store's
// space reserve); otherwise it stays paused with a warning event saying how much is free and
// needed, so a disk that is still full does not pause it again at every start. `completed` is set
// only after the final checkpoint and the event log are fsynced.
//
// Scheduling: each active session has at most one step task queued (class training) on its
// backend's executor and re-queues itself after every step, so sessions take turns (FIFO within the
// class), and every step yields to the executor's queued interactive tasks before each kernel, so
// an evaluation waits for one kernel, not one step (server/engine/device_executor.h). Exports of
// live weights and live-weight copies read the trainer, so they queue as training-class tasks,
// between steps. Every queued task is counted in flight until it ends, however it ends (a scoped
// guard), and Shutdown waits for the count to reach zero.
//
// No blocking file I/O on an executor (common/blocking_io_guard.h): an executor task only builds
// trainers, steps, evaluates and copies weights; the files around that work (checkpoints, the
// training and held-out data, --init models, event-log and TensorBoard appends, session rows,
// best.bin) are read and written on the session I/O thread, and the Evaluate and Export RPCs'
// files on an RPC I/O thread.
//
// Locks: `mu_` guards the session table and is what readers (Get, List, the watch calls) take. It
// is never held while a checkpoint is written or a row is written to anerd.db: a state change
// records the session's row as pending and the row is written after mu_ is released, in order,
// under `persist_mu_` (taken before mu_). Event logs have their own locks (event_log.h).
//
// Thread-safety: all public methods may be called from any thread.
#ifndef ANERD_SERVER_SESSIONS_SESSION_MANAGER_H_
#define ANERD_SERVER_SESSIONS_SESSION_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/paths.h"
#include "server/backend/registry.h"
#include "server/sessions/event_codec.h"
#include "server/sessions/mpi_launch.h"
#include "server/sessions/notifier.h"
#include "server/sessions/session.h"
#include "server/sessions/session_store.h"
#include "server/sessions/step_observations.h"
#include "server/sessions/task_class.h"
#include "server/store/store.h"
#include "server/training/config.h"
#include "server/training/evaluate.h"
#include "server/training/model_export.h"
#include "server/training/span_log.h"
#include "server/training/trainer.h"

namespace anerd::sessions {

struct SessionOptions {
  std::string state_dir;
  int max_sessions = 4;                 // --max-sessions: active at once
  std::vector<std::string> data_roots;  // --data-root: data/model paths must lie under one
  // Files never readable as data even under a root: the token file, the TLS key.
  std::vector<std::string> secret_paths;
  bool resume_interrupted = true;  // --resume-interrupted
  // --session-memory-limit-bytes: the estimated memory (training/memory_estimate.h) of all active
  // sessions together must stay below it; 0 = kDefaultMemoryFraction of physical RAM.
  uint64_t memory_limit_bytes = 0;
  // --checkpoint-interval-s: a session whose spec sets no checkpoint_every checkpoints after this
  // much step time since its last checkpoint, so a crash loses minutes, not the run. 0 = only at
  // the end (and on stop).
  double checkpoint_interval_s = 300;
  // The backend's measured peak for device utilisation (step_observations.h), or nullopt. Called
  // on device executor threads: it must not block (the engine answers from memory).
  std::function<std::optional<MeasuredPeak>(const std::string& backend)> measured_peak;
  // The telemetry sampler's cached snapshot (no I/O; called around every step on the executor).
  // Unset: the daemon has no energy telemetry, and steps say so.
  std::function<telemetry::EnergySnapshot()> energy;
  // Tests only (anerd --testonly-rank-args, --testonly-rank-args-launches): arguments added to
  // anerd-rank's on the first `testonly_rank_args_launches` launches of each data-parallel
  // session (its fault flags: --testonly-exit-rank=1, ...).
  std::vector<std::string> testonly_first_launch_rank_args;
  int testonly_rank_args_launches = 1;
};
inline constexpr double kDefaultMemoryFraction = 0.75;

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
  // The session directory, which holds its TensorBoard event files (`tensorboard --logdir`).
  std::string logdir;
  training::TrainSpec spec;
  std::string error;
  // Evaluation in training (spec.eval_every, sample_every): the lowest held-out loss, the step
  // it was measured after and its checkpoint (empty: none yet); the latest evaluation and sample.
  std::optional<double> best_val_loss;
  int64_t best_val_step = 0;
  std::string best_checkpoint_path;
  std::optional<EvalRecord> last_eval;
  std::optional<SampleRecord> last_sample;
  // The latest reported step event (its breakdown and energy), when there is one.
  std::optional<SessionEventRecord> last_step;
  // Data-parallel sessions (spec.ranks > 1): the relaunches after a fault so far (persisted: the
  // spec.max_restarts budget counts them over the session's life), and the hosts of its latest
  // launch (the hostfile's, else this host's name; empty before the first launch).
  int64_t restarts = 0;
  std::vector<std::string> hosts;
};

// The Evaluate RPC in native terms (SessionManager::Evaluate). The model is a session's
// checkpoint (`session_id`, latest or `best`) or a model file; the data a token or text file, or
// with a session and no data its held-out data. Paths from artifacts were resolved by the service
// (`*_from_artifact`: blobs in the state dir, exempt from the data-root check).
struct EvaluateSpec {
  std::string session_id;
  bool best = false;
  std::string model_path;
  bool model_from_artifact = false;
  std::string data_path;
  bool data_from_artifact = false;
  std::string data_format;
  int batches = 8;
  std::string backend;   // "" = the session's, else the default
  std::string numerics;  // "" = the session's, else fp32
};

struct EvaluateResult {
  training::EvalReport report;
  int64_t step = 0;        // the checkpoint's step (0 for model files without one)
  std::string checkpoint;  // the session checkpoint evaluated
  std::string backend;
  int seq = 0;
};

// Spans of a session's steps, as recorded on the daemon (training/span_log.h).
struct SessionTrace {
  std::vector<training::TraceSpan> spans;  // oldest first
  std::vector<std::string> thread_names;   // by TraceSpan::thread
  int64_t first_step = 0, last_step = 0;   // the range served
  int64_t dropped = 0;                     // spans the bounded ring dropped since the run began
};
inline constexpr int64_t kMaxTraceSteps = 1000;
inline constexpr size_t kMaxTraceSpans = 200000;

// A copy of a running session's weights (CopyLiveWeights).
struct SessionWeights {
  training::TrainSpec spec;  // the session's (its model config; ResidualAlpha(spec) applies)
  std::shared_ptr<const std::vector<float>> params;  // ParamLayout order
  int64_t step = 0;                                  // optimizer steps the weights have seen
};

// Queues `work` in class `task_class` on backend `backend`'s device executor
// (server/engine/device_executor.h); `work` later runs on that executor's thread with the
// admission status and the time it queued. The engine provides it, so sessions need not know the
// executors.
using SubmitTask =
    std::function<void(const std::string& backend, TaskClass task_class, const char* what,
                       std::function<void(absl::Status admission, absl::Duration queued)> work)>;
// Runs the interactive tasks queued on `backend`'s executor, inline; called on that executor's
// thread between a training step's kernels (DeviceExecutor::Yield). May be empty.
using YieldTask = std::function<void(const std::string& backend)>;

class SessionManager {
 public:
  // `registry` and `store` are not owned and must outlive the manager.
  // `yield` (may be empty) is given to every trainer as its kernel yield (Trainer::SetKernelYield).
  SessionManager(const backend::BackendRegistry* registry, SubmitTask submit,
                 std::string default_backend, store::Store* store, SessionOptions options,
                 YieldTask yield = nullptr);
  ~SessionManager();

  // Adopts session directories that have no row (after a lost database), loads sessions, marks
  // those that were active `interrupted` and resumes them when asked.
  absl::Status Init();

  // Validates `spec` (INVALID_ARGUMENT naming the field; PERMISSION_DENIED for paths outside
  // the data roots, common/paths.h ResolveUnderRoots; RESOURCE_EXHAUSTED beyond max_sessions) and
  // queues the session. `owner` is recorded with the session (SessionSnapshot::owner).
  absl::StatusOr<SessionSnapshot> Start(training::TrainSpec spec, std::string name,
                                        std::string backend, std::string owner = "");
  std::vector<SessionSnapshot> List();
  absl::StatusOr<SessionSnapshot> Get(const std::string& id);
  // Measured spans of steps [first_step, last_step] of the session's current run (last_step 0 =
  // the latest step begun), at most kMaxTraceSpans. INVALID_ARGUMENT when the range is over
  // kMaxTraceSteps steps or reversed; NOT_FOUND for an unknown id.
  absl::StatusOr<SessionTrace> Trace(const std::string& id, int64_t first_step, int64_t last_step);
  absl::StatusOr<SessionSnapshot> Stop(const std::string& id);
  // `ranks` > 0 moves a session to that many ranks (training::ResumeOnRanks: accum changes so
  // every step keeps its sequences; INVALID_ARGUMENT when it cannot; more than one rank needs
  // what Start needs for it).
  absl::StatusOr<SessionSnapshot> Resume(const std::string& id, int64_t extra_steps, int ranks = 0);
  absl::Status Delete(const std::string& id);
  // Writes the session's latest weights in `format` into a new temporary directory; `done`
  // receives the directory, which holds training::ExportFileNames(format) (the caller deletes it).
  // INVALID_ARGUMENT when the format cannot hold the model; UNAVAILABLE when the daemon stops.
  // `best`: the best-validation checkpoint instead of the latest weights (FAILED_PRECONDITION
  // when the session has none). A running session's weights are copied on its executor between
  // two steps; reading a checkpoint and writing the files happen on the RPC I/O thread, where
  // `done` is called (or on the calling thread for an error found at once).
  void Export(const std::string& id, training::ExportFormat format, bool best,
              std::function<void(absl::StatusOr<std::string>)> done);

  // Loss of a model on data (EvaluateSpec), on the backend's executor. INVALID_ARGUMENT for a
  // bad field or data too short for one sequence, FAILED_PRECONDITION naming the checkpoint a
  // session lacks, PERMISSION_DENIED for paths outside the data roots, NOT_FOUND for an unknown
  // session.
  void Evaluate(EvaluateSpec spec, std::function<void(absl::StatusOr<EvaluateResult>)> done);
  // Copies the running trainer's weights in one task queued on the session's executor (between
  // two steps; the session is otherwise undisturbed); `done` runs on that executor.
  // FAILED_PRECONDITION "weights: ..." when the session has no trainer in memory (not running).
  void CopyLiveWeights(const std::string& id,
                       std::function<void(absl::StatusOr<SessionWeights>)> done);

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
  struct Session;  // session_internal.h
  class InFlightTask;
  static constexpr int kMaxWorkerFailures = 3;

  // --- session_loader.cc: start-up.
  absl::Status LoadAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rows for directories without one (the database was lost or corrupt), from what the directory
  // holds (session_recovery.h): stopped or completed with a checkpoint, else failed.
  absl::Status AdoptOrphanDirs();
  // An active session found at start-up: cut its log back to its checkpoint and mark it
  // interrupted, or failed when resuming it could repeat what stopped the daemon.
  void RecoverInterrupted(Session* s, const std::string& damage) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a paused session has room to resume at start-up (see Durability above): OK, or
  // RESOURCE_EXHAUSTED saying how many bytes are free in its directory and how many it needs.
  absl::Status RoomToResume(const Session& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- session_task.cc: the task loop on the executors and the session I/O thread.
  // A turn's device work runs on the executor; its file I/O (event log and TensorBoard appends,
  // checkpoint reads and writes, best.bin) runs on session_io_, never on an executor. A session
  // has at most one task (executor or I/O) at a time, so its records keep their order and its
  // trainer is touched by one thread at a time.
  void Schedule(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `work` (a session's I/O) on session_io_, counted in flight; an exception fails the
  // session `id`.
  void PostIo(const std::string& id, std::function<void()> work) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunTask(const std::string& id, absl::Status admission, absl::Duration queued);
  // The turn of a session asked to stop (or drained at shutdown), on session_io_: checkpoint,
  // then stop.
  void StopTask(Session* s, bool admitted);
  // Before building a trainer, on session_io_: `compiling`, the checkpoint to resume from read
  // into Session::resume_from and the files the trainer reads (data, held-out data, --init model:
  // training/trainer_inputs.h) into Session::build_inputs; then the build turn is scheduled.
  void PrepareBuildTask(Session* s);
  // The build turn, on the executor: builds the trainer from what PrepareBuildTask read (no file
  // I/O), then FinishBuildTask on session_io_.
  void BuildTrainerTask(Session* s);
  // On session_io_: records the new trainer (or its failure), writes the raised step count of a
  // resume with extra steps into the checkpoint, schedules the first step.
  void FinishBuildTask(Session* s, absl::StatusOr<std::unique_ptr<training::Trainer>> trainer);
  // Every other turn: one step on the executor, then RecordStepTask on session_io_.
  void StepTask(Session* s, absl::Duration queued);
  struct StepExtras;
  // On session_io_: best.bin, the step's events and scalars; then the checkpoint when due, then
  // completion or the next step.
  void RecordStepTask(Session* s, absl::StatusOr<training::StepReport> report,
                      std::shared_ptr<StepExtras> extras, StepContext context,
                      absl::Duration queued);
  // After a step whose checkpoint is due: the checkpoint, then completion or the next step. Runs
  // on session_io_ (a checkpoint is blocking file I/O, which never runs on an executor), with
  // the session not scheduled meanwhile, so nothing changes its trainer.
  void CheckpointTask(Session* s);
  // Fails the session whose task threw; its state event and row are file I/O, so call it on
  // session_io_ (FailOffExecutor queues it there from an executor task).
  void FailAfterException(const std::string& id, const char* what);
  void FailOffExecutor(const std::string& id, const char* what) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes a checkpoint of the session's trainer without holding mu_ (call on its executor task
  // with mu_ not held); the session shows `checkpointing` meanwhile. On success records it in the
  // event log (fsynced, so the steps before it are durable with it).
  absl::Status WriteCheckpoint(Session* s) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the trainer and marks the session paused after a write error, back at its last
  // durable checkpoint.
  void PauseOnWriteError(Session* s, const absl::Status& error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs a new step (loss, best, timing, the event, TensorBoard); false when a write error paused
  // the session.
  bool RecordStep(Session* s, const training::StepReport& report, double queued_ms,
                  const StepObservations& observed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a step; returns whether a checkpoint is due now.
  bool AfterStep(Session* s, const training::StepReport& report, double queued_ms,
                 const StepObservations& observed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the step's scalars to the session's TensorBoard file (tensorboard_scalars.h), opening
  // it at the first step of this run; a failure is logged once and ends scalars for this run.
  void WriteTensorBoard(Session* s, const training::StepReport& report, double queued_ms,
                        const StepObservations& observed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The scalars of an evaluation (validation loss) in the same file.
  void WriteEvalTensorBoard(Session* s, const EvalRecord& eval) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens the session's TensorBoard file at first use; false when it cannot be written.
  bool OpenTensorBoard(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When `error` says the backend's worker process was lost (UNAVAILABLE), drops the trainer and
  // schedules a resume from the last checkpoint (at most kMaxWorkerFailures times in a row);
  // returns whether it did.
  bool RecoverFromWorkerLoss(Session* s, const absl::Status& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Export (see Export): on the session's executor, copies the live trainer's weights (or, when
  // it is gone, takes its latest checkpoint), then WriteExport on rpc_io_.
  using ExportDone = std::function<void(absl::StatusOr<std::string>)>;
  void CopyForExport(const std::string& id, training::ExportFormat format, ExportDone done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Queues WriteExport on rpc_io_; UNAVAILABLE to `done` once the daemon is stopping.
  void PostExportWrite(const std::string& id, std::shared_ptr<training::Checkpoint> model,
                       std::string checkpoint, training::ExportFormat format, ExportDone done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // On rpc_io_: reads `checkpoint` unless `model` holds the weights already, writes the export
  // directory, calls `done`.
  void WriteExport(const std::string& id, std::shared_ptr<training::Checkpoint> model,
                   const std::string& checkpoint, training::ExportFormat format,
                   const ExportDone& done);

  // --- session_distributed.cc: data-parallel sessions (ranks > 1), supervised off the executors.
  // Starts the session's supervisor thread (counted in flight until it ends).
  void LaunchDistributed(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The supervisor: launch, relay, relaunch after faults, until the session leaves active.
  void SuperviseJob(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<RankLaunch> PrepareLaunch(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rank 0 writes checkpoint.bin.STEP; the one the log records is kept: renamed to
  // checkpoint.bin once the job ended (the others, ahead of the log, are removed).
  std::string CanonicalCheckpoint(const std::string& id) const;
  void SettleCheckpoint(Session* s) ABSL_LOCKS_EXCLUDED(mu_);
  // One line of rank 0's stdout into the session's log (steps the log holds are dropped).
  void RelayLine(Session* s, const std::string& line) ABSL_LOCKS_EXCLUDED(mu_);
  // The job ended with `status` (waitpid's): the session's next state; true to relaunch.
  bool AfterJob(Session* s, int status, const std::string& stderr_tail)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- session_eval.cc: evaluation and samples in training, the Evaluate RPC.
  struct StepExtras {
    std::optional<SessionEventRecord> eval;             // the evaluation's event (or a warning)
    bool new_best = false;                              // best.bin is to be written (WriteBest)
    absl::Status best_write;                            // writing best.bin
    std::vector<absl::StatusOr<SampleRecord>> samples;  // finished samples to record
  };
  // After step `step` (a new one, not a replay), on the executor task without mu_: evaluates
  // when due, starts a sample when due (waiting for the previous one first), and collects a
  // finished sample (waiting when `wait_sample`).
  StepExtras AfterStepExtras(Session* s, int64_t step, bool wait_sample) ABSL_LOCKS_EXCLUDED(mu_);
  // On session_io_ without mu_: writes best.bin when the evaluation found a new best (its event
  // says best only once the file is written).
  void WriteBest(Session* s, StepExtras* x) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends the extras' events and updates the best; false when a write error paused the session.
  bool RecordExtras(Session* s, StepExtras extras) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The best, latest evaluation and sample from the log (start-up).
  void LoadEvalState(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The model and data an evaluation needs, read from files on rpc_io_ (never on an executor).
  struct EvalInputs;
  absl::StatusOr<EvalInputs> LoadEvalInputs(const EvaluateSpec& spec,
                                            const std::string& checkpoint);
  absl::StatusOr<EvaluateResult> EvaluateOnExecutor(const EvaluateSpec& spec, EvalInputs in,
                                                    const std::string& checkpoint,
                                                    const std::string& backend_name);

  // --- session_manager.cc.
  absl::Status CheckPaths(const training::TrainSpec& spec) const;
  // RESOURCE_EXHAUSTED when `spec`'s estimate plus the other active sessions' (all but
  // `except_id`) exceeds the limit.
  absl::Status CheckMemory(const training::TrainSpec& spec, const std::string& except_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the session to `state` (a legal transition, session.h), logs the change and records its
  // row as pending.
  void SetState(Session* s, SessionState state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static SessionRow RowOf(const Session& s);
  void MarkDirty(const Session& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the pending rows (call with mu_ not held).
  void FlushRows() ABSL_LOCKS_EXCLUDED(mu_, persist_mu_);
  SessionSnapshot Snapshot(const Session& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string SessionDir(const std::string& id) const;
  absl::StatusOr<Session*> Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Session* Insert(std::unique_ptr<Session> s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const backend::BackendRegistry* registry_;
  SubmitTask submit_;
  YieldTask yield_;
  std::string default_backend_;
  SessionOptions options_;
  ClientPathRoots path_roots_;
  SessionStore rows_;
  uint64_t physical_memory_ = 0;  // 0 = unknown
  uint64_t memory_limit_ = 0;     // effective limit; 0 = none
  // Runs watcher wakes; joined by the destructor while the sessions still exist.
  std::unique_ptr<Notifier> notifier_ = std::make_unique<Notifier>();
  // The sessions' file I/O (PostIo): event-log and TensorBoard appends, checkpoints, best.bin,
  // the trainers' data and --init reads, failure records, the rows executor tasks leave pending;
  // one task at a time, off the executors; each task counts in in_flight_, so Shutdown waits for
  // it.
  std::unique_ptr<Notifier> session_io_ = std::make_unique<Notifier>();
  // The Evaluate RPC's model reads and the Export RPC's checkpoint reads and file writes (apart,
  // so a large read or write does not hold up the sessions' records); joined by Shutdown, after
  // which Evaluate and Export refuse.
  std::unique_ptr<Notifier> rpc_io_ = std::make_unique<Notifier>();

  absl::Mutex persist_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SessionRow> pending_rows_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // The supervisor threads of data-parallel sessions, each with the flag it sets as its last
  // act: finished ones are joined at the next launch, the rest by Shutdown once in_flight_ is 0.
  struct Supervisor {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Supervisor> supervisors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_SESSION_MANAGER_H_
