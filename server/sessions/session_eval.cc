// SessionManager's evaluation in training (issue 20 item 4): the held-out loss every eval_every
// steps with the best-validation checkpoint (best.bin beside checkpoint.bin), text samples every
// sample_every steps generated off the executor, and the Evaluate RPC.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/paths.h"
#include "common/regular_file.h"
#include "common/status_macros.h"
#include "server/sessions/session_internal.h"
#include "server/sessions/session_manager.h"
#include "server/sessions/session_sample.h"
#include "server/training/data.h"
#include "server/training/model_io.h"
#include "server/training/validation_split.h"
#include "spdlog/spdlog.h"

namespace anerd::sessions {
namespace {

bool Due(int64_t every, int64_t step) { return every > 0 && step % every == 0; }

SessionEventRecord EvalEvent(int64_t step, training::EvalReport report, bool best) {
  SessionEventRecord e;
  e.kind = SessionEventRecord::Kind::kEval;
  e.eval.step = step;
  e.eval.report = std::move(report);
  e.eval.best = best;
  return e;
}

SessionEventRecord SampleEvent(SampleRecord sample) {
  SessionEventRecord e;
  e.kind = SessionEventRecord::Kind::kSample;
  e.sample = std::move(sample);
  return e;
}

}  // namespace

struct SessionManager::EvalInputs {
  training::ModelConfig config;
  double alpha = 1;
  std::vector<float> params;
  int64_t step = 0;  // the checkpoint's
  std::string numerics, data_path, data_format;
  training::HeldOut range;
  bool held_out = false;
  std::unique_ptr<training::TokenData> data;  // opened (text data: read and tokenized)
};

SessionManager::StepExtras SessionManager::AfterStepExtras(Session* s, int64_t step,
                                                           bool wait_sample) {
  StepExtras x;
  const training::TrainSpec& spec = s->spec;
  if (Due(spec.eval_every, step)) {
    absl::StatusOr<training::EvalReport> r = s->trainer->EvalHeldOut();
    if (!r.ok()) {
      x.eval = WarningEvent(
          absl::StrCat("evaluation after step ", step, " failed: ", r.status().message()));
    } else {
      // Only this task changes best_val_loss, so reading it without mu_ is safe.
      const bool best =
          std::isfinite(r->loss) && (std::isnan(s->best_val_loss) || r->loss < s->best_val_loss);
      x.new_best = best;  // best.bin is written by WriteBest, off the executor
      x.eval = EvalEvent(step, *std::move(r), best);
    }
  }
  if (Due(spec.sample_every, step)) {
    // One sample at a time: training waits only when generating is slower than sample_every
    // steps. The copy is the only time the weights are read for it.
    if (s->pending_sample.valid()) x.samples.push_back(s->pending_sample.get());
    auto params = std::make_shared<const std::vector<float>>(s->trainer->params());
    s->pending_sample = std::async(
        std::launch::async, [spec, params, step] { return GenerateSample(spec, params, step); });
  }
  if (s->pending_sample.valid() && (wait_sample || s->pending_sample.wait_for(std::chrono::seconds(
                                                       0)) == std::future_status::ready)) {
    x.samples.push_back(s->pending_sample.get());
  }
  return x;
}

void SessionManager::WriteBest(Session* s, StepExtras* x) {
  if (!x->new_best) return;
  x->new_best = false;
  x->best_write = s->trainer->SaveCheckpoint(SessionDir(s->id) + "/best.bin");
  x->eval->eval.best = x->best_write.ok();
}

bool SessionManager::RecordExtras(Session* s, StepExtras x) {
  if (!x.best_write.ok()) {
    PauseOnWriteError(s, x.best_write);
    return false;
  }
  std::vector<SessionEventRecord> events;
  if (x.eval.has_value()) {
    if (x.eval->kind == SessionEventRecord::Kind::kEval) {
      s->last_eval = x.eval->eval;
      WriteEvalTensorBoard(s, x.eval->eval);
      if (x.eval->eval.best) {
        s->best_val_loss = x.eval->eval.report.loss;
        s->best_val_step = x.eval->eval.step;
        s->best_checkpoint_path = SessionDir(s->id) + "/best.bin";
      }
    }
    events.push_back(*std::move(x.eval));
  }
  for (absl::StatusOr<SampleRecord>& sample : x.samples) {
    if (!sample.ok()) {
      events.push_back(WarningEvent(absl::StrCat("sample failed: ", sample.status().message())));
      continue;
    }
    s->last_sample = *sample;
    events.push_back(SampleEvent(*std::move(sample)));
  }
  for (SessionEventRecord& e : events) {
    if (absl::Status a = s->log->Append(std::move(e)); !a.ok()) {
      PauseOnWriteError(s, a);
      return false;
    }
  }
  return true;
}

void SessionManager::LoadEvalState(Session* s) {
  std::vector<SessionEventRecord> events;
  bool ended = false;
  s->log->Read(0, s->log->size(), &events, &ended);
  for (const SessionEventRecord& e : events) {
    if (e.kind == SessionEventRecord::Kind::kSample) s->last_sample = e.sample;
    if (e.kind == SessionEventRecord::Kind::kStep) s->last_step = e;
    if (e.kind != SessionEventRecord::Kind::kEval) continue;
    s->last_eval = e.eval;
    if (e.eval.best) {
      s->best_val_loss = e.eval.report.loss;
      s->best_val_step = e.eval.step;
    }
  }
  const std::string best = SessionDir(s->id) + "/best.bin";
  std::error_code ec;
  if (!std::isnan(s->best_val_loss) && std::filesystem::exists(best, ec)) {
    s->best_checkpoint_path = best;
  } else {
    s->best_val_loss = std::nan("");
    s->best_val_step = 0;
  }
}

void SessionManager::Evaluate(EvaluateSpec spec,
                              std::function<void(absl::StatusOr<EvaluateResult>)> done) {
  if (spec.batches == 0) spec.batches = 8;
  if (spec.batches < 1 || spec.batches > training::kMaxEvalBatches) {
    return done(absl::InvalidArgumentError(absl::StrCat(
        "batches: ", spec.batches, " must be in [1, ", training::kMaxEvalBatches, "]")));
  }
  if (!spec.numerics.empty() && spec.numerics != "fp32" && spec.numerics != "ane") {
    return done(absl::InvalidArgumentError(
        absl::StrCat("numerics: '", spec.numerics, "' must be 'fp32' or 'ane'")));
  }
  if (spec.data_format != "" && spec.data_format != "tokens" && spec.data_format != "text") {
    return done(absl::InvalidArgumentError(
        absl::StrCat("data_format: '", spec.data_format, "' must be 'tokens', 'text' or empty")));
  }
  const int models = !spec.session_id.empty() + !spec.model_path.empty();
  if (models != 1) {
    return done(absl::InvalidArgumentError(
        "session_id, model_artifact, model: give exactly one model to evaluate"));
  }
  auto check = [&](const char* field, std::string* path, bool artifact) -> absl::Status {
    if (path->empty() || artifact) return absl::OkStatus();
    ANERD_ASSIGN_OR_RETURN(*path, ResolveUnderRoots(field, *path, path_roots_));
    return CheckRegularFile(*path, field);
  };
  if (absl::Status c = check("model", &spec.model_path, spec.model_from_artifact); !c.ok()) {
    return done(c);
  }
  if (absl::Status c = check("data", &spec.data_path, spec.data_from_artifact); !c.ok()) {
    return done(c);
  }
  if (spec.session_id.empty() && spec.data_path.empty()) {
    return done(absl::InvalidArgumentError(
        "data: give data (a file or a dataset artifact) to evaluate a model file on"));
  }
  std::string checkpoint, backend = spec.backend;
  if (!spec.session_id.empty()) {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Session*> s = Find(spec.session_id);
    if (!s.ok()) return done(s.status());
    checkpoint = spec.best ? (*s)->best_checkpoint_path : (*s)->checkpoint_path;
    if (checkpoint.empty()) {
      return done(absl::FailedPreconditionError(
          spec.best ? absl::StrCat("checkpoint: session ", spec.session_id,
                                   " has no best checkpoint (it is kept by evaluations: "
                                   "--eval-every; none has run yet)")
                    : absl::StrCat("checkpoint: session ", spec.session_id,
                                   " has no latest checkpoint yet (", SessionStateName((*s)->state),
                                   ")")));
    }
    if (backend.empty()) backend = (*s)->backend;
  }
  if (backend.empty()) backend = default_backend_;
  if (registry_->Find(backend) == nullptr) {
    return done(
        absl::InvalidArgumentError(absl::StrCat("backend: unknown backend '", backend, "'")));
  }
  // The model is read on rpc_io_ (blocking file I/O never runs on an executor), then evaluated
  // on the backend's executor.
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return done(absl::UnavailableError("evaluate: the daemon is stopping"));
  rpc_io_->Post({[this, spec, checkpoint, backend, done] {
    auto in = std::make_shared<absl::StatusOr<EvalInputs>>(absl::UnknownError("not read"));
    try {
      *in = LoadEvalInputs(spec, checkpoint);
    } catch (const std::exception& e) {
      return done(absl::ResourceExhaustedError(absl::StrCat("evaluate failed: ", e.what())));
    }
    if (!in->ok()) return done(in->status());
    submit_(backend, TaskClass::kInteractive, "evaluate",
            [this, spec, checkpoint, backend, done, in](absl::Status admission, absl::Duration) {
              if (!admission.ok()) return done(admission);
              try {
                done(EvaluateOnExecutor(spec, *std::move(*in), checkpoint, backend));
              } catch (const std::exception& e) {
                done(absl::ResourceExhaustedError(absl::StrCat("evaluate failed: ", e.what())));
              }
            });
  }});
}

absl::StatusOr<SessionManager::EvalInputs> SessionManager::LoadEvalInputs(
    const EvaluateSpec& spec, const std::string& checkpoint) {
  EvalInputs in;
  in.numerics = spec.numerics;
  in.data_path = spec.data_path;
  in.data_format = spec.data_format;
  in.range.source = "data";
  if (!checkpoint.empty()) {
    ANERD_ASSIGN_OR_RETURN(training::Checkpoint ck, training::ReadCheckpoint(checkpoint));
    in.config = ck.spec.model;
    in.alpha = training::ResidualAlpha(ck.spec);
    in.params = std::move(ck.params);
    in.step = ck.state.step;
    if (in.numerics.empty()) in.numerics = ck.spec.numerics;
    if (in.data_path.empty()) {
      in.held_out = true;
      ANERD_ASSIGN_OR_RETURN(const int64_t n,
                             training::TokenCountOf(ck.spec.data_path, ck.spec.data_format));
      in.range = training::HeldOutFor(ck.spec, n, spec.batches);
      in.data_path = in.range.separate_file ? ck.spec.val_data_path : ck.spec.data_path;
      in.data_format = in.range.separate_file ? ck.spec.val_data_format : ck.spec.data_format;
    }
  } else {
    ANERD_ASSIGN_OR_RETURN(training::LoadedModel m, training::LoadModelFile(spec.model_path));
    in.config = m.config;
    in.alpha = in.config.residual_scale;
    in.params = std::move(m.params);
  }
  if (in.numerics.empty()) in.numerics = "fp32";
  ANERD_ASSIGN_OR_RETURN(in.data, training::TokenData::Open(in.data_path, in.data_format,
                                                            in.config.vocab, in.config.seq));
  if (!in.held_out) in.range.end = in.data->file_size();
  return in;
}

absl::StatusOr<EvaluateResult> SessionManager::EvaluateOnExecutor(const EvaluateSpec& spec,
                                                                  EvalInputs in,
                                                                  const std::string& checkpoint,
                                                                  const std::string& backend_name) {
  EvaluateResult out;
  out.backend = backend_name;
  out.checkpoint = checkpoint;
  out.step = in.step;
  const training::ModelConfig& config = in.config;
  const double alpha = in.alpha;
  std::vector<float>& params = in.params;
  const std::string& numerics = in.numerics;
  const training::HeldOut& range = in.range;
  training::TokenData* data = in.data.get();
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<training::Model> model,
                         training::Model::Create(config, alpha,
                                                 numerics == "fp32" ? backend::NumericsMode::kFp32
                                                                    : backend::NumericsMode::kAne,
                                                 registry_->Find(backend_name)));
  training::PhaseTimes times;
  model->StageWeights(params.data(), &times);
  ANERD_ASSIGN_OR_RETURN(
      out.report, training::EvaluateWindows(*model, params.data(), *data, range.begin,
                                            std::min(range.end, data->file_size()), spec.batches));
  out.report.source = range.source;
  out.seq = config.seq;
  return out;
}

}  // namespace anerd::sessions
