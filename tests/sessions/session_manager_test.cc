// Training sessions through the engine: the event log survives skipped steps (NaN), torn tails and
// damage; sessions too large for the machine are refused before anything is allocated; an
// exception on the session path fails the session instead of the daemon; a write error (full disk)
// pauses a session at its last durable checkpoint instead of reporting progress.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/synth_stories.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/store/sqlite.h"
#include "server/training/memory_estimate.h"
#include "tests/testing/engine_session_fixture.h"
#include "tests/testing/process_harness.h"

namespace anerd::sessions {
namespace {

using engine::Engine;
using engine::EngineOptions;

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// The shared engine fixture (tests/testing/engine_session_fixture.h) plus this file's helpers.
class SessionManagerTest : public testing::EngineSessionFixture {
 protected:
  std::unique_ptr<Engine> MakeEngine(uint64_t memory_limit = 0) {
    return MakeEngineWith(
        [memory_limit](EngineOptions& o) { o.session_memory_limit_bytes = memory_limit; });
  }

  static std::vector<int64_t> Steps(const std::vector<SessionEventRecord>& events) {
    std::vector<int64_t> steps;
    for (const auto& e : events) {
      if (e.kind == SessionEventRecord::Kind::kStep) steps.push_back(e.step.step);
    }
    return steps;
  }

  std::string EventsPath(const std::string& id) const {
    return state_dir_ + "/sessions/" + id + "/events.jsonl";
  }
};

// Issue 16 item 1: a skipped step's NaN grad norm made every later start abort.
TEST_F(SessionManagerTest, SkippedStepsSurviveARestartWithFullHistory) {
  std::string id;
  size_t events_before = 0;
  {
    auto e = MakeEngine();
    training::TrainSpec spec = TinySpec(20);
    spec.loss_scale = "1e30";  // fp16 gradients overflow: every step is skipped
    absl::StatusOr<SessionSnapshot> s = e->sessions().Start(spec, "nan", "");
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->id;
    EXPECT_EQ(WaitUntilInactive(*e, id).state, SessionState::kCompleted);
    const std::vector<SessionEventRecord> events = Events(*e, id);
    events_before = events.size();
    int skipped = 0;
    for (const auto& ev : events)
      skipped += ev.kind == SessionEventRecord::Kind::kStep && ev.step.skipped &&
                 !std::isfinite(ev.step.grad_norm);
    ASSERT_GT(skipped, 0) << "the repro needs a skipped step with a non-finite grad norm";
  }
  auto e = MakeEngine();
  ASSERT_NE(e, nullptr);
  absl::StatusOr<SessionSnapshot> s = e->sessions().Get(id);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->state, SessionState::kCompleted);
  EXPECT_EQ(s->error, "");
  const std::vector<SessionEventRecord> events = Events(*e, id);
  EXPECT_EQ(events.size(), events_before);
  const std::vector<int64_t> steps = Steps(events);
  ASSERT_EQ(steps.size(), 20u);
  for (const auto& ev : events) {
    if (ev.kind == SessionEventRecord::Kind::kStep && ev.step.skipped) {
      EXPECT_FALSE(std::isfinite(ev.step.grad_norm));
    }
  }
}

// Logs written before the fix hold `null` for NaN; they load too.
TEST_F(SessionManagerTest, ALegacyLogWithNullLoads) {
  std::string id;
  {
    auto e = MakeEngine();
    absl::StatusOr<SessionSnapshot> s = e->sessions().Start(TinySpec(3), "", "");
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->id;
    WaitUntilInactive(*e, id);
  }
  std::ifstream in(EventsPath(id));
  std::stringstream text;
  text << in.rdbuf();
  std::string log = text.str();
  // Step 1's loss becomes null, as the old writer left a NaN (step fields are named since
  // issue 17; the positional format of older logs is covered by tests/sessions/testdata).
  const size_t step = log.find("\"step\":1,");
  ASSERT_NE(step, std::string::npos) << log;
  const size_t line = log.rfind('\n', step) + 1;
  const size_t loss = log.find("\"loss\":", line) + 7;
  ASSERT_LT(loss, step) << log;
  const size_t comma = log.find(',', loss);
  log = log.substr(0, loss) + "null" + log.substr(comma);
  std::ofstream(EventsPath(id), std::ios::trunc) << log;
  auto e = MakeEngine();
  ASSERT_NE(e, nullptr);
  const std::vector<SessionEventRecord> events = Events(*e, id);
  ASSERT_EQ(Steps(events).size(), 3u);
  for (const auto& ev : events) {
    if (ev.kind == SessionEventRecord::Kind::kStep && ev.step.step == 1) {
      EXPECT_TRUE(std::isnan(ev.step.loss));
    }
  }
}

TEST_F(SessionManagerTest, ATornTailIsCutAndDamageFailsTheSessionNamingTheLine) {
  std::string id;
  {
    auto e = MakeEngine();
    absl::StatusOr<SessionSnapshot> s = e->sessions().Start(TinySpec(3), "", "");
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->id;
    WaitUntilInactive(*e, id);
  }
  const uintmax_t clean_size = fs::file_size(EventsPath(id));
  std::ofstream(EventsPath(id), std::ios::app) << "{\"seq\": 99, \"ms\": 1, \"ki";
  {
    auto e = MakeEngine();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->sessions().Get(id)->state, SessionState::kCompleted);
    EXPECT_EQ(Steps(Events(*e, id)).size(), 3u);
  }
  EXPECT_EQ(fs::file_size(EventsPath(id)), clean_size) << "the torn record is cut";

