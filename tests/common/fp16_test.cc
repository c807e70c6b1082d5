#include "common/fp16.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace anerd {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Independent reference: pick the nearest fp16 by exhaustive search over the neighbours, ties to
// the even mantissa. Slow but obviously right.
uint16_t ReferenceToHalf(float f) {
  if (std::isnan(f)) return 0x7e00;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7c00;
  uint16_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const double err = std::fabs(static_cast<double>(HalfToFloat(static_cast<uint16_t>(h))) - a);
    if (err < best_err || (err == best_err && (h & 1) == 0)) {
      best = static_cast<uint16_t>(h);
      best_err = err;
    }
  }
  return sign | best;
}

TEST(Fp16Test, EveryHalfRoundTripsExactly) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
      continue;
    }
    EXPECT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
}

TEST(Fp16Test, KnownValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff) << "below the rounding boundary";
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00) << "overflow rounds to inf";
  EXPECT_EQ(FloatToHalf(-1e9f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001) << "smallest subnormal kept";
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000) << "tie rounds to even (zero)";
  EXPECT_EQ(FloatToHalf(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00) << "tie to even";
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02) << "tie to even (up)";
  EXPECT_FLOAT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u) << "negative zero kept";
}

TEST(Fp16Test, RandomFloatsMatchTheReference) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> exp(-30, 17);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  for (int i = 0; i < 300; ++i) {
    const float f = std::ldexp(mant(rng), exp(rng)) * (i % 2 ? -1.0f : 1.0f);
    EXPECT_EQ(FloatToHalf(f), ReferenceToHalf(f)) << f;
  }
}

TEST(Fp16Test, ArrayFormsAreBitIdenticalToScalar) {
  std::mt19937 rng(11);
  std::vector<float> src(1027);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (float& f : src) {
    uint32_t u = any_bits(rng);
    std::memcpy(&f, &u, 4);
    f = std::isnan(f) ? 1.5f : std::ldexp(f, 0);
  }
  src[3] = 70000.0f;
  src[5] = std::ldexp(1.0f, -20);
  std::vector<uint16_t> halves(src.size());
  FloatToHalfArray(src.data(), halves.data(), src.size());
  std::vector<float> back(src.size());
  HalfToFloatArray(halves.data(), back.data(), src.size());
  std::vector<float> rounded = src;
  RoundToHalfInPlace(rounded.data(), rounded.size());
  for (size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(halves[i], FloatToHalf(src[i])) << i;
    ASSERT_EQ(Bits(back[i]), Bits(HalfToFloat(halves[i]))) << i;
    ASSERT_EQ(Bits(rounded[i]), Bits(RoundToHalf(src[i]))) << i;
  }
}

}  // namespace
}  // namespace anerd
