// anerd-rank: one rank of a data-parallel training job (issue 24; docs/ARCHITECTURE.md, process
// model). The owning anerd launches `mpirun ... anerd-rank --spec=FILE` (or `--resume=CKPT`);
// every rank runs the same Trainer on its own backend, reads its own data shard and all-reduces
// its gradients through MpiReducer (in buckets overlapping the backward pass on a communication
// thread unless the spec turns allreduce_overlap off: training/bucketed_reducer.h) before the
// optimizer step. Rank 0 writes the step and
// checkpoint events, one events.jsonl line each (sessions/event_codec.h; seq and time are the
// owner's to assign), to --events ("-" = stdout, which mpirun forwards to the owner's pipe), and
// writes the checkpoints; every `digest_every` steps the ranks compare weight digests.
// Exit status: 0 when the run completed; 2 after an error, which is printed on stderr as
// "anerd-rank: rank R on HOST: <status>" (HOST: MPI_Get_processor_name, so the owning daemon
// names the machine in the session's error) and aborts the whole job (MPI_Abort), so no rank
// waits forever for a dead peer.
#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/registry.h"
#include "server/distributed/mpi_reducer.h"
#include "server/sessions/event_codec.h"
#include "server/training/bucketed_reducer.h"
#include "server/training/trainer.h"

ABSL_FLAG(std::string, spec, "", "a training spec file (key=value lines, SpecToText) to start");
ABSL_FLAG(std::string, resume, "", "a checkpoint to resume from instead of --spec");
ABSL_FLAG(int64_t, extra_steps, 0, "with --resume: steps added to the total");
ABSL_FLAG(std::string, backend, "cpu", "backend of every rank: cpu, ane-sim or ane");
ABSL_FLAG(std::string, checkpoint, "", "rank 0 writes its checkpoints here (\"\" = none)");
ABSL_FLAG(bool, checkpoint_per_step, false,
          "rank 0 writes each checkpoint to --checkpoint.STEP (the owning daemon keeps the one "
          "it has logged, so a job ended mid-stream never leaves a checkpoint ahead of its log)");
ABSL_FLAG(std::string, events, "-", "rank 0's event lines: a file, or - for stdout");
ABSL_FLAG(double, heartbeat_s, 600,
          "a rank that completes no step for this long after its first one ends the job "
          "(a peer hung or the link stalled); 0 = never");
ABSL_FLAG(int, testonly_exit_rank, -1, "tests: this rank exits abruptly ...");
ABSL_FLAG(int, testonly_hang_rank, -1, "tests: this rank hangs (sleeps) ...");
ABSL_FLAG(int64_t, testonly_exit_step, 0, "tests: ... before running this step");
ABSL_FLAG(int, testonly_perturb_rank, -1, "tests: this rank's weights diverge (wrong digest)");

namespace anerd::distributed {
namespace {

// This rank's host (MPI_Get_processor_name), for the error lines; set once after MPI_Init.
std::string& Host() {
  static std::string* host = new std::string("?");
  return *host;
}

class EventSink {
 public:
  explicit EventSink(const std::string& path)
      : file_(path == "-" ? stdout : std::fopen(path.c_str(), "a")), owned_(path != "-") {}
  ~EventSink() {
    if (owned_ && file_ != nullptr) std::fclose(file_);
  }
  bool ok() const { return file_ != nullptr; }
  void Write(const sessions::SessionEventRecord& e) {
    const std::string line = sessions::EncodeEventLine(e) + "\n";
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
  }