  // Damage in the middle: line 2 is not JSON; the records around it are kept.
  std::ifstream in(EventsPath(id));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  in.close();
  lines[1] = "\x01garbage";
  {
    std::ofstream out(EventsPath(id), std::ios::trunc);
    for (const std::string& l : lines) out << l << "\n";
  }
  auto e = MakeEngine();
  ASSERT_NE(e, nullptr);
  absl::StatusOr<SessionSnapshot> s = e->sessions().Get(id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, SessionState::kFailed);
  EXPECT_THAT(s->error, HasSubstr(EventsPath(id) + " line 2"));
  EXPECT_TRUE(fs::exists(EventsPath(id) + ".corrupt"));
  EXPECT_EQ(Steps(Events(*e, id)).size(), 3u);
}

// Issue 16 item 2: the repro's config threw std::bad_alloc and crash-looped the daemon.
TEST_F(SessionManagerTest, ASessionTooLargeForTheMachineIsRefusedNamingTheEstimate) {
  auto e = MakeEngine();
  training::TrainSpec spec = TinySpec(10);
  absl::StatusOr<training::ModelConfig> huge = training::ParseCustomConfig(
      "dim=65536,hidden=262144,layers=64,heads=512,kv_heads=512,vocab=32000,seq=4096");
  ASSERT_TRUE(huge.ok()) << huge.status();
  spec.model = *huge;
  absl::StatusOr<SessionSnapshot> s = e->sessions().Start(spec, "", "");
  ASSERT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("estimated"));
  EXPECT_THAT(s.status().message(), HasSubstr("RAM"));
  EXPECT_THAT(s.status().message(), HasSubstr("--session-memory-limit-bytes"));
  EXPECT_TRUE(e->sessions().List().empty()) << "nothing was saved";
}

TEST_F(SessionManagerTest, TheLimitCountsEveryActiveSession) {
  absl::StatusOr<training::MemoryEstimate> one = training::EstimateTrainingMemory(TinySpec(1));
  ASSERT_TRUE(one.ok());
  // Room for one tiny session, not two.
  auto e = MakeEngine(static_cast<uint64_t>(one->total() * 1.5));
  absl::StatusOr<SessionSnapshot> first = e->sessions().Start(TinySpec(1000000), "", "");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<SessionSnapshot> second = e->sessions().Start(TinySpec(10), "", "");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("active sessions"));
  ASSERT_TRUE(e->sessions().Stop(first->id).ok());
  WaitUntilInactive(*e, first->id);
  EXPECT_TRUE(e->sessions().Start(TinySpec(10), "", "").ok());
}

