// The decoder's matrix-vector kernel against a double-precision dot product (every column count
// class: below, at and past the 8-wide body, row counts around the 4-row blocks, row ranges that
// start mid-matrix), and its row pool: every item exactly once, with one thread or several, nested
// calls and concurrent callers included.
#include "server/generation/matvec.h"

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/generation/parallel_rows.h"
#include "tests/generation/generation_test_util.h"

namespace anerd::generation {
namespace {

std::vector<float> Random(int64_t n, uint64_t seed) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(testing::Uniform(&seed));
  return v;
}

// Restores the automatic thread setting after a test.
class RowThreads {
 public:
  explicit RowThreads(int threads) : previous_(SetRowThreads(threads)) {}
  ~RowThreads() { SetRowThreads(previous_); }

 private:
  int previous_;
};

class MatVecKernelTest : public ::testing::TestWithParam<bool> {};

TEST_P(MatVecKernelTest, RowsMatchADoubleDotProduct) {
  const auto kernel = GetParam() ? MatVecRowsPortable : MatVecRows;
  for (int64_t cols : {1, 7, 8, 9, 16, 23, 64, 100, 288}) {
    for (int64_t rows : {1, 3, 4, 5, 9, 17}) {
      const std::vector<float> w = Random(rows * cols, 11 + cols), x = Random(cols, 3 + rows);
      for (int64_t begin : {int64_t{0}, rows / 2}) {
        std::vector<float> y(rows, -7.0f);
        kernel(w.data(), x.data(), cols, begin, rows, y.data());
        for (int64_t r = 0; r < rows; ++r) {
          if (r < begin) {
            EXPECT_EQ(y[r], -7.0f) << "row " << r << " outside the range was written";
            continue;
          }
          double want = 0, scale = 0;
          for (int64_t c = 0; c < cols; ++c) {
            want += static_cast<double>(w[r * cols + c]) * x[c];
            scale += std::fabs(static_cast<double>(w[r * cols + c]) * x[c]);
          }
          EXPECT_NEAR(y[r], want, 1e-6 * (scale + 1)) << "cols " << cols << " row " << r;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, MatVecKernelTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Portable" : "Dispatched"; });

TEST(MatVecTest, SameResultOnOneOrSeveralThreads) {
  const int64_t rows = 1000, cols = 96;
  const std::vector<float> w = Random(rows * cols, 5), x = Random(cols, 6);
  std::vector<float> one(rows), many(rows);
  {
    RowThreads t(1);
    MatVec(w.data(), x.data(), rows, cols, one.data());
  }
  RowThreads t(kMaxRowHelpers + 1);
  for (int i = 0; i < 50; ++i) {
    MatVec(w.data(), x.data(), rows, cols, many.data());
    ASSERT_EQ(one, many) << "call " << i;
  }
}

void ExpectEachItemOnce(int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(n);
  ParallelRows(n, grain, [&](int64_t begin, int64_t end) {
    ASSERT_LE(0, begin);
    ASSERT_LT(begin, end);
    ASSERT_LE(end, n);
    for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "item " << i << " of " << n;
}

TEST(ParallelRowsTest, RunsEveryItemExactlyOnce) {
  for (int threads : {1, 2, kMaxRowHelpers + 1, 0}) {
    RowThreads t(threads);
    for (int i = 0; i < 200; ++i) ExpectEachItemOnce(1 + i * 37, 1 + i % 9);
    ExpectEachItemOnce(0, 4);
  }
}

TEST(ParallelRowsTest, NestedAndConcurrentCallsRunInline) {
  RowThreads t(2);
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([] {
      for (int i = 0; i < 100; ++i) {
        std::atomic<int64_t> inner{0};
        ParallelRows(64, 4, [&](int64_t begin, int64_t end) {
          for (int64_t j = begin; j < end; ++j) {
            ParallelRows(32, 2, [&](int64_t b, int64_t e) { inner.fetch_add(e - b); });
          }
        });
        ASSERT_EQ(inner.load(), 64 * 32);
      }
    });
  }
  for (std::thread& c : callers) c.join();
}

}  // namespace
}  // namespace anerd::generation
