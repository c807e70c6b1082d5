// SessionManager's task loop: each active session has one task at a time, on its backend's
// executor (device work: building the trainer, a step) or on the session I/O thread (its file
// I/O: event-log and TensorBoard appends, checkpoints, best.bin, the data and --init reads before
// a build, a failure's records); a turn builds the trainer, takes one step or stops, then queues
// the next turn. Checkpoints are written without holding mu_ (the trainer is touched only by its
// own tasks). Exports: live weights copied on the executor, files written on rpc_io_.
#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/sessions/session_internal.h"
#include "server/sessions/session_manager.h"
#include "server/sessions/tensorboard_scalars.h"
#include "server/training/config.h"
#include "server/training/memory_estimate.h"
#include "server/training/model_export.h"
#include "spdlog/spdlog.h"

namespace anerd::sessions {
void SessionManager::Schedule(Session* s) {
  if (s->spec.ranks > 1) return LaunchDistributed(s);
  ++in_flight_;  // released by the task's InFlightTask
  const std::string id = s->id;
  if (s->memory_estimate == 0) {
    absl::StatusOr<training::MemoryEstimate> m = training::EstimateTrainingMemory(s->spec);
    s->memory_estimate = m.ok() ? m->total() : 0;
  }
  submit_(s->backend, TaskClass::kTraining, "training step",
          [this, id](absl::Status admission, absl::Duration queued) {
            InFlightTask task(this, /*on_executor=*/true);
            // The task boundary: nothing thrown on the session's path (std::bad_alloc from a model
            // that does not fit after all, ...) reaches the executor thread.
            try {
              RunTask(id, admission, queued);
            } catch (const std::exception& e) {
              FailOffExecutor(id, e.what());
            } catch (...) {
              FailOffExecutor(id, "an unknown exception");
            }
          });
}

void SessionManager::FailOffExecutor(const std::string& id, const char* what) {
  absl::MutexLock lock(&mu_);
  PostIo(id, [this, id, why = std::string(what)] { FailAfterException(id, why.c_str()); });
}

void SessionManager::PostIo(const std::string& id, std::function<void()> work) {
  ++in_flight_;  // released by the I/O task's InFlightTask
  session_io_->Post({[this, id, work = std::move(work)] {
    InFlightTask task(this);
    try {
      work();
    } catch (const std::exception& e) {
      FailAfterException(id, e.what());
    } catch (...) {
      FailAfterException(id, "an unknown exception");
    }
  }});
}

void SessionManager::RunTask(const std::string& id, absl::Status admission, absl::Duration queued) {
  Session* s = nullptr;
  {
    absl::MutexLock lock(&mu_);
    s = sessions_.at(id).get();  // an active session is never deleted
    const bool stopping = !admission.ok() || shutting_down_ || s->stop_requested;
    const bool graceful = s->stop_requested && admission.ok() && !shutting_down_;
    if (stopping) return PostIo(id, [this, s, graceful] { StopTask(s, graceful); });
    if (s->trainer == nullptr && !s->build_prepared) {
      return PostIo(id, [this, s] { PrepareBuildTask(s); });
    }
  }
  if (s->trainer == nullptr) return BuildTrainerTask(s);
  StepTask(s, queued);
}

void SessionManager::StopTask(Session* s, bool graceful) {
  s->build_prepared = false;
  s->resume_from.reset();
  s->build_inputs.reset();
  bool checkpoint = false;
  StepExtras extras;  // a sample still being generated is recorded before the run ends
  if (s->pending_sample.valid()) extras.samples.push_back(s->pending_sample.get());
  {
    absl::MutexLock lock(&mu_);
    if (!RecordExtras(s, std::move(extras))) return;  // paused by a write error
    s->stop_requested = false;
    checkpoint = s->trainer != nullptr && s->step > s->checkpoint_step;
  }
  const absl::Status c = checkpoint ? WriteCheckpoint(s) : absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (!c.ok()) return PauseOnWriteError(s, c);
  s->trainer.reset();
  SetState(s, graceful ? SessionState::kStopped : SessionState::kInterrupted);
}

void SessionManager::PrepareBuildTask(Session* s) {
  std::string path;
  {
    absl::MutexLock lock(&mu_);
    SetState(s, SessionState::kCompiling);
    path = s->checkpoint_path;
  }
  if (!path.empty()) {
    absl::StatusOr<training::Checkpoint> read = training::ReadCheckpoint(path);
    if (!read.ok()) return FinishBuildTask(s, read.status());
    s->resume_from = std::make_shared<training::Checkpoint>(*std::move(read));
  }
  // What the trainer reads (a resume trains on its checkpoint's spec, without the --init model).
  const bool resume = s->resume_from != nullptr;
  absl::StatusOr<training::TrainerInputs> in =
      training::ReadTrainerInputs(resume ? s->resume_from->spec : s->spec, /*with_init=*/!resume);
  if (!in.ok()) {
    s->resume_from.reset();
    return FinishBuildTask(s, in.status());
  }
  s->build_inputs = std::make_shared<training::TrainerInputs>(*std::move(in));
  s->build_prepared = true;
  absl::MutexLock lock(&mu_);
  Schedule(s);
}

void SessionManager::BuildTrainerTask(Session* s) {
  // Built without the lock: compiling the kernels takes a while, and only this task touches it.
  std::shared_ptr<training::Checkpoint> from = std::move(s->resume_from);
  std::shared_ptr<training::TrainerInputs> in = std::move(s->build_inputs);
  s->resume_from.reset();
  s->build_inputs.reset();
  s->build_prepared = false;
  if (in == nullptr) in = std::make_shared<training::TrainerInputs>();  // refused: no data read
  backend::Backend* backend = registry_->Find(s->backend);
  auto build = [&]() -> absl::StatusOr<std::unique_ptr<training::Trainer>> {
    if (from == nullptr) return training::Trainer::Create(s->spec, std::move(*in), backend);
    // A data-parallel checkpoint continued here on one device (`train resume --ranks 1`): each
    // step keeps its sequences, accum changes.
    ANERD_RETURN_IF_ERROR(training::ResumeOnRanks(1, &from->spec));
    return training::Trainer::Resume(std::move(*from), std::move(*in), backend, s->extra_steps);
  };
  auto trainer = std::make_shared<absl::StatusOr<std::unique_ptr<training::Trainer>>>(build());
  from.reset();
  in.reset();
  absl::MutexLock lock(&mu_);
  PostIo(s->id, [this, s, trainer] { FinishBuildTask(s, std::move(*trainer)); });
}

void SessionManager::FinishBuildTask(Session* s,
                                     absl::StatusOr<std::unique_ptr<training::Trainer>> trainer) {
  {
    absl::MutexLock lock(&mu_);
    if (!trainer.ok()) {
      if (RecoverFromWorkerLoss(s, trainer.status())) return;
      s->error = std::string(trainer.status().message());
      return SetState(s, SessionState::kFailed);
    }
    s->trainer = *std::move(trainer);
    s->trainer->SetSpanLog(s->spans.get());
    if (yield_ != nullptr) {
      s->trainer->SetKernelYield([yield = yield_, backend = s->backend] { yield(backend); });
    }
    s->compile_ms = s->trainer->compile_ms();
    s->ms_since_build = 0;
    s->total_steps = s->trainer->total_steps();
    s->step = s->trainer->step();
    // Steps the log already holds (a resume after a write error or a failure) are replayed
    // without being reported again.
    s->replay_until = std::max(s->replay_until, s->log->LastReportedStep());
    SetState(s, SessionState::kRunning);
    if (s->extra_steps == 0 || s->checkpoint_path.empty()) {
      s->extra_steps = 0;
      return Schedule(s);  // the first step takes its own turn
    }
  }
  // Record the raised step count in the checkpoint, so a crash before the next periodic
  // checkpoint still resumes toward the new total.
  const absl::Status c = WriteCheckpoint(s);
  absl::MutexLock lock(&mu_);
  if (!c.ok()) return PauseOnWriteError(s, c);
  s->extra_steps = 0;
  Schedule(s);
}

void SessionManager::StepTask(Session* s, absl::Duration queued) {
  const training::SpanLog::Clock::time_point now = training::SpanLog::Clock::now();
  s->spans->SetStep(s->trainer->step() + 1);
  s->spans->Record("queue_wait", -1, now - absl::ToChronoNanoseconds(queued), now);
  // Cached telemetry readings (no I/O here: the sampler thread reads the counters).
  StepContext context;
  if (options_.energy) context.before = options_.energy();
  absl::StatusOr<training::StepReport> report = s->trainer->Step();
  if (options_.energy) context.after = options_.energy();
  // Evaluation and samples of a new step (replayed ones were reported already), without mu_.
  auto extras = std::make_shared<StepExtras>();
  if (report.ok() && report->step > s->replay_until) {
    *extras = AfterStepExtras(s, report->step, /*wait_sample=*/s->trainer->done());
  }
  // The step's records are file I/O: written on the session I/O thread, which then queues the
  // next turn.
  auto step = std::make_shared<absl::StatusOr<training::StepReport>>(std::move(report));
  absl::MutexLock lock(&mu_);
  PostIo(s->id, [this, s, step, extras, context, queued] {
    RecordStepTask(s, std::move(*step), extras, context, queued);
  });
}

void SessionManager::RecordStepTask(Session* s, absl::StatusOr<training::StepReport> report,
                                    std::shared_ptr<StepExtras> extras, StepContext context,
                                    absl::Duration queued) {
  WriteBest(s, extras.get());
  {
    absl::MutexLock lock(&mu_);
    if (!report.ok()) {
      if (RecoverFromWorkerLoss(s, report.status())) return;
      s->error = std::string(report.status().message());
      s->trainer.reset();
      return SetState(s, SessionState::kFailed);
    }
    s->ms_since_build += report->step_ms;
    context.tokens = int64_t{s->spec.accum} * s->spec.model.seq;
    context.compile_ms = s->compile_ms;
    context.run_step_ms = s->ms_since_build;
    if (options_.measured_peak) context.peak = options_.measured_peak(s->backend);
    const bool checkpoint_due =
        AfterStep(s, *report, absl::ToDoubleMilliseconds(queued), ObserveStep(*report, context));
    if (!IsActive(s->state)) return;                   // paused by a write error
    if (!RecordExtras(s, std::move(*extras))) return;  // paused by a write error
    if (!checkpoint_due) return Schedule(s);
  }
  CheckpointTask(s);  // already on the session I/O thread
}

void SessionManager::CheckpointTask(Session* s) {
  // A checkpoint that cannot be written stops the session: training on would report progress
  // that a crash would lose. Completion is reported only once the final one is durable.
  const absl::Status c = WriteCheckpoint(s);
  absl::MutexLock lock(&mu_);
  if (!c.ok()) return PauseOnWriteError(s, c);
  if (s->trainer->done()) {
    s->trainer.reset();
    return SetState(s, SessionState::kCompleted);
  }
  Schedule(s);
}

bool SessionManager::AfterStep(Session* s, const training::StepReport& report, double queued_ms,
                               const StepObservations& observed) {
  const int64_t every = s->spec.checkpoint_every;
  s->ms_since_checkpoint += report.step_ms;
  const double interval_ms = options_.checkpoint_interval_s * 1000;
  const bool due = s->trainer->done() || (every > 0 && report.step % every == 0) ||
                   (every == 0 && interval_ms > 0 && s->ms_since_checkpoint >= interval_ms);
  s->step = report.step;
  if (report.step <= s->replay_until) {
    // Replaying steps already reported before a worker was lost: same data and same state, so
    // the same results; only the checkpoint cadence and completion matter.
    return due;
  }
  return RecordStep(s, report, queued_ms, observed) && due;
}

bool SessionManager::RecordStep(Session* s, const training::StepReport& report, double queued_ms,
                                const StepObservations& observed) {
  s->worker_failures = 0;  // only new progress counts: a crash at the same step must not loop
  s->last_loss = report.loss;
  // A non-finite loss (an overflowed forward pass) is never the best.
  if (std::isfinite(report.loss) && (std::isnan(s->best_loss) || report.loss < s->best_loss)) {
    s->best_loss = report.loss;
  }
  s->elapsed_seconds += report.step_ms / 1000;
  s->run_ms += report.step_ms;
  ++s->run_steps;
  SessionEventRecord e;
  e.kind = SessionEventRecord::Kind::kStep;
  e.step = report;
  e.queued_ms = queued_ms;
  e.observed = observed;
  s->last_step = e;
  if (absl::Status a = s->log->Append(std::move(e)); !a.ok()) {
    PauseOnWriteError(s, a);
    return false;
  }
  WriteTensorBoard(s, report, queued_ms, observed);
  return true;
}

bool SessionManager::OpenTensorBoard(Session* s) {
  if (s->tensorboard_failed) return false;
  if (s->tensorboard == nullptr) {
    absl::StatusOr<std::unique_ptr<metrics::TfEventsWriter>> writer =
        metrics::TfEventsWriter::Create(SessionDir(s->id), absl::Now());
    if (!writer.ok()) {
      s->tensorboard_failed = true;
      spdlog::warn("session {}: no TensorBoard file: {}", s->id, writer.status().ToString());
      return false;
    }
    s->tensorboard = *std::move(writer);
  }
  return true;
}

void SessionManager::WriteEvalTensorBoard(Session* s, const EvalRecord& eval) {
  if (!OpenTensorBoard(s)) return;
  const absl::Status written =
      s->tensorboard->WriteScalars(eval.step, absl::Now(), EvalScalars(eval.report));
  if (!written.ok()) {
    s->tensorboard_failed = true;
    s->tensorboard.reset();
    spdlog::warn("session {}: TensorBoard scalars stopped: {}", s->id, written.ToString());
  }
}

void SessionManager::WriteTensorBoard(Session* s, const training::StepReport& report,
                                      double queued_ms, const StepObservations& observed) {
  if (!OpenTensorBoard(s)) return;
  const absl::Status written = s->tensorboard->WriteScalars(
      report.step, absl::Now(), StepScalars(report, queued_ms, observed));
  if (!written.ok()) {
    s->tensorboard_failed = true;
    s->tensorboard.reset();
    spdlog::warn("session {}: TensorBoard scalars stopped: {}", s->id, written.ToString());
  }
}

absl::Status SessionManager::WriteCheckpoint(Session* s) {
  const std::string path = SessionDir(s->id) + "/checkpoint.bin";
  SessionState previous;
  int64_t step = 0;
  {
    absl::MutexLock lock(&mu_);
    previous = s->state;
    step = s->step;
    SetState(s, SessionState::kCheckpointing);
  }
  absl::Status status;
  {
    training::ScopedSpan span(s->spans.get(), "checkpoint");
    status = s->trainer->SaveCheckpoint(path);
  }
  const bool saved = status.ok();
  if (saved) {
    SessionEventRecord e;
    e.kind = SessionEventRecord::Kind::kCheckpoint;
    e.text = path;
    e.checkpoint_step = step;
    // Synced: the steps logged before the checkpoint become durable with it.
    status = s->log->Append(std::move(e), /*sync=*/true);
  }
  absl::MutexLock lock(&mu_);
  if (saved) {
    s->checkpoint_path = path;
    s->checkpoint_step = step;
    s->ms_since_checkpoint = 0;
    s->checkpoint_seq = s->log->size() - 1;
  }
  SetState(s, previous);
  return status;
}

void SessionManager::PauseOnWriteError(Session* s, const absl::Status& error) {
  s->replay_until = std::max(s->replay_until, s->log->LastReportedStep());
  s->trainer.reset();
  s->step = s->checkpoint_path.empty() ? 0 : s->checkpoint_step;
  s->error = absl::StrCat(
      error.message(), "; paused at step ", s->step,
      s->checkpoint_path.empty() ? " (no checkpoint yet)" : " (the last durable checkpoint)",
      "; free space, then resume it: anectl train resume ", s->id);
  spdlog::error("session {}: {}", s->id, s->error);
  SetState(s, SessionState::kPaused);
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
  (void)s->log->Append(WarningEvent(
      absl::StrCat("backend worker lost (", error.message(), "); resuming from step ", s->step,
                   s->replay_until > s->step ? ", replayed steps are not re-reported" : "")));
  Schedule(s);
  return true;
}

void SessionManager::FailAfterException(const std::string& id, const char* what) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  Session* s = it->second.get();
  const bool oom = std::string(what) == std::bad_alloc().what();
  s->error =
      absl::StrCat("training failed: ", what,
                   oom ? " (out of memory: the model does not fit in this machine's memory)" : "");
  spdlog::error("session {}: {}", id, s->error);
  s->trainer.reset();
  s->build_prepared = false;
  s->resume_from.reset();
  s->build_inputs.reset();
  s->step = s->checkpoint_path.empty() ? 0 : s->checkpoint_step;
  s->replay_until = std::max(s->replay_until, s->log->LastReportedStep());
  SetState(s, SessionState::kFailed);
}

