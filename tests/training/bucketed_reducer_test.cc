// The overlapped gradient reduction's bucketing (issue 24 item 2; bucketed_reducer.h) with a fake
// inner reducer, no MPI: ranges arriving in backward order are cut into fixed buckets (ranges
// straddling bucket boundaries, a final partial bucket), each element is reduced exactly once, in
// the order the buckets complete; errors for ranges reported twice, outside the gradients or
// never; the loss is reduced after the buckets.
#include "server/training/bucketed_reducer.h"

#include <mutex>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace anerd::training {
namespace {

// "Sums over 2 ranks" by doubling, and records every range it was asked to reduce.
class FakeReducer : public GradientReducer {
 public:
  explicit FakeReducer(const float* base) : base_(base) {}
  int rank() const override { return 0; }
  int ranks() const override { return 2; }
  absl::Status Reduce(float* grads, int64_t n, double* loss_sum, ReduceStats* stats) override {
    return absl::UnimplementedError("not overlapped in this test");
  }
  absl::Status ReduceRange(float* grads, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) grads[i] *= 2;
    std::lock_guard<std::mutex> lock(mu_);
    ranges_.emplace_back(grads - base_, n);
    return fail_after_ >= 0 && static_cast<int64_t>(ranges_.size()) > fail_after_
               ? absl::UnavailableError("peer gone")
               : absl::OkStatus();
  }
  absl::Status ReduceLoss(double* loss_sum) override {
    *loss_sum *= 2;
    std::lock_guard<std::mutex> lock(mu_);
    loss_after_ = ranges_.size();
    return absl::OkStatus();
  }
  std::vector<std::pair<int64_t, int64_t>> ranges() {
    std::lock_guard<std::mutex> lock(mu_);
    return ranges_;
  }
  size_t loss_after() {
    std::lock_guard<std::mutex> lock(mu_);
    return loss_after_;
  }
  void FailAfter(int64_t n) { fail_after_ = n; }

 private:
  const float* base_;
  std::mutex mu_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;  // (offset, count) in call order
  size_t loss_after_ = 0;
  int64_t fail_after_ = -1;
};

std::vector<float> Ones(int64_t n) { return std::vector<float>(n, 1.0f); }

TEST(BucketedReducerTest, BackwardOrderRangesBecomeBucketsEachElementReducedOnce) {
  // 100 elements, buckets of 16: [0,16) ... [96,100) (partial). Ranges in backward order (from
  // the top), straddling bucket boundaries.
  std::vector<float> g = Ones(100);
  FakeReducer fake(g.data());
  BucketedReducer r(&fake, 16);
  ASSERT_TRUE(r.overlapped());
  EXPECT_EQ(r.ranks(), 2);
  ASSERT_TRUE(r.BeginStep(g.data(), 100).ok());
  r.Ready(90, 10);  // completes the partial bucket [96,100); half of [80,96)
  r.Ready(70, 20);  // completes [80,96); straddles into [64,80)
  r.Ready(5, 65);   // completes [64,80), [48,64), [32,48), [16,32); part of [0,16)
  r.Ready(0, 5);    // completes [0,16)
  double loss = 1.5;
  ReduceStats stats;
  ASSERT_TRUE(r.FinishStep(&loss, &stats).ok());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(g[i], 2.0f) << "element " << i << " reduced != once";
  EXPECT_EQ(loss, 3.0);
  const std::vector<std::pair<int64_t, int64_t>> want = {{96, 4},  {80, 16}, {16, 16}, {32, 16},
                                                         {48, 16}, {64, 16}, {0, 16}};
  EXPECT_EQ(fake.ranges(), want) << "buckets in completion order";
  EXPECT_EQ(fake.loss_after(), want.size()) << "the loss after the last bucket";
  EXPECT_EQ(stats.bytes, 100 * 4 + 8);
  ASSERT_TRUE(stats.buckets.has_value());
  EXPECT_EQ(*stats.buckets, 7);
  ASSERT_TRUE(stats.total_ms.has_value() && stats.hidden_ms.has_value());
  EXPECT_GE(*stats.total_ms, *stats.hidden_ms);
  EXPECT_GE(*stats.hidden_ms, 0.0);
}