 private:
  std::FILE* file_;
  bool owned_;
};

absl::StatusOr<std::unique_ptr<training::Trainer>> MakeTrainer(backend::Backend* backend) {
  if (!absl::GetFlag(FLAGS_resume).empty()) {
    return training::Trainer::Resume(absl::GetFlag(FLAGS_resume), backend,
                                     absl::GetFlag(FLAGS_extra_steps));
  }
  ANERD_ASSIGN_OR_RETURN(const std::string text,
                         ReadFileToString(absl::GetFlag(FLAGS_spec), int64_t{1} << 20));
  ANERD_ASSIGN_OR_RETURN(training::TrainSpec spec, training::SpecFromText(text));
  return training::Trainer::Create(spec, backend);
}

absl::Status SaveCheckpoint(const training::Trainer& t, EventSink* sink) {
  std::string path = absl::GetFlag(FLAGS_checkpoint);
  if (path.empty()) return absl::OkStatus();
  if (absl::GetFlag(FLAGS_checkpoint_per_step)) absl::StrAppend(&path, ".", t.step());
  ANERD_RETURN_IF_ERROR(t.SaveCheckpoint(path));
  sessions::SessionEventRecord e;
  e.kind = sessions::SessionEventRecord::Kind::kCheckpoint;
  e.text = path;
  e.checkpoint_step = t.step();
  sink->Write(e);
  return absl::OkStatus();
}

// The heartbeat: after the first step (compiles make it long), a rank whose main thread completes
// no step for --heartbeat-s exits, so mpirun ends the job instead of every rank waiting forever
// in a collective for a hung peer. Exiting (not MPI_Abort) is safe from this second thread.
// It also ends a rank whose launcher (mpirun or orted, its parent) died: nothing would end it
// otherwise, as mpirun puts its ranks in process groups of their own.
class Watchdog {
 public:
  Watchdog(int rank, double seconds) : rank_(rank), seconds_(seconds), parent_(getppid()) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Watchdog() {
    done_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  void Beat() { last_ns_.store(Now()); }

 private:
  static int64_t Now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void Loop() {
    while (!done_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (parent_ != 1 && getppid() != parent_) {
        std::fprintf(stderr, "anerd-rank: rank %d on %s: its launcher (pid %d) is gone; exiting\n",
                     rank_, Host().c_str(), static_cast<int>(parent_));
        std::fflush(stderr);
        _exit(5);
      }
      const int64_t last = last_ns_.load();
      if (seconds_ > 0 && last != 0 && (Now() - last) / 1e9 > seconds_) {
        std::fprintf(stderr,
                     "anerd-rank: rank %d on %s: no step completed for %.0f s (--heartbeat-s): a "
                     "rank hung or the link stalled; ending the job\n",
                     rank_, Host().c_str(), seconds_);
        std::fflush(stderr);
        _exit(4);
      }
    }
  }
  const int rank_;
  const double seconds_;
  const pid_t parent_;
  std::atomic<int64_t> last_ns_{0};  // 0 until the first step
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// The test-only faults: a rank that dies or hangs before a given step.
void TestOnlyFaults(int rank, int64_t next_step) {
  if (next_step != absl::GetFlag(FLAGS_testonly_exit_step)) return;
  if (rank == absl::GetFlag(FLAGS_testonly_exit_rank)) {
    std::fprintf(stderr, "anerd-rank: rank %d on %s: exiting before step %lld (test)\n", rank,
                 Host().c_str(), static_cast<long long>(next_step));  // NOLINT(runtime/int)
    _exit(3);
  }
  if (rank == absl::GetFlag(FLAGS_testonly_hang_rank)) {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// One step on every rank, rank 0's event with the per-rank times, the digest check.
absl::Status RunStep(training::Trainer* t, int rank, EventSink* sink) {
  TestOnlyFaults(rank, t->step() + 1);
  ANERD_ASSIGN_OR_RETURN(training::StepReport r, t->Step());
  ANERD_ASSIGN_OR_RETURN(RankTimes times, GatherStepTimes(r.step_ms));
  if (rank == 0) {
    r.slowest_rank = times.slowest_rank;
    r.slowest_rank_ms = times.slowest_ms;
    r.fastest_rank_ms = times.fastest_ms;
    sessions::SessionEventRecord e;
    e.kind = sessions::SessionEventRecord::Kind::kStep;
    e.step = r;
    sink->Write(e);
  }
  const int64_t every = t->spec().digest_every;
  if ((every > 0 && t->step() % every == 0) || t->done()) {
    if (rank == absl::GetFlag(FLAGS_testonly_perturb_rank)) {
      std::vector<float> w = t->params();
      w[0] = -w[0] - 1.0f;
      return CheckSameWeights(w.data(), static_cast<int64_t>(w.size()), t->step());
    }
    ANERD_RETURN_IF_ERROR(
        CheckSameWeights(t->params().data(), static_cast<int64_t>(t->params().size()), t->step()));
  }
  const int64_t ck = t->spec().checkpoint_every;
  if ((ck > 0 && t->step() % ck == 0) || t->done()) {
    if (rank == 0) ANERD_RETURN_IF_ERROR(SaveCheckpoint(*t, sink));
    // No rank moves past a checkpoint before it is durable: a rank failing later finds the job
    // resumable from it.
    if (MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS) {
      return absl::UnavailableError("checkpoint barrier failed");
    }
  }
  return absl::OkStatus();
}

absl::Status Run(int rank, bool serialized) {
  backend::cpu::ConfigureBlasThreading();
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<backend::Backend> backend,
                         backend::CreateBackend(absl::GetFlag(FLAGS_backend), {}));
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<training::Trainer> t, MakeTrainer(backend.get()));
  ANERD_ASSIGN_OR_RETURN(MpiReducer::Mode mode, MpiReducer::ParseMode(t->spec().reduce));
  MpiReducer reducer(mode);
  // The job's world size rules; a resumed checkpoint keeps its global batch (issue 24 item 3).
  ANERD_RETURN_IF_ERROR(t->AdoptRanks(reducer.ranks(), !absl::GetFlag(FLAGS_resume).empty()));
  // Overlap (issue 24 item 2): MPI from the communication thread during a step and from this one
  // between steps, never both at once, which MPI_THREAD_SERIALIZED allows.
  std::unique_ptr<training::BucketedReducer> bucketed;
  if (t->spec().allreduce_overlap && serialized) {
    const int64_t kb = t->spec().allreduce_bucket_kb;
    bucketed = std::make_unique<training::BucketedReducer>(
        &reducer, kb > 0 ? kb * 1024 / 4 : training::kDefaultBucketFloats);
  }
  t->SetGradientReducer(
      bucketed != nullptr ? static_cast<training::GradientReducer*>(bucketed.get()) : &reducer);
  EventSink sink(rank == 0 ? absl::GetFlag(FLAGS_events) : "/dev/null");
  if (!sink.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--events: cannot open '", absl::GetFlag(FLAGS_events), "'"));
  }
  Watchdog watchdog(rank, absl::GetFlag(FLAGS_heartbeat_s));
  while (!t->done()) {
    ANERD_RETURN_IF_ERROR(RunStep(t.get(), rank, &sink));
    watchdog.Beat();
  }
  return absl::OkStatus();
}

// Flag names take hyphens or underscores (as anerd's): --extra-steps == --extra_steps.
std::vector<char*> NormalizeFlags(int argc, char** argv, std::vector<std::string>* storage) {
  storage->assign(argv, argv + argc);
  std::vector<char*> out;
  for (std::string& a : *storage) {
    if (a.rfind("--", 0) == 0) {
      for (size_t i = 2; i < a.size() && a[i] != '='; ++i) {
        if (a[i] == '-') a[i] = '_';
      }
    }
    out.push_back(a.data());
  }
  return out;
}

}  // namespace
}  // namespace anerd::distributed

int main(int argc, char** argv) {
  std::vector<std::string> storage;
  std::vector<char*> args = anerd::distributed::NormalizeFlags(argc, argv, &storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  int threads = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &threads);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  char host[MPI_MAX_PROCESSOR_NAME] = {0};
  int host_len = 0;
  if (MPI_Get_processor_name(host, &host_len) == MPI_SUCCESS && host_len > 0) {
    anerd::distributed::Host().assign(host, static_cast<size_t>(host_len));
  }
  if (threads < MPI_THREAD_SERIALIZED && rank == 0) {
    std::fprintf(stderr, "anerd-rank: MPI grants no MPI_THREAD_SERIALIZED: no overlap\n");
  }
  const absl::Status s = anerd::distributed::Run(rank, threads >= MPI_THREAD_SERIALIZED);
  if (!s.ok()) {
    std::fprintf(stderr, "anerd-rank: rank %d on %s: %s\n", rank,
                 anerd::distributed::Host().c_str(), s.ToString().c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 2);
    return 2;
  }
  MPI_Finalize();
  return 0;
}
