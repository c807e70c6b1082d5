// "No blocking I/O on a device executor thread": a session's whole life (periodic checkpoints,
// evaluations in training with best.bin, stop, resume with extra steps, the Evaluate RPC, exports
// of live weights and of checkpoints, a start from an --init model with held-out data, a failure
// thrown on the executor) runs through a real engine, whose executors mark their threads
// (common/blocking_io_guard.h); every event-log append, TensorBoard append, atomic file write,
// model, checkpoint or token file read or write and session row write the daemon did meanwhile
// must have run on another thread.
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/blocking_io_guard.h"
#include "common/synth_stories.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/training/model_export.h"
#include "tests/testing/engine_session_fixture.h"

namespace anerd::sessions {
namespace {

using engine::Engine;
using training::ExportFormat;
namespace fs = std::filesystem;

class SessionIoTest : public testing::EngineSessionFixture {
 protected:
  static SessionSnapshot WaitForStep(Engine& e, const std::string& id, int64_t step) {
    absl::StatusOr<SessionSnapshot> s = e.sessions().Get(id);
    for (int i = 0; i < 6000 && s.ok() && s->step < step && IsActive(s->state); ++i) {
      absl::SleepFor(absl::Milliseconds(5));
      s = e.sessions().Get(id);
    }
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : SessionSnapshot{};
  }

  static absl::StatusOr<EvaluateResult> Evaluate(Engine& e, EvaluateSpec spec) {
    std::promise<absl::StatusOr<EvaluateResult>> result;
    e.sessions().Evaluate(std::move(spec), [&result](absl::StatusOr<EvaluateResult> r) {
      result.set_value(std::move(r));
    });
    return result.get_future().get();
  }

  // Exports `id` and checks that every file of the format was written; the directory.
  static std::string ExportOk(Engine& e, const std::string& id, ExportFormat format, bool best) {
    std::promise<absl::StatusOr<std::string>> result;
    e.sessions().Export(id, format, best, [&result](absl::StatusOr<std::string> dir) {
      result.set_value(std::move(dir));
    });
    absl::StatusOr<std::string> dir = result.get_future().get();
    EXPECT_TRUE(dir.ok()) << dir.status();
    if (!dir.ok()) return "";
    for (const std::string& name : training::ExportFileNames(format)) {
      std::error_code ec;
      const uintmax_t size = fs::file_size(*dir + "/" + name, ec);
      EXPECT_TRUE(!ec && size > 0) << name << ": " << ec.message();
    }
    return *dir;
  }

  static std::string Violations() { return absl::StrJoin(BlockingIoViolationNames(), "; "); }
};

TEST_F(SessionIoTest, NoSessionFileIoRunsOnADeviceExecutor) {
  auto e = MakeEngineWith(nullptr);
  ASSERT_NE(e, nullptr);
  ResetBlockingIoViolations();

  // Periodic checkpoints and evaluations (each new best writes best.bin) to completion.
  training::TrainSpec spec = TinySpec(6);
  spec.checkpoint_every = 2;
  spec.eval_every = 2;
  spec.eval_batches = 1;
  absl::StatusOr<SessionSnapshot> done = e->sessions().Start(spec, "done", "");
  ASSERT_TRUE(done.ok()) << done.status();
  const SessionSnapshot completed = WaitUntilInactive(*e, done->id);
  ASSERT_EQ(completed.state, SessionState::kCompleted) << completed.error;
  EXPECT_FALSE(completed.best_checkpoint_path.empty()) << "an evaluation wrote best.bin";

  // Stop mid-run (a checkpoint on the way out), resume with more steps (the checkpoint is read
  // back, and rewritten with the new total), stop again.
  absl::StatusOr<SessionSnapshot> long_run = e->sessions().Start(TinySpec(100000), "long", "");
  ASSERT_TRUE(long_run.ok()) << long_run.status();
  EXPECT_GE(WaitForStep(*e, long_run->id, 2).step, 2);
  // Live weights, copied between two steps, in every format.
  for (ExportFormat f : {ExportFormat::kLlama2c, ExportFormat::kHf, ExportFormat::kNative}) {
    fs::remove_all(ExportOk(*e, long_run->id, f, /*best=*/false));
  }
  ASSERT_TRUE(e->sessions().Stop(long_run->id).ok());
  SessionSnapshot stopped = WaitUntilInactive(*e, long_run->id);
  ASSERT_EQ(stopped.state, SessionState::kStopped) << stopped.error;
  ASSERT_GE(stopped.checkpoint_step, 2);
  ASSERT_TRUE(e->sessions().Resume(long_run->id, 5).ok());
  EXPECT_GT(WaitForStep(*e, long_run->id, stopped.step + 2).step, stopped.step);
  ASSERT_TRUE(e->sessions().Stop(long_run->id).ok());
  stopped = WaitUntilInactive(*e, long_run->id);
  ASSERT_EQ(stopped.state, SessionState::kStopped) << stopped.error;

  // The Evaluate RPC reads a session's checkpoint (latest and best).
  EvaluateSpec latest;
  latest.session_id = done->id;
  latest.batches = 1;
  absl::StatusOr<EvaluateResult> r = Evaluate(*e, latest);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->step, 6);
  EvaluateSpec best = latest;
  best.best = true;
  ASSERT_TRUE(Evaluate(*e, best).ok());

