// "No blocking I/O on a device executor thread": a session's whole life (periodic checkpoints,
// evaluations in training with best.bin, stop, resume with extra steps, the Evaluate RPC) runs
// through a real engine, whose executors mark their threads (common/blocking_io_guard.h); every
// event-log append, TensorBoard append, atomic file write and checkpoint read/write the daemon did
// meanwhile must have run on another thread.
#include <future>
#include <string>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/blocking_io_guard.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/testing/engine_session_fixture.h"

namespace anerd::sessions {
namespace {

using engine::Engine;

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

  EXPECT_EQ(BlockingIoViolations(), 0u)
      << "blocking I/O on a device executor: " << absl::StrJoin(BlockingIoViolationNames(), "; ");
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