void SessionManager::Export(const std::string& id, training::ExportFormat format, bool best,
                            ExportDone done) {
  std::string backend;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Session*> s = Find(id);
    if (!s.ok()) return done(s.status());
    if (best && (*s)->best_checkpoint_path.empty()) {
      return done(absl::FailedPreconditionError(
          absl::StrCat("best: session ", id,
                       " has no best-validation checkpoint (kept by evaluations: --eval-every; "
                       "none has run yet)")));
    }
    if ((*s)->trainer == nullptr && (*s)->checkpoint_path.empty()) {
      return done(absl::FailedPreconditionError(absl::StrCat(
          "session ", id, " has no weights yet (", SessionStateName((*s)->state), ")")));
    }
    // A checkpoint needs no device: it is read and written out on rpc_io_.
    if (best || (*s)->trainer == nullptr) {
      return PostExportWrite(id, nullptr, best ? (*s)->best_checkpoint_path : (*s)->checkpoint_path,
                             format, std::move(done));
    }
    backend = (*s)->backend;
  }
  // The live weights are copied between two steps, on the session's executor.
  submit_(backend, TaskClass::kTraining, "export",
          [this, id, format, done = std::move(done)](absl::Status admission, absl::Duration) {
            if (!admission.ok()) return done(admission);
            try {
              CopyForExport(id, format, done);
            } catch (const std::exception& e) {
              done(absl::ResourceExhaustedError(absl::StrCat("export failed: ", e.what())));
            }
          });
}