  // Exports of checkpoints: a stopped session's latest, a completed one's best.
  const std::string exported = ExportOk(*e, long_run->id, ExportFormat::kLlama2c, false);
  fs::remove_all(ExportOk(*e, done->id, ExportFormat::kNative, /*best=*/true));

  // A run from an --init model with held-out data in a file of its own: the trainer's files
  // (data, held-out data, init model) are read before it is built.
  const std::string init = dir_.path() + "/init.bin", val = dir_.path() + "/val.txt";
  ASSERT_FALSE(exported.empty());
  fs::copy_file(exported + "/model.bin", init);
  fs::remove_all(exported);
  std::ofstream(val) << SynthesizeStories(8, 4000);
  training::TrainSpec from_init = TinySpec(2);
  from_init.init_model_path = init;
  from_init.val_data_path = val;
  from_init.eval_every = 1;
  from_init.eval_batches = 1;
  absl::StatusOr<SessionSnapshot> initialised = e->sessions().Start(from_init, "init", "");
  ASSERT_TRUE(initialised.ok()) << initialised.status();
  const SessionSnapshot init_done = WaitUntilInactive(*e, initialised->id);
  ASSERT_EQ(init_done.state, SessionState::kCompleted) << init_done.error;
  ASSERT_TRUE(init_done.last_eval.has_value()) << "evaluated on the held-out file";

  EXPECT_EQ(BlockingIoViolations(), 0u) << "blocking I/O on a device executor: " << Violations();
}

// An exception on the executor (here std::bad_alloc building a model too large to allocate) fails
// the session; its failure event and row are written off the executor.
TEST_F(SessionIoTest, AFailureThrownOnTheExecutorIsRecordedOffIt) {
  std::ifstream overcommit("/proc/sys/vm/overcommit_memory");
  int mode = -1;
  if (overcommit >> mode; mode == 1) {
    GTEST_SKIP() << "overcommit_memory=1: huge allocations succeed";
  }
  auto e = MakeEngineWith([](engine::EngineOptions& o) { o.session_memory_limit_bytes = ~0ull; });
  ASSERT_NE(e, nullptr);
  ResetBlockingIoViolations();
  training::TrainSpec spec = TinySpec(10);
  // ~4.8e11 parameters (under anerd's 2^40 cap): the 1.9 TB weight array cannot be allocated.
  spec.model =
      *training::ParseCustomConfig("dim=65536,hidden=65536,layers=16,heads=512,vocab=256,seq=64");
  absl::StatusOr<SessionSnapshot> s = e->sessions().Start(spec, "", "");
  ASSERT_TRUE(s.ok()) << s.status();
  const SessionSnapshot failed = WaitUntilInactive(*e, s->id);
  ASSERT_EQ(failed.state, SessionState::kFailed);
  EXPECT_NE(failed.error.find("out of memory"), std::string::npos) << failed.error;
  e.reset();  // every pending row written
  EXPECT_EQ(BlockingIoViolations(), 0u) << "blocking I/O on a device executor: " << Violations();
}

// The guard itself: I/O on a marked thread counts, elsewhere it does not.
TEST(BlockingIoGuardTest, CountsOnlyOnMarkedThreads) {
  ResetBlockingIoViolations();
  NoteBlockingIo("unmarked");
  EXPECT_EQ(BlockingIoViolations(), 0u);
  {
    const ScopedDeviceThread mark;
    EXPECT_TRUE(OnDeviceThread());
    NoteBlockingIo("marked write");
  }
  EXPECT_FALSE(OnDeviceThread());
  EXPECT_EQ(BlockingIoViolations(), 1u);
  ASSERT_EQ(BlockingIoViolationNames().size(), 1u);
  EXPECT_EQ(BlockingIoViolationNames()[0], "marked write");
}

}  // namespace
}  // namespace anerd::sessions
