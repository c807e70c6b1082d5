// The device queue's order: classes by priority, FIFO within a class, and the bounded bypass that
// keeps a lower class from starving (server/engine/device_queue.h).
#include "server/engine/device_queue.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace anerd::engine {
namespace {

std::vector<std::string> Drain(DeviceQueue<std::string>& q) {
  std::vector<std::string> order;
  while (auto next = q.Pop()) order.push_back(next->second);
  return order;
}

TEST(DeviceQueueTest, InteractiveBeforeTrainingBeforeProbes) {
  DeviceQueue<std::string> q;
  q.Push(TaskClass::kProbe, "p1");
  q.Push(TaskClass::kTraining, "t1");
  q.Push(TaskClass::kInteractive, "i1");
  q.Push(TaskClass::kTraining, "t2");
  q.Push(TaskClass::kInteractive, "i2");
  EXPECT_EQ(q.size(TaskClass::kInteractive), 2u);
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"i1", "i2", "t1", "t2", "p1"}));
  EXPECT_TRUE(q.empty());
}

TEST(DeviceQueueTest, WithinAClassTasksRunInArrivalOrder) {
  // Two clients' evaluations and two sessions' steps interleaved as they arrived stay so.
  DeviceQueue<std::string> q;
  for (const char* item : {"a1", "b1", "a2", "b2"}) q.Push(TaskClass::kInteractive, item);
  for (const char* item : {"s1", "s2"}) q.Push(TaskClass::kTraining, item);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"a1", "b1", "a2", "b2", "s1", "s2"}));
}

TEST(DeviceQueueTest, AProbeRunsAfterMaxBypassTrainingSteps) {
  // A session always has its next step queued; strict priority would never reach the probe.
  DeviceQueue<std::string> q(/*max_bypass=*/3);
  q.Push(TaskClass::kProbe, "probe");
  q.Push(TaskClass::kTraining, "step1");
  std::vector<std::string> order;
  for (int step = 2; order.size() < 6;) {
    auto next = q.Pop();
    ASSERT_TRUE(next.has_value());
    order.push_back(next->second);
    if (next->first == TaskClass::kTraining) {
      q.Push(TaskClass::kTraining, "step" + std::to_string(step++));  // the session re-queues
    }
  }
  EXPECT_EQ(order,
            (std::vector<std::string>{"step1", "step2", "step3", "probe", "step4", "step5"}));
}

TEST(DeviceQueueTest, TrainingIsNotStarvedByAStreamOfInteractiveCalls) {
  DeviceQueue<std::string> q(/*max_bypass=*/2);
  q.Push(TaskClass::kTraining, "step");
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    q.Push(TaskClass::kInteractive, "e" + std::to_string(i));
    order.push_back(q.Pop()->second);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"e0", "e1", "step", "e2"}));
}

TEST(DeviceQueueTest, InlinePopsOfInteractiveCountAsBypass) {
  DeviceQueue<std::string> q(/*max_bypass=*/2);
  q.Push(TaskClass::kProbe, "probe");
  q.Push(TaskClass::kTraining, "step");
  q.Push(TaskClass::kInteractive, "e0");
  q.Push(TaskClass::kInteractive, "e1");
  EXPECT_EQ(*q.PopClass(TaskClass::kInteractive), "e0");
  EXPECT_EQ(*q.PopClass(TaskClass::kInteractive), "e1");
  EXPECT_FALSE(q.PopClass(TaskClass::kInteractive).has_value());
  // Both lower classes were passed over twice: on a tie the higher class goes first.
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"step", "probe"}));
}

TEST(DeviceQueueTest, TakeAllEmptiesEveryClassInPriorityOrder) {
  DeviceQueue<std::string> q;
  q.Push(TaskClass::kProbe, "p");
  q.Push(TaskClass::kTraining, "t");
  q.Push(TaskClass::kInteractive, "i");
  EXPECT_EQ(q.TakeAll(), (std::vector<std::string>{"i", "t", "p"}));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.Pop().has_value());
}

}  // namespace
}  // namespace anerd::engine