void SessionManager::CopyLiveWeights(const std::string& id,
                                     std::function<void(absl::StatusOr<SessionWeights>)> done) {
  // The trainer of `id`, or why there is none (call with mu_ held).
  auto live = [this, id]() -> absl::StatusOr<Session*> {
    absl::StatusOr<Session*> s = Find(id);
    if (s.ok() && (*s)->trainer == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("weights: session ", id, " has no live weights (",
                       SessionStateName((*s)->state), "); ask for its latest checkpoint"));
    }
    return s;
  };
  std::string backend;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Session*> s = live();
    if (!s.ok()) return done(s.status());
    backend = (*s)->backend;
  }
  submit_(
      backend, TaskClass::kTraining, "copy weights",
      [this, live, done](absl::Status admission, absl::Duration) {
        if (!admission.ok()) return done(admission);
        SessionWeights weights;
        try {
          absl::MutexLock lock(&mu_);
          absl::StatusOr<Session*> s = live();
          if (!s.ok()) return done(s.status());
          weights.spec = (*s)->trainer->spec();
          weights.params = std::make_shared<const std::vector<float>>((*s)->trainer->params());
          weights.step = (*s)->step;
        } catch (const std::bad_alloc&) {
          return done(absl::ResourceExhaustedError("weights: out of memory copying the weights"));
        }
        done(std::move(weights));
      });
}