// A session that passed the check (here: no effective limit) but cannot allocate fails alone.
TEST_F(SessionManagerTest, BadAllocFailsTheSessionNotTheDaemon) {
  std::ifstream overcommit("/proc/sys/vm/overcommit_memory");
  int mode = -1;
  if (overcommit >> mode; mode == 1)
    GTEST_SKIP() << "overcommit_memory=1: huge allocations succeed";
  std::string id;
  {
    auto e = MakeEngine(UINT64_MAX);
    training::TrainSpec spec = TinySpec(10);
    // ~4.8e11 parameters (under anerd's 2^40 cap): the 1.9 TB weight array cannot be allocated.
    spec.model =
        *training::ParseCustomConfig("dim=65536,hidden=65536,layers=16,heads=512,vocab=256,seq=64");
    absl::StatusOr<SessionSnapshot> s = e->sessions().Start(spec, "", "");
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->id;
    SessionSnapshot done = WaitUntilInactive(*e, id);
    EXPECT_EQ(done.state, SessionState::kFailed);
    EXPECT_THAT(done.error, HasSubstr("out of memory"));
    // The executor still serves the next session.
    absl::StatusOr<SessionSnapshot> next = e->sessions().Start(TinySpec(2), "", "");
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(WaitUntilInactive(*e, next->id).state, SessionState::kCompleted);
  }
  auto e = MakeEngine();  // the default limit now
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->sessions().Get(id)->state, SessionState::kFailed);
}

// Restarting after the daemon died while a session was building its trainer (the crash loop of
// item 2) must not build it again.
TEST_F(SessionManagerTest, ASessionThatDiedStartingIsNotResumedAutomatically) {
  std::string id;
  {
    auto e = MakeEngine();
    absl::StatusOr<SessionSnapshot> s = e->sessions().Start(TinySpec(3), "", "");
    ASSERT_TRUE(s.ok());
    id = s->id;
    WaitUntilInactive(*e, id);
  }
  // Make the stored row look like a crash during start-up: state compiling, no checkpoint, no log.
  {
    auto db = store::SqliteDb::Open(state_dir_ + "/anerd.db", 5000);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec(absl::StrCat("UPDATE sessions SET state='compiling', step=0, "
                                        "checkpoint_path='', checkpoint_step=0 WHERE id='",
                                        id, "'"))
                    .ok());
  }
  std::ofstream(EventsPath(id), std::ios::trunc) << "";
  auto e = MakeEngine();
  ASSERT_NE(e, nullptr);
  absl::StatusOr<SessionSnapshot> s = e->sessions().Get(id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, SessionState::kFailed);
  EXPECT_THAT(s->error, HasSubstr("not resumed automatically"));
  EXPECT_TRUE(e->sessions().Resume(id, 0).ok()) << "a client may still resume it";
  EXPECT_EQ(WaitUntilInactive(*e, id).state, SessionState::kCompleted);
}

// Issue 16 item 8: a write error while checkpointing pauses the session at its last durable
// checkpoint; once writes work again it resumes and completes with every step reported once.
// Writes fail through RLIMIT_FSIZE (EFBIG, SIGXFSZ ignored): the checkpoint file of the tiny
// model is larger than the limit, the event log and database stay below it.
TEST_F(SessionManagerTest, AWriteErrorPausesTheSessionInsteadOfReportingProgress) {
  std::string id;
  auto e = MakeEngine();
  {
    struct rlimit old_limit;
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = old_limit;
    limit.rlim_cur = 256 << 10;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
    training::TrainSpec spec = TinySpec(30);
    spec.checkpoint_every = 10;
    absl::StatusOr<SessionSnapshot> s = e->sessions().Start(spec, "", "");
    SessionSnapshot done;
    if (s.ok()) done = WaitUntilInactive(*e, s->id);
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    ::signal(SIGXFSZ, old_handler);
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->id;
    EXPECT_EQ(done.state, SessionState::kPaused) << "a state of its own, not failed";
    EXPECT_THAT(done.error, HasSubstr("checkpoint.bin"));
    EXPECT_THAT(done.error, HasSubstr(std::strerror(EFBIG)));
    EXPECT_THAT(done.error, HasSubstr("anectl train resume " + id));
    EXPECT_EQ(done.step, 0) << "no step is durable: none is claimed";
    EXPECT_EQ(done.checkpoint_step, 0);
  }
  std::vector<SessionEventRecord> events = Events(*e, id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, SessionEventRecord::Kind::kState);
  EXPECT_EQ(events.back().text, "paused") << "watchers see the state";
  ASSERT_TRUE(e->sessions().Resume(id, 0).ok());
  SessionSnapshot done = WaitUntilInactive(*e, id);
  EXPECT_EQ(done.state, SessionState::kCompleted) << done.error;
  EXPECT_EQ(done.step, 30);
  std::vector<int64_t> steps = Steps(Events(*e, id));
  ASSERT_EQ(steps.size(), 30u);
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(steps[i], i + 1);
}

