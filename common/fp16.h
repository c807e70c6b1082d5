// IEEE 754 binary16 conversion. Round-to-nearest-even, subnormals kept, overflow to +/-inf, NaN
// kept quiet: the behaviour the ANE shows at every fp16 store (docs/ANE_NOTES.md §3.5). The
// array functions use F16C on x86-64 (detected at run time) and NEON on arm64, scalar code
// otherwise; all paths give bit-identical results. Thread-safe (pure functions).
#ifndef ANERD_COMMON_FP16_H_
#define ANERD_COMMON_FP16_H_

#include <cstddef>
#include <cstdint>

namespace anerd {

// Converts one float to binary16 bits.
uint16_t FloatToHalf(float f);
// Converts binary16 bits to float (exact).
float HalfToFloat(uint16_t h);
// Rounds a float to the nearest representable fp16 value (returned as float).
inline float RoundToHalf(float f) { return HalfToFloat(FloatToHalf(f)); }

// Array forms; `src` and `dst` may not overlap, except RoundToHalfInPlace.
void FloatToHalfArray(const float* src, uint16_t* dst, size_t n);
void HalfToFloatArray(const uint16_t* src, float* dst, size_t n);
void RoundToHalfInPlace(float* data, size_t n);

}  // namespace anerd

#endif  // ANERD_COMMON_FP16_H_
