// SessionManager's data-parallel sessions (spec.ranks > 1; issue 24; session_manager.h,
// docs/ARCHITECTURE.md process model): a supervisor thread per run launches `mpirun ...
// anerd-rank` (mpi_launch.h, mpi_job.h), relays rank 0's event lines into the session's log
// through the same path as a local session's steps (the log assigns seq and time), and after a
// fault relaunches from the last checkpoint up to spec.max_restarts times. Nothing here runs on a
// device executor: the ranks use their own devices.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/paths.h"
#include "server/sessions/distributed_launch.h"
#include "server/sessions/mpi_job.h"
#include "server/sessions/mpi_launch.h"
#include "server/sessions/session_internal.h"
#include "server/sessions/session_manager.h"
#include "spdlog/spdlog.h"

namespace anerd::sessions {
namespace {

constexpr int kMaxBadLinesLogged = 5;

// The losses the log holds for steps after `from_step` (the steps a relaunch computes again).
std::map<int64_t, double> LoggedLosses(const EventLog& log, int64_t from_step) {
  std::map<int64_t, double> out;
  std::vector<SessionEventRecord> events;
  bool ended = false;
  log.Read(log.SeqForStep(from_step + 1), ReplayFilter::kMaxLoggedLosses, &events, &ended);
  for (const SessionEventRecord& e : events) {
    if (e.kind == SessionEventRecord::Kind::kStep && e.step.step > from_step) {
      out[e.step.step] = e.step.loss;
    }
  }
  return out;
}

}  // namespace

void SessionManager::LaunchDistributed(Session* s) {
  // Joining a thread that has set its flag cannot block: it only returns afterwards.
  for (auto it = supervisors_.begin(); it != supervisors_.end();) {
    if (!it->done->load()) {
      ++it;
      continue;
    }
    it->thread.join();
    it = supervisors_.erase(it);
  }
  ++in_flight_;  // released by the supervisor's InFlightTask
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([this, id = s->id, done] {
    {
      InFlightTask task(this);
      try {
        SuperviseJob(id);
      } catch (const std::exception& e) {
        FailAfterException(id, e.what());
      } catch (...) {
        FailAfterException(id, "an unknown exception");
      }
    }
    done->store(true);
  });
  supervisors_.push_back(Supervisor{std::move(thread), std::move(done)});
}

absl::StatusOr<RankLaunch> SessionManager::PrepareLaunch(Session* s) {
  RankLaunch l;
  l.ranks = s->spec.ranks;
  l.hostfile = s->spec.hostfile;
  l.backend = s->backend;
  l.checkpoint_path = CanonicalCheckpoint(s->id);
  l.as_root = geteuid() == 0;
  l.mpirun = FindOnPath("mpirun");
  l.rank_binary = RankBinaryBeside(SelfExecutablePath());
  if (l.mpirun.empty() || l.rank_binary.empty()) {
    return CheckDistributedSession(s->spec, SelfExecutablePath());  // the reason
  }
  if (s->checkpoint_path.empty()) {
    l.spec_path = SessionDir(s->id) + "/spec.txt";
  } else {
    l.resume_checkpoint = s->checkpoint_path;
    l.extra_steps = s->extra_steps;
  }
  if (s->launches < options_.testonly_rank_args_launches)
    l.extra_rank_args = options_.testonly_first_launch_rank_args;
  return l;
}

// This machine's name, for a job without a hostfile.
static std::string ThisHost() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// Blocking file and name-service work before a launch (supervisor thread, no lock): the hosts
// the job will run on.
static absl::StatusOr<std::vector<std::string>> PrepareFiles(const RankLaunch& l,
                                                             const training::TrainSpec& spec) {
  if (!l.spec_path.empty()) {
    if (absl::Status w = WriteFileAtomically(l.spec_path, training::SpecToText(spec)); !w.ok()) {
      return w;
    }
  }
  if (l.hostfile.empty()) return std::vector<std::string>{ThisHost()};
  absl::StatusOr<std::vector<std::string>> hosts = ParseHostfile(l.hostfile);
  if (!hosts.ok()) return hosts.status();
  if (absl::Status r = CheckHostsResolve(l.hostfile, *hosts); !r.ok()) return r;
  return hosts;
}

void SessionManager::SuperviseJob(const std::string& id) {
  Session* s = nullptr;
  {
    absl::MutexLock lock(&mu_);
    s = sessions_.at(id).get();  // an active session is never deleted
  }
  for (;;) {
    absl::StatusOr<RankLaunch> launch;
    training::TrainSpec spec;
    int64_t checkpoint_step = 0;
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_ || s->stop_requested) {
        const bool graceful = s->stop_requested && !shutting_down_;
        s->stop_requested = false;
        return SetState(s, graceful ? SessionState::kStopped : SessionState::kInterrupted);
      }
      SetState(s, SessionState::kCompiling);
      launch = PrepareLaunch(s);
      spec = s->spec;
      s->replay_until = std::max(s->replay_until, s->log->LastReportedStep());
      s->step = s->checkpoint_path.empty() ? 0 : s->checkpoint_step;
      checkpoint_step = s->step;
      s->replay.Reset(s->replay_until, LoggedLosses(*s->log, checkpoint_step));
    }
    FlushRows();
    absl::StatusOr<std::vector<std::string>> hosts =
        launch.ok() ? PrepareFiles(*launch, spec) : launch.status();
    absl::Status ready = hosts.status();
    auto job = std::make_shared<MpiJob>();
    if (ready.ok()) ready = job->Start(BuildMpirunArgv(*launch));
    if (!ready.ok()) {
      absl::MutexLock lock(&mu_);
      s->error = absl::StrCat("launch failed: ", ready.message());
      spdlog::error("session {}: {}", s->id, s->error);
      return SetState(s, SessionState::kFailed);
    }
    {
      absl::MutexLock lock(&mu_);
      s->job = job;
      ++s->launches;
      s->hosts = *std::move(hosts);
      MarkDirty(*s);
      spdlog::info("session {}: launched {} ranks ({})", s->id, launch->ranks,
                   launch->resume_checkpoint.empty() ? "from the start"
                                                     : "from " + launch->resume_checkpoint);
      if (shutting_down_ || s->stop_requested) job->Terminate();
    }
    FlushRows();
    std::string line;
    while (job->NextLine(&line)) RelayLine(s, line);
    const int status = job->Wait(absl::Seconds(3));
    SettleCheckpoint(s);
    bool again = false;
    {
      absl::MutexLock lock(&mu_);
      s->job.reset();
      again = AfterJob(s, status, job->stderr_tail());
    }
    FlushRows();
    if (!again) return;
  }
}