// A checkpoint is blocking file I/O: it is written off the device executor (which meanwhile runs
// other work), and the next step starts only once it is durable.
TEST_F(SessionManagerTest, CheckpointsAreWrittenOffTheExecutorBetweenSteps) {
  auto e = MakeEngine();
  training::TrainSpec spec = TinySpec(6);
  spec.checkpoint_every = 2;
  absl::StatusOr<SessionSnapshot> s = e->sessions().Start(spec, "", "");
  ASSERT_TRUE(s.ok()) << s.status();
  SessionSnapshot done = WaitUntilInactive(*e, s->id);
  ASSERT_EQ(done.state, SessionState::kCompleted) << done.error;
  EXPECT_EQ(done.checkpoint_step, 6);
  absl::StatusOr<SessionTrace> trace = e->sessions().Trace(s->id, 1, 6);
  ASSERT_TRUE(trace.ok()) << trace.status();
  std::vector<std::pair<int64_t, int64_t>> checkpoints, steps;  // [start, end) in ns
  for (const training::TraceSpan& span : trace->spans) {
    const std::string& thread = trace->thread_names.at(span.thread);
    if (span.name == std::string("checkpoint")) {
      EXPECT_EQ(thread, "checkpoint writer") << "a checkpoint ran on the executor's thread";
      checkpoints.emplace_back(span.start_unix_ns, span.start_unix_ns + span.duration_ns);
    } else if (span.name == std::string("step")) {
      EXPECT_EQ(thread, "trainer");
      steps.emplace_back(span.start_unix_ns, span.start_unix_ns + span.duration_ns);
    }
  }
  ASSERT_EQ(checkpoints.size(), 3u) << "after steps 2, 4 and 6";
  ASSERT_EQ(steps.size(), 6u);
  for (size_t k = 0; k < checkpoints.size(); ++k) {
    EXPECT_GE(checkpoints[k].first, steps[2 * k + 1].second) << "written after its step";
    if (2 * k + 2 < steps.size()) {
      EXPECT_GE(steps[2 * k + 2].first, checkpoints[k].second) << "the next step waits for it";
    }
  }
}

// A paused session can be given up instead of resumed: Stop makes it `stopped` (it holds no
// executor turn, so nothing has to drain), and it is still at its last durable checkpoint.
TEST_F(SessionManagerTest, StoppingAPausedSessionGivesItUp) {
  auto e = MakeEngine();
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 256 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  training::TrainSpec spec = TinySpec(30);
  spec.checkpoint_every = 10;
  absl::StatusOr<SessionSnapshot> s = e->sessions().Start(spec, "", "");
  SessionSnapshot paused;
  if (s.ok()) paused = WaitUntilInactive(*e, s->id);
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(paused.state, SessionState::kPaused);
  absl::StatusOr<SessionSnapshot> stopped = e->sessions().Stop(s->id);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->state, SessionState::kStopped);
  EXPECT_EQ(e->sessions().Get(s->id)->state, SessionState::kStopped);
  EXPECT_EQ(e->sessions().Stop(s->id).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(e->sessions().Delete(s->id).ok());
}

}  // namespace
}  // namespace anerd::sessions
