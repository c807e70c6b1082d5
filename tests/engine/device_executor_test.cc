#include "server/engine/device_executor.h"

#include <atomic>
#include <future>
#include <vector>

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

}  // namespace
}  // namespace anerd::engine