TEST(BucketedReducerTest, ABucketLargerThanTheGradientsIsOnePartialBucket) {
  std::vector<float> g = Ones(10);
  FakeReducer fake(g.data());
  BucketedReducer r(&fake, 1000);
  ASSERT_TRUE(r.BeginStep(g.data(), 10).ok());
  r.Ready(4, 6);
  r.Ready(0, 4);
  double loss = 1;
  ReduceStats stats;
  ASSERT_TRUE(r.FinishStep(&loss, &stats).ok());
  EXPECT_EQ(fake.ranges(), (std::vector<std::pair<int64_t, int64_t>>{{0, 10}}));
  for (float v : g) EXPECT_EQ(v, 2.0f);
}

TEST(BucketedReducerTest, StepsRepeatWithFreshCounts) {
  std::vector<float> g = Ones(40);
  FakeReducer fake(g.data());
  BucketedReducer r(&fake, 16);
  for (int step = 0; step < 3; ++step) {
    ASSERT_TRUE(r.BeginStep(g.data(), 40).ok());
    r.Ready(0, 40);
    double loss = 1;
    ASSERT_TRUE(r.FinishStep(&loss, nullptr).ok()) << "step " << step;
  }
  EXPECT_EQ(fake.ranges().size(), 9u);
  for (float v : g) EXPECT_EQ(v, 8.0f);
}

TEST(BucketedReducerTest, ARangeReportedTwiceIsAnError) {
  std::vector<float> g = Ones(32);
  FakeReducer fake(g.data());
  BucketedReducer r(&fake, 16);
  ASSERT_TRUE(r.BeginStep(g.data(), 32).ok());
  r.Ready(16, 16);
  r.Ready(20, 4);
  r.Ready(0, 16);
  double loss = 1;
  const absl::Status s = r.FinishStep(&loss, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("reported ready twice"), std::string::npos) << s;
}

TEST(BucketedReducerTest, ARangeNeverReportedOrOutsideIsAnError) {
  std::vector<float> g = Ones(32);
  FakeReducer fake(g.data());
  BucketedReducer r(&fake, 16);
  ASSERT_TRUE(r.BeginStep(g.data(), 32).ok());
  r.Ready(16, 16);
  r.Ready(0, 15);
  double loss = 1;
  absl::Status s = r.FinishStep(&loss, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("bucket 0 has 15 of 16"), std::string::npos) << s;
  EXPECT_EQ(loss, 1.0) << "no loss reduction after an error";

  ASSERT_TRUE(r.BeginStep(g.data(), 32).ok());
  r.Ready(30, 4);
  s = r.FinishStep(&loss, nullptr);
  EXPECT_NE(s.message().find("outside the 32 gradients"), std::string::npos) << s;
}

TEST(BucketedReducerTest, TheInnerReducersErrorEndsTheStep) {
  std::vector<float> g = Ones(64);
  FakeReducer fake(g.data());
  fake.FailAfter(1);
  BucketedReducer r(&fake, 16);
  ASSERT_TRUE(r.BeginStep(g.data(), 64).ok());
  r.Ready(0, 64);
  double loss = 1;
  const absl::Status s = r.FinishStep(&loss, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_LE(fake.ranges().size(), 2u) << "buckets after the failure are skipped";
}

TEST(BucketedReducerTest, AnAbortedStepIgnoresLateReports) {
  std::vector<float> g = Ones(32);
  FakeReducer fake(g.data());
  BucketedReducer r(&fake, 16);
  ASSERT_TRUE(r.BeginStep(g.data(), 32).ok());
  r.Ready(16, 16);
  r.AbortStep();
  r.Ready(0, 16);  // a report of the failed pass, late
  ASSERT_TRUE(r.BeginStep(g.data(), 32).ok());
  r.Ready(0, 32);
  double loss = 1;
  EXPECT_TRUE(r.FinishStep(&loss, nullptr).ok());
}

}  // namespace
}  // namespace anerd::training
