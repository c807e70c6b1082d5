// ParallelFor (server/backend/cpu/kernels/parallel.h): every index is visited exactly once, the
// parts are contiguous and ordered, small ranges stay serial, the helper really runs part 1, and
// results equal the serial loop for odd sizes and 0/1 elements; kernels that split their passes
// give identical results in both modes.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "common/fp16.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"

namespace anerd::backend::cpu {
namespace {

// Restores the automatic mode after each test.
class ParallelForTest : public ::testing::Test {
 protected:
  void TearDown() override { SetParallelForThreads(0); }
};

// A per-index computation whose result would change if an index ran twice or not at all.
std::vector<double> RunIndexed(int64_t n, int64_t min_part,
                               std::vector<int>* parts_seen = nullptr) {
  std::vector<double> out(n, -1.0);
  std::vector<int> visits(n, 0);
  std::atomic<int> parts{0};
  ParallelFor(n, min_part, [&](int part, int64_t begin, int64_t end) {
    parts.fetch_or(1 << part);
    EXPECT_LE(0, begin);
    EXPECT_LT(begin, end);
    EXPECT_LE(end, n);
    for (int64_t i = begin; i < end; ++i) {
      ++visits[i];
      out[i] = std::sin(static_cast<double>(i)) * 3.0;
    }
  });
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(visits[i], 1) << "index " << i;
  if (parts_seen != nullptr) parts_seen->push_back(parts.load());
  return out;
}

TEST_F(ParallelForTest, MatchesSerialLoopForOddAndTinySizes) {
  for (int64_t n : {0, 1, 2, 3, 7, 1001, 65537}) {
    SetParallelForThreads(1);
    const std::vector<double> serial = RunIndexed(n, 1);
    SetParallelForThreads(2);
    const std::vector<double> parallel = RunIndexed(n, 1);
    ASSERT_EQ(serial.size(), static_cast<size_t>(n));
    EXPECT_EQ(0, std::memcmp(serial.data(), parallel.data(), n * sizeof(double))) << "n " << n;
  }
}

TEST_F(ParallelForTest, ZeroElementsNeverCallsFn) {
  SetParallelForThreads(2);
  int calls = 0;
  ParallelFor(0, 1, [&](int, int64_t, int64_t) { ++calls; });
  ParallelFor(-3, 1, [&](int, int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST_F(ParallelForTest, SplitsOnlyAboveTheThresholdAndUsesTheHelper) {
  SetParallelForThreads(2);
  std::vector<int> seen;
  RunIndexed(1, 1, &seen);     // one element: one part
  RunIndexed(9, 5, &seen);     // parts would get fewer than 5: serial
  RunIndexed(10, 5, &seen);    // 5 + 5: split
  RunIndexed(1001, 1, &seen);  // split
  EXPECT_EQ(seen, (std::vector<int>{1, 1, 3, 3}));
  SetParallelForThreads(1);
  seen.clear();
  RunIndexed(1001, 1, &seen);
  EXPECT_EQ(seen, (std::vector<int>{1}));
}

TEST_F(ParallelForTest, PartOneRunsOnAnotherThreadAndPartsAreOrdered) {
  SetParallelForThreads(2);
  std::thread::id ids[2];
  int64_t ranges[2][2] = {{-1, -1}, {-1, -1}};
  ParallelFor(11, 1, [&](int part, int64_t begin, int64_t end) {
    ids[part] = std::this_thread::get_id();
    ranges[part][0] = begin;
    ranges[part][1] = end;
  });
  EXPECT_EQ(ids[0], std::this_thread::get_id());
  EXPECT_NE(ids[1], std::this_thread::get_id());
  EXPECT_EQ(ranges[0][0], 0);
  EXPECT_EQ(ranges[0][1], ranges[1][0]);
  EXPECT_EQ(ranges[1][1], 11);
}

TEST_F(ParallelForTest, NestedAndConcurrentCallsRunInline) {
  SetParallelForThreads(2);
  std::atomic<int64_t> sum{0};
  auto body = [&] {
    ParallelFor(100, 1, [&](int, int64_t b, int64_t e) {
      ParallelFor(e - b, 1, [&](int, int64_t ib, int64_t ie) {
        for (int64_t i = ib; i < ie; ++i) sum += b + i;
      });
    });
  };
  std::thread other(body);
  body();
  other.join();
  EXPECT_EQ(sum.load(), 2 * (99 * 100 / 2));
}

// Kernels that use ParallelFor: bit-identical results serial vs split, odd row counts.
std::vector<float> Pattern(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = std::sin(0.37f * static_cast<float>(i)) * 9.0f;
  for (int64_t i = 5; i < n; i += 17) v[i] = -65504.0f;  // masked-like entries
  return v;
}

TEST_F(ParallelForTest, KernelsGiveIdenticalResultsSerialAndSplit) {
  const std::vector<int64_t> shape = {3, 1031, 67};  // 207k elements: splits at every level
  const std::vector<float> x = Pattern(3 * 1031 * 67);
  std::vector<float> outs[2][5];
  for (int mode = 0; mode < 2; ++mode) {
    SetParallelForThreads(mode == 0 ? 1 : 2);
    std::vector<float>* o = outs[mode];
    o[0].resize(x.size());
    Softmax(x.data(), shape, 2, o[0].data(), Rounding::kNone);
    o[1].resize(x.size());
    Softmax(x.data(), shape, 1, o[1].data(), Rounding::kFp16);
    o[2].resize(3 * 1031);
    std::vector<float> scratch(x.size());
    Reduce(ReduceKind::kSum, x.data(), shape, {2}, o[2].data(), scratch.data());
    o[3].resize(x.size());
    CopyStrided(Strided{x.data(), {67, 3, 1031}, {1, 1031 * 67, 67}}, o[3].data());
    o[4].resize(x.size());
    EwGroup g{shape,
              {EwStep{EwOp::kExp, {0}, 0, 0, Rounding::kFp16},
               EwStep{EwOp::kMul, {-1, 1}, 0, 0, Rounding::kFp16}}};
    std::vector<float> ew_scratch(EwScratchFloats(g, 2));
    const std::vector<Strided> leaves = {Strided{x.data(), shape, {1031 * 67, 67, 1}},
                                         Strided{x.data(), shape, {0, 67, 1}}};
    RunEwGroup(g, leaves, o[4].data(), ew_scratch.data());
  }
  for (int k = 0; k < 5; ++k) {
    ASSERT_EQ(outs[0][k].size(), outs[1][k].size());
    EXPECT_EQ(0, std::memcmp(outs[0][k].data(), outs[1][k].data(), outs[0][k].size() * 4))
        << "kernel " << k;
  }
  // Last-axis softmax equals the textbook loop bit for bit (exp of every entry, even those the
  // kernel skips because they underflow to +0).
  for (int64_t r = 0; r < 3 * 1031; r += 97) {
    const float* src = x.data() + r * 67;
    float mx = -INFINITY, sum = 0.0f, e[67];
    for (int i = 0; i < 67; ++i) mx = std::max(mx, src[i]);
    for (int i = 0; i < 67; ++i) sum += (e[i] = std::exp(src[i] - mx));
    for (int i = 0; i < 67; ++i) {
      const float want = e[i] * (1.0f / sum);
      ASSERT_EQ(std::memcmp(&want, &outs[1][0][r * 67 + i], 4), 0) << "row " << r << " col " << i;
    }
  }
  // Rounding fused into the pass equals rounding afterwards.
  std::vector<float> rounded(x.size());
  Softmax(x.data(), shape, 2, rounded.data(), Rounding::kFp16);
  for (size_t i = 0; i < x.size(); i += 13) ASSERT_EQ(rounded[i], RoundToHalf(outs[1][0][i])) << i;
  // The causal-mask shortcut: masked entries are exactly +0 and rows sum to ~1.
  EXPECT_EQ(outs[0][0][5], 0.0f);
  EXPECT_FALSE(std::signbit(outs[0][0][5]));
  double row = 0;
  for (int i = 0; i < 67; ++i) row += outs[1][0][i];
  EXPECT_NEAR(row, 1.0, 1e-2);
}

}  // namespace
}  // namespace anerd::backend::cpu
