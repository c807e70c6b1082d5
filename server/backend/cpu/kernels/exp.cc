// exp over float arrays without libm: range reduction x = n·ln2 + r (|r| <= ln2/2, ln2 split in a
// 9-bit head and a tail so n·head is exact), a degree-6 polynomial for e^r (Cephes' expf
// coefficients) and the scaling by 2^n done as two exact power-of-two factors, so subnormal
// results are rounded once, at the end. Every step is a plain float operation or a select, so the
// loop vectorises (SSE2 everywhere; AVX2 where the CPU has it) and every path gives the same bits:
// no FMA is used on x86 (an FMA would round differently from the separate multiply and add).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "server/backend/cpu/kernels/kernels.h"

namespace anerd::backend::cpu {
namespace {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;     // 9 significant bits: n * kLn2Hi is exact
constexpr float kLn2Lo = -2.12194440e-4f;  // ln2 - kLn2Hi
constexpr float kRound = 12582912.0f;      // 1.5 * 2^23: (t + kRound) - kRound rounds t to nearest
constexpr float kMaxArg = 88.7228394f;     // above: +inf
constexpr float kMinNormal = -87.0f;       // e^-87 > FLT_MIN: above, no subnormal on the way
constexpr float kMinArg = -104.0f;         // below: +0 (exp(-104) < 2^-150, rounds to 0)

inline float PowerOfTwo(int32_t e) {  // 2^e for e in [-126, 127]
  const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// e^x for x in [kMinArg, kMaxArg]: e^r by the polynomial, then the two exact power-of-two factors
// (subnormal results are rounded once, by the last multiply).
inline float ExpCore(float x) {
  const float n = (x * kLog2e + kRound) - kRound;  // in [-150, 128]
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t half = ni >> 1;  // both halves in [-75, 64]: normal powers of two
  return p * PowerOfTwo(half) * PowerOfTwo(ni - half);
}

// The vectorised pass. Arguments below kMinNormal give +0 here: computing their subnormal
// results would take a microcode assist per element on x86 (~100 cycles; a causal mask makes
// half of a softmax's entries that small), so ExpArray recomputes the few in
// [kMinArg, kMinNormal) afterwards. Every comparison is made unconditionally so the selects
// if-convert. Built with -ffp-contract=off (same bits with and without FMA hardware) and
// -fno-trapping-math (both sides of a select may be computed), and cloned for AVX2 where the
// toolchain supports it (ANERD_HAVE_TARGET_CLONES): server/backend/CMakeLists.txt.
#if defined(ANERD_HAVE_TARGET_CLONES) && defined(__x86_64__)
__attribute__((target_clones("avx2", "default")))
#endif
void ExpLoop(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = src[i];
    const bool under = x<kMinNormal, over = x> kMaxArg, nan = x != x;
    float xc = under ? kMinNormal : x;
    xc = over ? kMaxArg : xc;
    xc = nan ? 0.0f : xc;  // keeps NaN out of the float-to-int conversion
    const float y = ExpCore(xc);
    float out = under ? 0.0f : y;
    out = over ? std::numeric_limits<float>::infinity() : out;
    dst[i] = nan ? x : out;  // NaN stays NaN
  }
}

}  // namespace

void ExpArray(const float* src, float* dst, int64_t n) {
  constexpr int64_t kChunk = 256;
  float x[kChunk];  // the chunk's arguments (dst may equal src)
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = std::min(kChunk, n - i0);
    std::memcpy(x, src + i0, m * sizeof(float));
    ExpLoop(x, dst + i0, m);
    int band = 0;
    for (int64_t i = 0; i < m; ++i) band |= (x[i] < kMinNormal) & (x[i] >= kMinArg);
    if (band == 0) continue;
    for (int64_t i = 0; i < m; ++i) {
      if (x[i] < kMinNormal && x[i] >= kMinArg) dst[i0 + i] = ExpCore(x[i]);
    }
  }
}

float ExpScalar(float x) {
  float y;
  ExpArray(&x, &y, 1);
  return y;
}

}  // namespace anerd::backend::cpu
