#include "common/fp16.h"

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define ANERD_HAVE_F16C_PATH 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define ANERD_HAVE_NEON_PATH 1
#endif

namespace anerd {

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | (abs >> 13) : 0));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {  // result is subnormal or zero: shift mantissa with RNE
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to zero
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // value / 2^-24 = mant * 2^(exp - 126); exp in [102, 112]
    const uint32_t half_mant = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    uint32_t r = half_mant;
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  // Normal: rebias exponent and round mantissa to 10 bits with RNE.
  uint32_t r = abs - 0x38000000u;  // exponent 127 -> 15
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // carry may bump exponent (to inf too)
  return static_cast<uint16_t>(sign | r);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    x = sign;
  } else {  // subnormal: normalise
    uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    x = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}

#if defined(ANERD_HAVE_F16C_PATH)
namespace {

// F16C rounds with RNE and keeps subnormals, matching the scalar code bit for bit.
__attribute__((target("avx,f16c"))) size_t FloatToHalfF16c(const float* src, uint16_t* dst,
                                                           size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  return i;
}

__attribute__((target("avx,f16c"))) size_t HalfToFloatF16c(const uint16_t* src, float* dst,
                                                           size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  return i;
}

__attribute__((target("avx,f16c"))) size_t RoundToHalfF16c(float* data, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(data + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(data + i, _mm256_cvtph_ps(h));
  }
  return i;
}

// CPUID leaf 1: F16C, AVX and OSXSAVE, plus XCR0 saying the OS saves YMM state. (Clang 14 does not
// know __builtin_cpu_supports("f16c"), so the bits are read directly.)
bool DetectF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool bits = (ecx & bit_F16C) != 0 && (ecx & bit_AVX) != 0 && (ecx & bit_OSXSAVE) != 0;
  if (!bits) return false;
  unsigned lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0x6u) == 0x6u;
}

bool HasF16c() {
  static const bool has = DetectF16c();
  return has;
}

}  // namespace
#endif

#if defined(ANERD_HAVE_NEON_PATH)
namespace {
// FCVT honours the default FPCR rounding (RNE) and keeps subnormals (FZ16 is off by default).
size_t FloatToHalfNeon(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
  }
  return i;
}
size_t HalfToFloatNeon(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
  }
  return i;
}
}  // namespace
#endif

void FloatToHalfArray(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
#if defined(ANERD_HAVE_F16C_PATH)
  if (HasF16c()) i = FloatToHalfF16c(src, dst, n);
#elif defined(ANERD_HAVE_NEON_PATH)
  i = FloatToHalfNeon(src, dst, n);
#endif
  for (; i < n; ++i) dst[i] = FloatToHalf(src[i]);
}

void HalfToFloatArray(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
#if defined(ANERD_HAVE_F16C_PATH)
  if (HasF16c()) i = HalfToFloatF16c(src, dst, n);
#elif defined(ANERD_HAVE_NEON_PATH)
  i = HalfToFloatNeon(src, dst, n);
#endif
  for (; i < n; ++i) dst[i] = HalfToFloat(src[i]);
}

void RoundToHalfInPlace(float* data, size_t n) {
  size_t i = 0;
#if defined(ANERD_HAVE_F16C_PATH)
  if (HasF16c()) i = RoundToHalfF16c(data, n);
#endif
  for (; i < n; ++i) data[i] = RoundToHalf(data[i]);
}

}  // namespace anerd
