// Issue 22: a client's kernel evaluation does not wait behind a whole training step. With a
// training session running, evaluations submitted in the middle of a step are served between
// that step's kernels (inline, at the step's next yield), and a probe is never interleaved. The
// test asserts the ORDER of what the executor ran (its observer), never a time.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/synth_stories.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/testing/process_harness.h"

namespace anerd::engine {
namespace {

namespace fs = std::filesystem;

struct Event {
  ExecutorEvent::Kind kind;
  std::string what;
  bool inline_run;
};

class DevicePriorityTest : public ::testing::TestWithParam<const char*> {};

TEST_P(DevicePriorityTest, EvaluationsRunBetweenATrainingStepsKernelsAndProbesAreNotInterleaved) {
  ::anerd::testing::TempDir dir;
  EngineOptions options;
  options.state_dir = dir.path() + "/state";
  options.data_roots = {dir.path()};
  options.backend = GetParam();
  fs::create_directories(options.state_dir);
  const std::string data = dir.path() + "/stories.txt";
  std::ofstream(data) << SynthesizeStories(7, 20000);
  absl::StatusOr<std::unique_ptr<Engine>> made = Engine::Create(options);
  if (!made.ok() && options.backend != "cpu") GTEST_SKIP() << made.status();
  ASSERT_TRUE(made.ok()) << made.status();
  Engine& e = **made;
  DeviceExecutor* executor = e.executor(GetParam());
  ASSERT_NE(executor, nullptr);

  KernelCompileRequest compile;
  compile.backend = GetParam();
  compile.mil_text = R"(program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 256]> x) {
        tensor<fp16, [1, 64, 1, 256]> y = add(x = x, y = x)[name = string("y")];
    } -> (y);
}
)";
  std::promise<absl::StatusOr<KernelCompileResult>> compiled;
  e.kernels().Compile(compile, {}, [&](auto r) { compiled.set_value(std::move(r)); });
  absl::StatusOr<KernelCompileResult> kernel = compiled.get_future().get();
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  const std::string kernel_id = kernel->info.record.id;

  absl::Mutex mu;
  std::vector<Event> events;
  int yields = 0;
  std::promise<void> evals_done, probe_done;
  std::atomic<int> evals_left{3};
  auto eval = [&] {
    std::vector<backend::NamedTensor> in = {
        {"x", backend::Tensor::FromFloats(mil::DType::kFp16, {1, 64, 1, 256},
                                          std::vector<float>(64 * 256, 0.5f))}};
    e.kernels().Eval(kernel_id, std::move(in), {}, [&](absl::StatusOr<KernelEvalResult> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      if (--evals_left == 0) evals_done.set_value();
    });
  };
  // On the executor thread: at the third kernel boundary of the first training step, two
  // evaluations and a probe arrive; the probe queues a third evaluation while it runs.
  executor->SetObserver([&](const ExecutorEvent& ev) {
    bool submit = false;
    {
      absl::MutexLock lock(&mu);
      events.push_back({ev.kind, ev.what, ev.inline_run});
      submit = ev.kind == ExecutorEvent::Kind::kYield && ++yields == 3;
    }
    if (!submit) return;
    eval();
    eval();
    executor->Submit(TaskClass::kProbe, {}, "probe", [&](absl::Status, absl::Duration) {
      eval();
      EXPECT_EQ(executor->Yield(), 0u);  // a probe keeps the device
      probe_done.set_value();
    });
  });

  training::TrainSpec spec;
  spec.model = *training::ModelConfigByName("tiny");
  spec.data_path = data;
  spec.steps = 20;
  spec.warmup = 2;
  absl::StatusOr<sessions::SessionSnapshot> s = e.sessions().Start(spec, "busy", GetParam());
  ASSERT_TRUE(s.ok()) << s.status();
  // A bound so that a step that never yields fails instead of hanging (not a timing assertion).
  if (probe_done.get_future().wait_for(std::chrono::minutes(2)) != std::future_status::ready) {
    executor->SetObserver(nullptr);
    e.Shutdown();
    FAIL() << "the probe never ran: no training step yielded between its kernels";
  }
  evals_done.get_future().wait();
  (void)e.sessions().Stop(s->id);
  e.Shutdown();
  executor->SetObserver(nullptr);

  absl::MutexLock lock(&mu);
  // The step that held the third yield: from its start to its end.
  size_t third = 0;
  for (int n = 0; third < events.size(); ++third) {
    if (events[third].kind == ExecutorEvent::Kind::kYield && ++n == 3) break;
  }
  ASSERT_LT(third, events.size());
  size_t step_start = third, step_end = third;
  while (step_start > 0 && !(events[step_start].kind == ExecutorEvent::Kind::kStart &&
                             !events[step_start].inline_run)) {
    --step_start;
  }
  while (step_end < events.size() &&
         !(events[step_end].kind == ExecutorEvent::Kind::kEnd && !events[step_end].inline_run)) {
    ++step_end;
  }
  ASSERT_LT(step_end, events.size());
  EXPECT_EQ(events[step_start].what, "training step");
  // Served at the next kernel boundary (the yield serves what was queued when it began), inline,
  // and then the step went on with more kernels.
  ASSERT_LT(third + 6, step_end);
  EXPECT_EQ(events[third + 1].kind, ExecutorEvent::Kind::kYield);
  for (size_t i : {third + 2, third + 4}) {
    EXPECT_EQ(events[i].kind, ExecutorEvent::Kind::kStart) << i;
    EXPECT_EQ(events[i].what, "evaluation") << i;
    EXPECT_TRUE(events[i].inline_run) << i;
    EXPECT_EQ(events[i + 1].kind, ExecutorEvent::Kind::kEnd) << i;
  }
  EXPECT_EQ(events[third + 6].kind, ExecutorEvent::Kind::kYield);
  // The probe: nothing between its start and its end; the evaluation it queued came after it.
  size_t probe = step_end;
  while (probe < events.size() && events[probe].what != "probe") ++probe;
  ASSERT_LT(probe + 2, events.size());
  EXPECT_EQ(events[probe].kind, ExecutorEvent::Kind::kStart);
  EXPECT_FALSE(events[probe].inline_run);
  EXPECT_EQ(events[probe + 1].kind, ExecutorEvent::Kind::kEnd);
  EXPECT_EQ(events[probe + 1].what, "probe");
  size_t late = probe + 2;
  while (late < events.size() && events[late].what != "evaluation") ++late;
  EXPECT_LT(late, events.size()) << "the evaluation queued by the probe ran after it";
}

INSTANTIATE_TEST_SUITE_P(Backends, DevicePriorityTest, ::testing::Values("cpu", "ane-sim"),
                         [](const auto& info) {
                           return std::string(info.param) == "cpu" ? "cpu" : "ane_sim";
                         });

}  // namespace
}  // namespace anerd::engine