void SessionManager::CopyForExport(const std::string& id, training::ExportFormat format,
                                   ExportDone done) {
  std::shared_ptr<training::Trainer> live;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Session*> s = Find(id);
    if (!s.ok()) return done(s.status());
    live = (*s)->trainer;
    if (live == nullptr) {  // it stopped meanwhile: its latest checkpoint
      if ((*s)->checkpoint_path.empty()) {
        return done(absl::FailedPreconditionError(absl::StrCat(
            "session ", id, " has no weights yet (", SessionStateName((*s)->state), ")")));
      }
      return PostExportWrite(id, nullptr, (*s)->checkpoint_path, format, std::move(done));
    }
  }
  // Without mu_: only this executor steps the trainer, and `live` keeps it alive.
  auto model = std::make_shared<training::Checkpoint>(
      live->CopyCheckpoint(/*with_optimizer=*/format == training::ExportFormat::kNative));
  live.reset();
  absl::MutexLock lock(&mu_);
  PostExportWrite(id, std::move(model), "", format, std::move(done));
}

void SessionManager::PostExportWrite(const std::string& id,
                                     std::shared_ptr<training::Checkpoint> model,
                                     std::string checkpoint, training::ExportFormat format,
                                     ExportDone done) {
  if (shutting_down_) return done(absl::UnavailableError("export: the daemon is stopping"));
  rpc_io_->Post({[this, id, model = std::move(model), checkpoint = std::move(checkpoint), format,
                  done = std::move(done)] {
    try {
      WriteExport(id, model, checkpoint, format, done);
    } catch (const std::exception& e) {
      done(absl::ResourceExhaustedError(absl::StrCat("export failed: ", e.what())));
    }
  }});
}

void SessionManager::WriteExport(const std::string& id, std::shared_ptr<training::Checkpoint> model,
                                 const std::string& checkpoint, training::ExportFormat format,
                                 const ExportDone& done) {
  static std::atomic<uint64_t> counter{0};
  // One directory per export, so concurrent exports of a session never share a file.
  const std::string dir = absl::StrCat(SessionDir(id), "/export.", counter++, ".tmp");
  if (model == nullptr) {
    absl::StatusOr<training::Checkpoint> read = training::ReadCheckpoint(checkpoint);
    if (!read.ok()) return done(read.status());
    model = std::make_shared<training::Checkpoint>(*std::move(read));
    // As a trainer resumed from it holds it (Trainer::Resume): the spec's steps are the total.
    model->spec.steps = model->state.total_steps;
    if (absl::Status v = training::ValidateSpec(model->spec); !v.ok()) return done(v);
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return done(absl::PermissionDeniedError(absl::StrCat("cannot create ", dir)));
  absl::Status st = training::ExportModel(*model, format, dir);
  model.reset();
  if (!st.ok()) {
    std::filesystem::remove_all(dir, ec);
    return done(st);
  }
  return done(dir);
}

}  // namespace anerd::sessions
