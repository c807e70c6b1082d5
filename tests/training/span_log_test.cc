// SpanLog: a bounded ring (oldest dropped and counted), spans tagged with the step set before they
// began, start order with an enclosing span before its children, and thread names by first span.
#include "server/training/span_log.h"

#include <thread>

#include "gtest/gtest.h"

namespace anerd::training {
namespace {

using Clock = SpanLog::Clock;

TEST(SpanLogTest, KeepsTheLatestSpansAndCountsTheDropped) {
  SpanLog log(/*capacity=*/3);
  const Clock::time_point t = Clock::now();
  for (int step = 1; step <= 5; ++step) {
    log.SetStep(step);
    log.Record("step", -1, t + std::chrono::milliseconds(step),
               t + std::chrono::milliseconds(step + 1));
  }
  const std::vector<TraceSpan> spans = log.Spans(1, 100, 100);
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans.front().step, 3);
  EXPECT_EQ(spans.back().step, 5);
  EXPECT_EQ(log.dropped(), 2);
  EXPECT_EQ(spans[0].duration_ns, 1000000);
  EXPECT_EQ(spans[1].start_unix_ns - spans[0].start_unix_ns, 1000000);
  EXPECT_EQ(log.Spans(4, 4, 100).size(), 1u);
  EXPECT_EQ(log.Spans(1, 100, 2).front().step, 4) << "the latest when more match";
}

TEST(SpanLogTest, OrdersByStartWithTheEnclosingSpanFirst) {
  SpanLog log;
  log.SetStep(7);
  const Clock::time_point t = Clock::now();
  {  // recorded as scoped spans complete: the child first
    log.Record("io", -1, t, t + std::chrono::microseconds(5));
    log.Record("forward", -1, t, t + std::chrono::microseconds(50));
    log.Record("kernel sdpaFwd", 2, t + std::chrono::microseconds(10),
               t + std::chrono::microseconds(20));
  }
  const std::vector<TraceSpan> spans = log.Spans(7, 7, 100);
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_STREQ(spans[0].name, "forward");
  EXPECT_STREQ(spans[1].name, "io");
  EXPECT_STREQ(spans[2].name, "kernel sdpaFwd");
  EXPECT_EQ(spans[2].layer, 2);
  EXPECT_EQ(spans[2].step, 7);
}

TEST(SpanLogTest, NamesThreadsByTheirFirstSpan) {
  SpanLog log;
  { ScopedSpan span(&log, "step"); }
  std::thread([&log] { ScopedSpan span(&log, "dW ffn", 0); }).join();
  { ScopedSpan span(&log, "optimizer"); }
  EXPECT_EQ(log.ThreadNames(), (std::vector<std::string>{"trainer", "dW worker"}));
  const std::vector<TraceSpan> spans = log.Spans(0, 0, 100);
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].thread, 0);
  EXPECT_EQ(spans[1].thread, 1);
  EXPECT_EQ(spans[2].thread, 0);
  ScopedSpan nothing(nullptr, "not tracing");  // a null log records nothing and does not crash
}

}  // namespace
}  // namespace anerd::training
