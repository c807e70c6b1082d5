#include "server/engine/device_executor.h"

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace anerd::engine {
namespace {

TEST(DeviceExecutorTest, RunsInOrderOnOneThread) {
  DeviceExecutor executor("test");
  std::vector<int> order;
  std::promise<void> done;
  std::thread::id first_thread;
  for (int i = 0; i < 10; ++i) {
    executor.Submit({}, "task", [&, i](absl::Status admission, absl::Duration) {
      ASSERT_TRUE(admission.ok());
      if (i == 0) first_thread = std::this_thread::get_id();
      EXPECT_EQ(std::this_thread::get_id(), first_thread);
      order.push_back(i);
      if (i == 9) done.set_value();
    });
  }
  done.get_future().wait();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(DeviceExecutorTest, CancelledWhileQueuedIsSkipped) {
  DeviceExecutor executor("test");
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  executor.Submit({}, "blocker", [gate](absl::Status, absl::Duration) { gate.wait(); });
  RequestControl control;
  std::promise<absl::Status> skipped;
  executor.Submit(control, "queued work",
                  [&](absl::Status admission, absl::Duration) { skipped.set_value(admission); });
  control.cancelled->store(true);  // the client goes away while the task waits
  release.set_value();
  absl::Status s = skipped.get_future().get();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_NE(s.message().find("queued work"), std::string::npos);
}

TEST(DeviceExecutorTest, ShutdownFailsQueuedAndNewWorkWithUnavailable) {
  auto executor = std::make_unique<DeviceExecutor>("test");
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> started;
  executor->Submit({}, "blocker", [&, gate](absl::Status, absl::Duration) {
    started.set_value();
    gate.wait();
  });
  started.get_future().wait();
  std::promise<absl::Status> queued;
  executor->Submit({}, "queued",
                   [&](absl::Status admission, absl::Duration) { queued.set_value(admission); });
  std::thread stopper([&] { executor->Shutdown(); });
  EXPECT_EQ(queued.get_future().get().code(), absl::StatusCode::kUnavailable);
  release.set_value();
  stopper.join();
  std::promise<absl::Status> late;
  executor->Submit({}, "late", [&](absl::Status a, absl::Duration) { late.set_value(a); });
  EXPECT_EQ(late.get_future().get().code(), absl::StatusCode::kUnavailable);
}

TEST(DeviceExecutorTest, ShutdownCancelsTheRunningTask) {
  // Long work polls its RequestControl between chunks; Shutdown must make that poll fail, or a
  // running task keeps the daemon from stopping. Before the fix the task below only ended when
  // its own poll limit ran out.
  DeviceExecutor executor("test");
  std::promise<void> started;
  std::promise<absl::Status> stopped;
  RequestControl control;
  executor.Submit(control, "long work", [&](absl::Status admission, absl::Duration) {
    started.set_value();
    absl::Status status = admission;
    for (int i = 0; i < 60000 && status.ok(); ++i) {  // at most ~60 s
      status = control.Check("long work");
      if (status.ok()) absl::SleepFor(absl::Milliseconds(1));
    }
    stopped.set_value(status);
  });
  started.get_future().wait();
  executor.Shutdown();
  absl::Status status = stopped.get_future().get();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
}

// A queue of labelled work on one executor, started only once everything is queued (a gate task
// holds the thread), recording the order in which things ran.
class Recorder {
 public:
  void Add(const std::string& label) {
    absl::MutexLock lock(&mu_);
    order_.push_back(label);
  }
  std::vector<std::string> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> order_;
};

TEST(DeviceExecutorTest, ClassesRunByPriority) {
  DeviceExecutor executor("test");
  std::promise<void> release, all_done;
  std::shared_future<void> gate = release.get_future().share();
  executor.Submit(TaskClass::kTraining, {}, "gate",
                  [gate](absl::Status, absl::Duration) { gate.wait(); });
  Recorder rec;
  auto add = [&](TaskClass c, const std::string& label) {
    executor.Submit(c, {}, label, [&, label](absl::Status, absl::Duration) {
      rec.Add(label);
      if (label == "p") all_done.set_value();
    });
  };
  add(TaskClass::kProbe, "p");
  add(TaskClass::kTraining, "t");
  add(TaskClass::kInteractive, "i");
  const QueueStats queued = executor.Stats();
  EXPECT_EQ(queued[static_cast<int>(TaskClass::kInteractive)].queued, 1u);
  EXPECT_EQ(queued[static_cast<int>(TaskClass::kProbe)].queued, 1u);
  release.set_value();
  all_done.get_future().wait();
  EXPECT_EQ(rec.order(), (std::vector<std::string>{"i", "t", "p"}));
  const QueueStats ran = executor.Stats();
  EXPECT_EQ(ran[static_cast<int>(TaskClass::kTraining)].started, 2u);  // the gate and t
  EXPECT_EQ(ran[static_cast<int>(TaskClass::kInteractive)].started, 1u);
  EXPECT_EQ(ran[static_cast<int>(TaskClass::kInteractive)].queued, 0u);
}

// A training task that yields between its "kernels" serves the interactive tasks queued at each
// yield inline, on the executor thread; tasks submitted during a yield wait for the next one.
TEST(DeviceExecutorTest, TrainingYieldRunsQueuedInteractiveTasksBetweenKernels) {
  DeviceExecutor executor("test");
  Recorder rec;
  std::promise<void> done;
  std::thread::id executor_thread;
  executor.Submit(TaskClass::kTraining, {}, "step", [&](absl::Status, absl::Duration) {
    executor_thread = std::this_thread::get_id();
    for (int k = 0; k < 3; ++k) {
      if (k == 1) {
        for (const char* label : {"e1", "e2"}) {
          executor.Submit(TaskClass::kInteractive, {}, label,
                          [&, label = std::string(label)](absl::Status a, absl::Duration) {
                            EXPECT_TRUE(a.ok());
                            EXPECT_EQ(std::this_thread::get_id(), executor_thread);
                            rec.Add(label);
                            if (label == "e1") {  // arrives during a yield: the next one serves it
                              executor.Submit(TaskClass::kInteractive, {}, "e3",
                                              [&](absl::Status, absl::Duration) { rec.Add("e3"); });
                              EXPECT_EQ(executor.Yield(), 0u);  // no nested yields
                            }
                          });
        }
      }
      rec.Add("yield " + std::to_string(executor.Yield()));
      rec.Add("kernel " + std::to_string(k));
    }
    done.set_value();
  });
  done.get_future().wait();
  EXPECT_EQ(rec.order(), (std::vector<std::string>{"yield 0", "kernel 0", "e1", "e2", "yield 2",
                                                   "kernel 1", "e3", "yield 1", "kernel 2"}));
  EXPECT_EQ(executor.Yield(), 0u);  // not the executor thread: nothing
}

TEST(DeviceExecutorTest, AProbeIsNotInterleaved) {
  // Yield inside a probe does nothing: interactive work waits until the probe has finished.
  DeviceExecutor executor("test");
  Recorder rec;
  std::promise<void> done;
  executor.Submit(TaskClass::kProbe, {}, "probe", [&](absl::Status, absl::Duration) {
    executor.Submit(TaskClass::kInteractive, {}, "e", [&](absl::Status, absl::Duration) {
      rec.Add("e");
      done.set_value();
    });
    rec.Add("probe part 1");
    EXPECT_EQ(executor.Yield(), 0u);
    rec.Add("probe part 2");
  });
  done.get_future().wait();
  EXPECT_EQ(rec.order(), (std::vector<std::string>{"probe part 1", "probe part 2", "e"}));
}

TEST(DeviceExecutorTest, AnIdleExecutorLendsTheDeviceAndStartsNothingMeanwhile) {
  DeviceExecutor executor("test");
  Recorder rec;
  std::promise<void> done;
  const std::thread::id caller = std::this_thread::get_id();
  EXPECT_TRUE(executor.TryRunHere(
      TaskClass::kInteractive, {}, "tiny", [&](absl::Status admission, absl::Duration queued) {
        EXPECT_TRUE(admission.ok());
        EXPECT_EQ(queued, absl::ZeroDuration());
        EXPECT_EQ(std::this_thread::get_id(), caller);
        executor.Submit({}, "queued", [&](absl::Status, absl::Duration) {
          rec.Add("queued");
          done.set_value();
        });
        absl::SleepFor(absl::Milliseconds(20));  // not a timed check
        rec.Add("lent work");
      }));
  done.get_future().wait();
  EXPECT_EQ(rec.order(), (std::vector<std::string>{"lent work", "queued"}));
  EXPECT_EQ(executor.Stats()[static_cast<int>(TaskClass::kInteractive)].started, 1u);
}

TEST(DeviceExecutorTest, ABusyExecutorLendsNothing) {
  DeviceExecutor executor("test");
  std::promise<void> started, release;
  std::shared_future<void> gate = release.get_future().share();
  executor.Submit({}, "busy", [&, gate](absl::Status, absl::Duration) {
    started.set_value();
    gate.wait();
  });
  started.get_future().wait();
  bool ran = false;
  EXPECT_FALSE(executor.TryRunHere(TaskClass::kInteractive, {}, "tiny",
                                   [&](absl::Status, absl::Duration) { ran = true; }));
  EXPECT_FALSE(ran);
  release.set_value();
}

}  // namespace
}  // namespace anerd::engine
