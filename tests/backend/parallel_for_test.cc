// ParallelFor (server/backend/cpu/kernels/parallel.h): every index is visited exactly once, the
// parts are contiguous and ordered, small ranges stay serial, the helper really runs part 1, and
// results equal the serial loop for odd sizes and 0/1 elements; kernels that split their passes
// give identical results in both modes. The one-pool contract: BLAS is single-threaded once
// configured, GEMMs split into shape-determined blocks (same bits on one thread or two), and
// short jobs do not make automatic mode back off. CPU seats (cpu_seats.h): while one is held the
// pool runs inline, and a helper already in a job stops taking chunks.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "common/fp16.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/cpu_seats.h"

#if !defined(ANERD_BLAS_ACCELERATE)
#include <cblas.h>
#endif

namespace anerd::backend::cpu {
namespace {

// Restores the automatic mode after each test.
class ParallelForTest : public ::testing::Test {
 protected:
  void TearDown() override { SetParallelForThreads(0); }
};

// What one ParallelFor call did.
struct Trace {
  std::vector<double> out;  // out[i] computed from i
  int parts = 0;            // bit p set when part p ran
  int calls = 0;
  std::thread::id ids[2];
};

// A per-index computation whose result would change if an index ran twice or not at all. With
// `wait_for_helper`, each part pauses after its first range until the other part has run one (so
// the split is observable however late either thread gets a core; 10 s at most).
Trace RunIndexed(int64_t n, int64_t min_part, bool wait_for_helper = false) {
  Trace t;
  t.out.assign(std::max<int64_t>(n, 0), -1.0);
  std::vector<int> visits(t.out.size(), 0);
  std::atomic<int> parts{0}, calls{0};
  ParallelFor(n, min_part, [&](int part, int64_t begin, int64_t end) {
    parts.fetch_or(1 << part);
    ++calls;
    t.ids[part] = std::this_thread::get_id();
    EXPECT_LE(0, begin);
    EXPECT_LT(begin, end);
    EXPECT_LE(end, n);
    for (int64_t i = begin; i < end; ++i) {
      ++visits[i];
      t.out[i] = std::sin(static_cast<double>(i)) * 3.0;
    }
    for (int ms = 0; wait_for_helper && parts.load() != 3 && ms < 10000; ++ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (size_t i = 0; i < visits.size(); ++i) EXPECT_EQ(visits[i], 1) << "index " << i;
  t.parts = parts.load();
  t.calls = calls.load();
  return t;
}

TEST_F(ParallelForTest, MatchesSerialLoopForOddAndTinySizes) {
  for (int64_t n : {0, 1, 2, 3, 7, 1001, 65537}) {
    SetParallelForThreads(1);
    const Trace serial = RunIndexed(n, 1);
    SetParallelForThreads(2);
    const Trace parallel = RunIndexed(n, 1);
    ASSERT_EQ(serial.out.size(), static_cast<size_t>(n));
    EXPECT_EQ(0, std::memcmp(serial.out.data(), parallel.out.data(), n * sizeof(double)))
        << "n " << n;
  }
}

TEST_F(ParallelForTest, ZeroElementsNeverCallsFn) {
  SetParallelForThreads(2);
  int calls = 0;
  ParallelFor(0, 1, [&](int, int64_t, int64_t) { ++calls; });
  ParallelFor(-3, 1, [&](int, int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST_F(ParallelForTest, SplitsOnlyAboveTheThreshold) {
  SetParallelForThreads(2);
  for (auto [n, min_part] : {std::pair<int64_t, int64_t>{1, 1}, {9, 5}, {1000, 600}}) {
    const Trace t = RunIndexed(n, min_part);  // parts would get fewer than min_part: inline
    EXPECT_EQ(t.parts, 1) << n;
    EXPECT_EQ(t.calls, 1) << n;
    EXPECT_EQ(t.ids[0], std::this_thread::get_id());
  }
  const Trace two = RunIndexed(10, 5, /*wait_for_helper=*/true);
  EXPECT_EQ(two.parts, 3);
  EXPECT_EQ(two.calls, 2);
  const Trace many = RunIndexed(100003, 7, /*wait_for_helper=*/true);
  EXPECT_EQ(many.parts, 3);
  EXPECT_LE(many.calls, 16);
  EXPECT_EQ(many.ids[0], std::this_thread::get_id());
  EXPECT_NE(many.ids[1], std::this_thread::get_id());
  SetParallelForThreads(1);
  const Trace serial = RunIndexed(100003, 7);
  EXPECT_EQ(serial.parts, 1);
  EXPECT_EQ(serial.calls, 1);
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

TEST_F(ParallelForTest, HeldCpuSeatKeepsTheHelperOut) {
  SetParallelForThreads(2);
  {
    ScopedCpuSeat seat;  // e.g. the trainer's dW worker running a GEMM on the other core
    EXPECT_EQ(CpuSeatsHeld(), 1);
    const Trace t = RunIndexed(100003, 7);
    EXPECT_EQ(t.parts, 1);
    EXPECT_EQ(t.calls, 1);  // one inline call, not the caller working through chunks
    EXPECT_EQ(t.ids[0], std::this_thread::get_id());
  }
  EXPECT_EQ(CpuSeatsHeld(), 0);
  const Trace t = RunIndexed(100003, 7, /*wait_for_helper=*/true);  // the seat is free again
  EXPECT_EQ(t.parts, 3);
}

TEST_F(ParallelForTest, HelperTakesNoChunkAfterASeatIsTaken) {
  SetParallelForThreads(2);
  std::atomic<bool> helper_in{false}, seat_taken{false};
  std::atomic<int> helper_chunks{0}, caller_chunks{0};
  std::unique_ptr<ScopedCpuSeat> seat;
  auto wait_until = [](const std::atomic<bool>& flag) {  // 10 s at most
    for (int ms = 0; !flag.load() && ms < 10000; ++ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  ParallelFor(1600, 100, [&](int part, int64_t, int64_t) {  // 16 chunks
    if (part == 1) {
      ++helper_chunks;
      helper_in = true;
      wait_until(seat_taken);
      return;
    }
    if (++caller_chunks == 1) {  // the helper is inside its first chunk when the seat is taken
      wait_until(helper_in);
      seat = std::make_unique<ScopedCpuSeat>();
      seat_taken = true;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // leave chunks to take
    }
  });
  seat.reset();
  EXPECT_TRUE(helper_in.load());
  EXPECT_EQ(helper_chunks.load(), 1);
  EXPECT_EQ(caller_chunks.load(), 15);
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
  // Last-axis softmax agrees to a few ulp with exp and sum in double of the same float
  // differences x - max (exp is ExpArray, sums run in eight lanes).
  for (int64_t r = 0; r < 3 * 1031; r += 97) {
    const float* src = x.data() + r * 67;
    double mx = -INFINITY, sum = 0.0, e[67];
    for (int i = 0; i < 67; ++i) mx = std::max<double>(mx, src[i]);
    for (int i = 0; i < 67; ++i) sum += (e[i] = std::exp(src[i] - static_cast<float>(mx)));
    for (int i = 0; i < 67; ++i) {
      const double want = e[i] / sum;
      ASSERT_NEAR(outs[0][0][r * 67 + i], want, 4e-7 * want + 1e-30) << "row " << r << " col " << i;
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

// Rows that stress the last-axis softmax: signed zero maxima, NaN, -inf, all entries masked but
// one; 70 entries (eight-lane max and sum plus a tail). Compared with a double-precision softmax.
TEST_F(ParallelForTest, SoftmaxRowEdgeCasesMatchADoubleSoftmax) {
  constexpr int kN = 70;
  std::vector<float> x(5 * kN, -65504.0f);
  x[0 * kN + 3] = -0.0f;
  x[0 * kN + 40] = 0.0f;
  x[1 * kN + 69] = 0.0f;
  x[1 * kN + 1] = -0.0f;
  x[2 * kN + 7] = NAN;
  x[2 * kN + 8] = 1.0f;
  for (int i = 0; i < kN; ++i) x[3 * kN + i] = i == 66 ? 2.0f : -INFINITY;
  for (int i = 0; i < kN; ++i) x[4 * kN + i] = std::cos(static_cast<float>(i)) * 120.0f;
  std::vector<float> got(x.size());
  Softmax(x.data(), {5, kN}, 1, got.data(), Rounding::kNone);
  // Row 0: two zero maxima of either sign share the mass exactly; masked entries are exactly +0.
  EXPECT_EQ(got[0 * kN + 3], 0.5f);
  EXPECT_EQ(got[0 * kN + 40], 0.5f);
  EXPECT_EQ(got[0 * kN + 0], 0.0f);
  EXPECT_FALSE(std::signbit(got[0 * kN + 0]));
  EXPECT_EQ(got[1 * kN + 69], 0.5f);
  EXPECT_EQ(got[1 * kN + 1], 0.5f);
  for (int i = 0; i < kN; ++i) EXPECT_TRUE(std::isnan(got[2 * kN + i])) << i;  // NaN poisons
  for (int i = 0; i < kN; ++i) EXPECT_EQ(got[3 * kN + i], i == 66 ? 1.0f : 0.0f) << i;
  const float* src = x.data() + 4 * kN;
  double mx = -INFINITY, sum = 0.0, e[kN];
  for (int i = 0; i < kN; ++i) mx = std::max<double>(mx, src[i]);
  for (int i = 0; i < kN; ++i) sum += (e[i] = std::exp(src[i] - static_cast<float>(mx)));
  for (int i = 0; i < kN; ++i) {
    EXPECT_NEAR(got[4 * kN + i], e[i] / sum, 4e-7 * (e[i] / sum) + 1e-38) << i;
  }
}

// Ulps between a float and the exactly rounded double (both finite, same sign).
double UlpError(float got, double exact) {
  const float rounded = static_cast<float>(exact);
  const double ulp = std::nextafter(std::abs(rounded), INFINITY) - std::abs(rounded);
  return std::abs(static_cast<double>(got) - exact) / ulp;
}

TEST(ExpArray, WithinTwoUlpAndExactAtTheEdges) {
  std::vector<float> x;
  for (double v = -104.5; v <= 89.0; v += 1.0 / 4096) x.push_back(static_cast<float>(v));
  for (uint32_t bits = 0x3f800000u; bits < 0x3f900000u; bits += 7) {  // dense near 1 and -1
    float f;
    std::memcpy(&f, &bits, 4);
    x.push_back(f);
    x.push_back(-f);
  }
  std::vector<float> y(x.size());
  ExpArray(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(ExpScalar(x[i]), y[i]) << x[i];  // every code path gives the same bits
    const double exact = std::exp(static_cast<double>(x[i]));
    if (exact > 3.4028234e38) {
      ASSERT_EQ(y[i], INFINITY) << x[i];
    } else if (exact < std::numeric_limits<float>::min()) {  // subnormal or zero result
      ASSERT_NEAR(y[i], exact, std::numeric_limits<float>::denorm_min()) << x[i];
    } else {
      worst = std::max(worst, UlpError(y[i], exact));
      ASSERT_LE(UlpError(y[i], exact), 2.0) << x[i];
    }
  }
  EXPECT_GT(worst, 0.0);  // the sweep really compared something
  const float specials[] = {0.0f, -0.0f, -INFINITY, INFINITY, NAN, -1e30f, 1e30f, 88.8f, -104.0f};
  float out[9];
  ExpArray(specials, out, 9);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[3], INFINITY);
  EXPECT_TRUE(std::isnan(out[4]));
  EXPECT_EQ(out[5], 0.0f);
  EXPECT_EQ(out[6], INFINITY);
  EXPECT_EQ(out[7], INFINITY);
  EXPECT_EQ(out[8], 0.0f);
  // In place.
  std::vector<float> z = x;
  ExpArray(z.data(), z.data(), static_cast<int64_t>(z.size()));
  EXPECT_EQ(0, std::memcmp(z.data(), y.data(), y.size() * 4));
}

// ---- one pool: BLAS single-threaded, GEMMs split by the backend ---------------------------------

TEST_F(ParallelForTest, ConfigureBlasThreadingMakesBlasSingleThreadedAndKeepsTheCores) {
#if !defined(ANERD_BLAS_ACCELERATE)
  const int before = openblas_get_num_threads();  // > 1 only if nothing configured it yet
#endif
  const int width = ConfigureBlasThreading();
  EXPECT_TRUE(width == 1 || width == 2) << width;
  if (std::thread::hardware_concurrency() <= 1) {
    EXPECT_EQ(width, 1);
  }
#if !defined(ANERD_BLAS_ACCELERATE)
  if (before > 1 && std::thread::hardware_concurrency() > 1) {
    EXPECT_EQ(width, 2);
  }
  EXPECT_EQ(openblas_get_num_threads(), 1);  // nobody spins between our GEMMs any more
#endif
  EXPECT_EQ(ConfigureBlasThreading(), width);  // the first call decides
}

#if defined(ANERD_BLAS_ACCELERATE)
constexpr bool kPoolSplitsGemms = false;  // Accelerate runs its GEMMs on its own threads
#else
constexpr bool kPoolSplitsGemms = true;
#endif

TEST(GemmBlocks, DependOnTheShapeOnly) {
  const int64_t four = kPoolSplitsGemms ? 4 : 1, two = kPoolSplitsGemms ? 2 : 1;
  EXPECT_EQ(GemmBlocks(64, 64, 64), 1);         // tiny: one cblas call
  EXPECT_EQ(GemmBlocks(1024, 64, 1024), four);  // conv 1x1 1024 ch: four blocks of 256 rows
  EXPECT_EQ(GemmBlocks(64, 2048, 768), four);   // wide: split by columns
  EXPECT_EQ(GemmBlocks(40, 40, 1 << 20), two);  // huge K but only 40 rows: blocks of 24 and 16
  EXPECT_EQ(GemmBlocks(16, 16, 1 << 20), 1);
  EXPECT_EQ(GemmBlocks(0, 100, 100), 1);
}

// C = A·B in double for an M x N x K product of row-major A (or Aᵀ stored K x M).
std::vector<double> NaiveProduct(const std::vector<float>& a, bool a_transposed,
                                 const std::vector<float>& b, int64_t m, int64_t n, int64_t k) {
  std::vector<double> c(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      const double av = a_transposed ? a[p * m + i] : a[i * k + p];
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += av * b[p * n + j];
    }
  }
  return c;
}

// Split GEMMs (by rows, by columns, transposed operand, C stored transposed, accumulating) give
// the same bits on one thread and on two, and the right product.
TEST_F(ParallelForTest, SplitGemmIsExactAndIndependentOfThreads) {
  struct Case {
    int64_t m, n, k;
    bool a_transposed, c_transposed, accumulate;
  };
  for (const Case& tc :
       {Case{1024, 64, 300, false, false, false}, Case{72, 900, 200, true, false, true},
        Case{520, 130, 257, false, true, false}}) {
    if (kPoolSplitsGemms) {
      ASSERT_GE(GemmBlocks(tc.m, tc.n, tc.k), 2) << tc.m;
    }
    std::vector<float> a = Pattern(tc.m * tc.k), b = Pattern(tc.k * tc.n);
    for (float& v : a) v = v > -1000.0f ? v * 0.1f : 0.5f;
    for (float& v : b) v = v > -1000.0f ? v * 0.1f : -0.25f;
    const MatRef am = tc.a_transposed ? MatRef{a.data(), 1, tc.m} : MatRef{a.data(), tc.k, 1};
    std::vector<float> got[2];
    for (int mode = 0; mode < 2; ++mode) {
      SetParallelForThreads(mode + 1);
      got[mode].assign(tc.m * tc.n, 1.0f);  // accumulate adds to 1
      const MatOut c =
          tc.c_transposed ? MatOut{got[mode].data(), 1, tc.m} : MatOut{got[mode].data(), tc.n, 1};
      Gemm(tc.m, tc.n, tc.k, am, MatRef{b.data(), tc.n, 1}, c, tc.accumulate);
    }
    ASSERT_EQ(0, std::memcmp(got[0].data(), got[1].data(), got[0].size() * 4)) << tc.m;
    const std::vector<double> want = NaiveProduct(a, tc.a_transposed, b, tc.m, tc.n, tc.k);
    for (int64_t i = 0; i < tc.m; ++i) {
      for (int64_t j = 0; j < tc.n; j += 7) {
        const float v = tc.c_transposed ? got[1][j * tc.m + i] : got[1][i * tc.n + j];
        const double w = want[i * tc.n + j] + (tc.accumulate ? 1.0 : 0.0);
        ASSERT_NEAR(v, w, 1e-3 * (1.0 + std::abs(w))) << tc.m << " " << i << "," << j;
      }
    }
  }
}

// A batched matmul spreads its batch entries over the pool; operands cblas cannot read in place
// (no unit stride) are copied into per-part scratch, concurrently. Same bits either way.
TEST_F(ParallelForTest, BatchedMatmulWithCopiedOperandsIsIndependentOfThreads) {
  constexpr int64_t kB = 6, kM = 128, kK = 160, kN = 136;
  ASSERT_GE(kM * kN * kK, int64_t{1} << 21);  // large enough to go to the pool entry by entry
  std::vector<float> x = Pattern(kB * kM * kK * 2), y = Pattern(kB * kK * kN);
  for (float& v : x) v = v > -1000.0f ? v * 0.05f : 0.125f;  // no masked-like entries here
  for (float& v : y) v = v > -1000.0f ? v * 0.05f : -0.5f;
  MatmulArgs args;
  // x: every second float of a [B, M, 2K] buffer, so no dimension has a unit stride.
  args.x = Strided{x.data(), {kB, kM, kK}, {kM * kK * 2, kK * 2, 2}};
  args.y = Strided{y.data(), {kB, kK, kN}, {kK * kN, kN, 1}};
  args.out_shape = {kB, kM, kN};
  args.out_strides = {kM * kN, kN, 1};
  std::vector<float> scratch(MatmulScratchFloats(args));
  std::vector<float> got[2];
  for (int mode = 0; mode < 2; ++mode) {
    SetParallelForThreads(mode + 1);
    got[mode].assign(kB * kM * kN, -7.0f);
    Matmul(args, got[mode].data(), scratch.data(), Rounding::kFp16);
  }
  ASSERT_EQ(0, std::memcmp(got[0].data(), got[1].data(), got[0].size() * 4));
  for (int64_t bi = 0; bi < kB; bi += 5) {
    for (int64_t i = 0; i < kM; i += 31) {
      for (int64_t j = 0; j < kN; j += 17) {
        double want = 0;
        for (int64_t p = 0; p < kK; ++p) {
          want += static_cast<double>(x[bi * kM * kK * 2 + i * kK * 2 + p * 2]) *
                  y[bi * kK * kN + p * kN + j];
        }
        const float v = got[1][(bi * kM + i) * kN + j];
        EXPECT_EQ(v, RoundToHalf(v));  // rounded per entry right after its GEMM
        EXPECT_NEAR(v, want, 2e-3 * (1.0 + std::abs(want))) << bi << " " << i << " " << j;
      }
    }
  }
}

// Automatic mode must not back off because of short jobs: a helper that wakes in a normal few
// tens of microseconds misses its share of a 20 µs conversion on an idle machine, and backing off
// then kept the long GEMMs that followed on one core (conv 1x1 ran at half speed).
TEST_F(ParallelForTest, ShortJobsTheHelperMissesDoNotStopLongJobsFromSplitting) {
  SetParallelForThreads(0);
  if (ConfigureBlasThreading() < 2) GTEST_SKIP() << "the pool has one thread on this machine";
  for (int i = 0; i < 200; ++i) {
    ParallelFor(2, 1, [](int, int64_t, int64_t) {});  // microseconds: the helper rarely joins
  }
  const Trace t = RunIndexed(64, 1, /*wait_for_helper=*/true);
  EXPECT_EQ(t.parts, 3) << "the helper was not offered the long job";
}

}  // namespace
}  // namespace anerd::backend::cpu
