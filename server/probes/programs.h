// MIL programs for the hardware probes (docs/ANE_NOTES.md §7): peak throughput (chains of 1×1
// convs), SRAM spill (one conv over a channel sweep), dispatch latency (the smallest kernel) and
// int8 vs fp16 (W8A8 with constexpr_affine_dequantize weights and quantize/dequantize between
// layers).
//
// Weights are pseudo-random from a seeded generator (SplitMix64; identical on every platform),
// uniform in ±sqrt(3/C) so activations keep unit variance through a chain; one weight file per
// layer (weights/w<i>.bin, BLOBFILE offset 64), the portable layout (docs/ANE_NOTES.md §2.3). Probe
// programs are timing workloads, but their numerics are well defined so backends can be
// cross-checked. Thread-safety: pure functions.
#ifndef ANERD_SERVER_PROBES_PROGRAMS_H_
#define ANERD_SERVER_PROBES_PROGRAMS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/mil/ir.h"
#include "common/mil/weights.h"

namespace anerd::probes {

struct ProbeProgram {
  mil::Program program;
  mil::WeightFiles weights;
  int64_t flops = 0;         // 2 multiply-adds per weight per output position, whole program
  int64_t weight_bytes = 0;  // bytes of weight data (excluding blob headers)
};

// Bounds every probe accepts: 1 <= channels <= 16384, 1 <= spatial <= 16384, 1 <= depth <= 512,
// and at most 2^31 elements in any one tensor. INVALID_ARGUMENT otherwise.
inline constexpr int64_t kMaxProbeChannels = 16384;
inline constexpr int64_t kMaxProbeSpatial = 16384;
inline constexpr int kMaxProbeDepth = 512;

// Activation scale of the W8A8 program's quantize/dequantize pairs (the seed's 0.125).
inline constexpr double kInt8ActivationScale = 0.125;

// `depth` chained convs C -> C on x [1,C,1,spatial]. With fp32_io (the seed's probes) the input
// and output are fp32 and cast to/from fp16 around the chain; else fp16 I/O.
absl::StatusOr<ProbeProgram> PeakProgram(int64_t channels, int64_t spatial, int depth,
                                         uint64_t seed, bool fp32_io = true);
// One conv (the SRAM probe sweeps channels at fixed spatial).
absl::StatusOr<ProbeProgram> SramProgram(int64_t channels, int64_t spatial, uint64_t seed,
                                         bool fp32_io = true);
// The smallest kernel worth timing: one 64-channel conv over 64 positions, fp16 I/O.
absl::StatusOr<ProbeProgram> LatencyProgram(uint64_t seed);
// ane_int8_bench: x [1,C,spatial,spatial] fp16 in and out, `depth` convs. FP16 variant: fp16
// BLOBFILE weights. W8A8 variant: each weight is constexpr_affine_dequantize of per-tensor
// symmetric int8 data (scale from QuantizeInt8PerTensor, zero point 0, axis 0), and every layer
// but the last is followed by quantize(int8, kInt8ActivationScale) -> dequantize. Both variants
// draw the same float weights for the same seed.
absl::StatusOr<ProbeProgram> Int8Program(int64_t channels, int64_t spatial, int depth, bool w8a8,
                                         uint64_t seed);

}  // namespace anerd::probes

#endif  // ANERD_SERVER_PROBES_PROGRAMS_H_
