// The session record SessionManager keeps in memory (private to session_manager*.cc and
// session_loader.cc / session_task.cc). Guarded by SessionManager::mu_ except where noted.
#ifndef ANERD_SERVER_SESSIONS_SESSION_INTERNAL_H_
#define ANERD_SERVER_SESSIONS_SESSION_INTERNAL_H_

#include <cmath>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/metrics/tfevents_writer.h"
#include "server/sessions/event_log.h"
#include "server/sessions/mpi_job.h"
#include "server/sessions/mpi_launch.h"
#include "server/sessions/session_manager.h"
#include "server/sessions/session_store.h"
#include "server/training/span_log.h"
#include "server/training/trainer.h"
#include "server/training/trainer_inputs.h"

namespace anerd::sessions {

struct SessionManager::Session {
  std::string id, name, backend;
  std::string owner;  // the client that started it ("" = unowned); see SessionSnapshot
  training::TrainSpec spec;
  SessionState state = SessionState::kQueued;
  int64_t step = 0, total_steps = 0, started_ms = 0, checkpoint_step = 0;
  uint64_t checkpoint_seq = 0;  // events up to this seq are covered by the checkpoint
  double last_loss = std::nan(""), best_loss = std::nan(""), elapsed_seconds = 0;
  std::string checkpoint_path, error;
  // Touched only by this session's tasks (set and reset under mu_ by them). Shared so that an
  // export on the executor can copy the weights outside mu_ while the session's I/O task may
  // drop it (Trainer::Step runs only on the executor, so the weights hold still meanwhile).
  std::shared_ptr<training::Trainer> trainer;
  int64_t extra_steps = 0;  // pending for the next Resume of the trainer
  // Set by PrepareBuildTask (on the session I/O thread) for the build turn: the trainer may be
  // built, from `resume_from` when set (the checkpoint, read off the executor) and
  // `build_inputs` (its data and --init model, read off the executor). Touched only by this
  // session's tasks.
  bool build_prepared = false;
  std::shared_ptr<training::Checkpoint> resume_from;
  std::shared_ptr<training::TrainerInputs> build_inputs;
  bool stop_requested = false;
  double run_ms = 0;  // step time of this run, for the ETA
  // The current trainer's kernel compile time and the step time since it was built (touched only
  // by this session's tasks), for the step's compile share.
  std::optional<double> compile_ms;
  double ms_since_build = 0;
  double ms_since_checkpoint = 0;  // step time since the last checkpoint (or the start)
  int64_t run_steps = 0;
  // After a backend worker died mid-step the session replays from its last checkpoint; steps up
  // to this one were already reported and are not reported again.
  int64_t replay_until = 0;
  int worker_failures = 0;     // consecutive, without a step completing in between
  double memory_estimate = 0;  // bytes (training/memory_estimate.h), counted while active
  // Evaluation in training (session_eval.cc): the lowest held-out loss so far (NaN = none), the
  // step and checkpoint (best.bin) of those weights, and the latest evaluation and sample;
  // rebuilt from the event log at start-up.
  double best_val_loss = std::nan("");
  int64_t best_val_step = 0;
  std::string best_checkpoint_path;
  std::optional<EvalRecord> last_eval;
  std::optional<SampleRecord> last_sample;
  std::optional<SessionEventRecord> last_step;  // the latest step event (also rebuilt at start-up)
  // The sample being generated off the executor (touched only by this session's tasks).
  std::future<absl::StatusOr<SampleRecord>> pending_sample;
  // The event log has its own lock; shared so that a watcher's read survives a Delete.
  std::shared_ptr<EventLog> log;
  // This run's TensorBoard event file in the session directory, opened at the first new step
  // (one file per run of the daemon; TensorBoard merges them). Touched only by the session's
  // tasks. After a write error it is dropped and not reopened: scalars are a view, the event log
  // stays the record.
  std::unique_ptr<metrics::TfEventsWriter> tensorboard;
  bool tensorboard_failed = false;
  // Measured spans of this run's steps (training/span_log.h), recorded by the trainer on the
  // session's tasks and read by Trace() from RPC threads (it has its own lock).
  std::shared_ptr<training::SpanLog> spans = std::make_shared<training::SpanLog>();
  // Data-parallel sessions (spec.ranks > 1, session_distributed.cc). `job`: the running mpirun,
  // set and reset by the supervisor thread (Stop and Shutdown terminate it). `restarts`: the
  // relaunches after faults (persisted, SessionSnapshot::restarts); `hosts`: the latest
  // launch's (persisted); `launches`: mpirun launches in this daemon run. `relaunching` keeps
  // the log open across interrupted -> queued, so watchers follow through.
  std::shared_ptr<MpiJob> job;
  int64_t restarts = 0;
  std::vector<std::string> hosts;
  int launches = 0;
  bool relaunching = false;
  // Touched only by the supervisor thread: which relayed steps the log already holds, and the
  // count of unparsable lines from rank 0.
  ReplayFilter replay;
  int64_t bad_lines = 0;
};

// Counts one queued task (or a supervisor thread) in flight from Schedule until it ends, however it
// ends (returns, throws); writes the rows the turn left pending first, so Shutdown finds them
// written. On a device executor (`on_executor`) the rows are not written there (a row write is
// blocking I/O): a task on the session I/O thread writes any that are pending.
class SessionManager::InFlightTask {
 public:
  explicit InFlightTask(SessionManager* manager, bool on_executor = false)
      : manager_(manager), on_executor_(on_executor) {}
  ~InFlightTask() {
    if (!on_executor_) manager_->FlushRows();
    absl::MutexLock lock(&manager_->mu_);
    // Counted in flight before this task stops counting, so Shutdown still waits for the rows.
    if (on_executor_ && !manager_->pending_rows_.empty()) manager_->PostIo("", [] {});
    --manager_->in_flight_;
  }
  InFlightTask(const InFlightTask&) = delete;
  InFlightTask& operator=(const InFlightTask&) = delete;

 private:
  SessionManager* manager_;
  const bool on_executor_;
};

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_SESSION_INTERNAL_H_