std::string SessionManager::CanonicalCheckpoint(const std::string& id) const {
  return SessionDir(id) + "/checkpoint.bin";
}

void SessionManager::SettleCheckpoint(Session* s) {
  std::string logged;
  {
    absl::MutexLock lock(&mu_);
    logged = s->checkpoint_path;
  }
  const std::string canonical = CanonicalCheckpoint(s->id);
  std::error_code ec;
  if (!logged.empty() && logged != canonical) {
    std::filesystem::rename(logged, canonical, ec);
    if (ec) {
      spdlog::error("session {}: cannot keep checkpoint {}: {}", s->id, logged, ec.message());
      return;
    }
    (void)SyncDirectory(SessionDir(s->id));
    absl::MutexLock lock(&mu_);
    s->checkpoint_path = canonical;
    MarkDirty(*s);
  }
  // Checkpoints rank 0 wrote after the last logged one are ahead of the log: dropped.
  for (const auto& entry : std::filesystem::directory_iterator(SessionDir(s->id), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint.bin.", 0) == 0) std::filesystem::remove(entry.path(), ec);
  }
}

void SessionManager::RelayLine(Session* s, const std::string& line) {
  absl::StatusOr<SessionEventRecord> e = ParseEventLine(line);
  if (!e.ok()) {
    if (++s->bad_lines <= kMaxBadLinesLogged) {
      spdlog::warn("session {}: not an event line from rank 0 ({}): {}", s->id,
                   e.status().ToString(), line.substr(0, 200));
    }
    return;
  }
  e->seq = 0;  // the owner's
  e->unix_ms = 0;
  if (e->kind == SessionEventRecord::Kind::kCheckpoint) {
    // Synced without mu_: the steps logged before it become durable with it.
    const absl::Status a = s->log->Append(*e, /*sync=*/true);
    absl::MutexLock lock(&mu_);
    if (!a.ok()) spdlog::error("session {}: {}", s->id, a.ToString());
    const std::string previous = s->checkpoint_path;
    s->checkpoint_path = e->text;
    s->checkpoint_step = e->checkpoint_step;
    s->checkpoint_seq = s->log->size() - 1;
    s->extra_steps = 0;  // the checkpoint holds the raised total
    MarkDirty(*s);
    // The one before is no longer needed (the row names the new one once written).
    if (!previous.empty() && previous != e->text && previous != CanonicalCheckpoint(s->id)) {
      std::error_code ec;
      std::filesystem::remove(previous, ec);
    }
    return;
  }
  absl::MutexLock lock(&mu_);
  if (e->kind != SessionEventRecord::Kind::kStep) {
    (void)s->log->Append(*std::move(e));
    return;
  }
  if (s->state == SessionState::kCompiling) SetState(s, SessionState::kRunning);
  const training::StepReport& r = e->step;
  s->step = r.step;
  switch (s->replay.Classify(r.step, r.loss)) {
    case ReplayFilter::Verdict::kNew:
      break;
    case ReplayFilter::Verdict::kReplayedDiffers:
      (void)s->log->Append(WarningEvent(
          absl::StrCat("step ", r.step, " computed again after the relaunch has loss ", r.loss,
                       ", not the logged one: the relaunch did not continue exactly")));
      return;
    case ReplayFilter::Verdict::kReplayed:
      return;
  }
  StepContext context;
  context.tokens = int64_t{s->spec.accum} * s->spec.model.seq * s->spec.ranks;
  s->ms_since_build += r.step_ms;
  context.run_step_ms = s->ms_since_build;
  (void)RecordStep(s, r, 0, ObserveStep(r, context));
}

bool SessionManager::AfterJob(Session* s, int status, const std::string& stderr_tail) {
  const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (clean && s->step >= s->total_steps) {
    if (s->state == SessionState::kCompiling) SetState(s, SessionState::kRunning);
    s->error.clear();
    SetState(s, SessionState::kCompleted);
    return false;
  }
  if (s->stop_requested) {
    s->stop_requested = false;
    SetState(s, SessionState::kStopped);
    return false;
  }
  if (shutting_down_) {  // resumed at the next start, as a local session
    SetState(s, SessionState::kInterrupted);
    return false;
  }
  const std::string why = clean ? absl::StrCat("the job ended at step ", s->step, " of ",
                                               s->total_steps, " without an error")
                                : DescribeJobFailure(status, stderr_tail);
  spdlog::warn("session {}: job ended: {}", s->id, why);
  const bool retry = s->restarts < s->spec.max_restarts;
  s->error = retry ? why
                   : absl::StrCat(why, s->spec.max_restarts > 0
                                           ? absl::StrCat("; gave up after ", s->restarts,
                                                          " restarts (max_restarts)")
                                           : "");
  s->relaunching = true;  // the log stays open: watchers follow through the relaunch
  SetState(s, SessionState::kInterrupted);
  if (!retry) {
    s->relaunching = false;
    SetState(s, SessionState::kFailed);
    return false;
  }
  ++s->restarts;
  (void)s->log->Append(WarningEvent(absl::StrCat(
      "job interrupted: ", why, "; relaunching (restart ", s->restarts, " of ",
      s->spec.max_restarts, ") from ",
      s->checkpoint_path.empty() ? std::string("the start (no checkpoint yet)")
                                 : absl::StrCat("the checkpoint at step ", s->checkpoint_step),
      s->step > s->checkpoint_step ? "; steps computed again are not logged again" : "")));
  SetState(s, SessionState::kQueued);
  s->relaunching = false;
  return true;
}

}  // namespace anerd::sessions
