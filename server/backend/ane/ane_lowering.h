// Lowering a verified MIL program to what an ANE device accepts, under the rules table
// (common/mil/ane_rules.h; issue 18 item 2). The output satisfies every rule of the table that
// a rewrite can satisfy (CheckAneProgram on it reports only rules no rewrite can fix, e.g. a
// user's conv with 32,000 input channels):
//   * I/O surfaces: each logical input/output that is fp16/fp32, rank 4 and whose width (last
//     dim) is a multiple of surface_width_multiple gets its own surface when the rules allow
//     several (multi_input_surfaces / multi_output_surfaces); parameters and results are declared
//     in alphabetical order and bound in that order (alphabetical_binding), every input (output)
//     surface is allocated the same size: the largest tensor's bytes, at least min_surface_bytes,
//     rounded up to surface_alignment (over-allocated: the device reads the first C*S values).
//   * Otherwise all inputs are packed into one [1, C, 1, W] surface (W = surface_width_multiple,
//     C >= min_pack_channels) and sliced apart inside the program (reshape to [1, C*W, 1, 1],
//     slice_by_size on channels, reshape, cast when the surface dtype differs); all outputs are
//     cast, reshaped to [1, n, 1, 1], concatenated on channels (never on the width axis) with
//     zero padding, and reshaped to [1, C, 1, W]. The surface dtype is fp16 when every packed
//     tensor is fp16 (no cast: the fast path, docs/ANE_NOTES.md §1.8), else fp32 (exact for fp16
//     and small integers); where the chip cannot run `cast` (cast_supported false) packing never
//     casts and non-fp16 I/O that would need it is UNIMPLEMENTED.
//   * Op rewrites (ane_lowering_ops.cc): gelu -> tanh/sigmoid ops; concat on a non-channel axis ->
//     transposes around a channel concat; softmax over a non-power-of-two axis -> padded with
//     -65504, softmax, slice; scaled_dot_product_attention with an attn_mask that must be honoured
//     -> matmul + mask + softmax + matmul.
//   * buildInfo added when the program has none; weight files re-keyed by the exact BLOBFILE path
//     ("@model_path/weights/w.bin") and passed through unchanged.
// Pure functions; thread-safe.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_LOWERING_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_LOWERING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mil/ane_rules.h"
#include "common/mil/ir.h"
#include "common/mil/verifier.h"
#include "server/backend/ane/ane_device.h"
#include "server/backend/backend.h"

namespace anerd::backend::ane {

struct LoweringOptions {
  mil::AneRules rules;  // the device's rules in force (DeviceInfo::rules)
  bool device_honors_attn_mask = false;
  bool honor_attn_mask = true;  // the caller wants masks applied (CompileOptions::ignore_attn_mask)
};

// Where one logical input/output lives in the device surfaces.
struct SurfaceSlot {
  std::string name;      // the logical tensor's name
  mil::TensorType type;  // its logical type
  int surface = 0;       // index of the surface in binding order (0 when packed)
  int64_t offset = 0;    // element offset inside the surface
};

struct LoweredProgram {
  mil::Program program;  // what the device compiles
  std::string mil_text;  // PrintProgram(program)
  std::vector<DeviceWeightFile> weights;
  // The device program's inputs/outputs in binding order, and the bytes to allocate for each
  // surface (>= the tensor's bytes; uniform within inputs and within outputs).
  std::vector<mil::TensorType> input_surfaces;
  std::vector<mil::TensorType> output_surfaces;
  std::vector<int64_t> input_surface_bytes;
  std::vector<int64_t> output_surface_bytes;
  std::vector<SurfaceSlot> inputs;   // logical inputs (function order)
  std::vector<SurfaceSlot> outputs;  // logical outputs (`-> (...)` order)
  bool packed_inputs = false;
  bool packed_outputs = false;
  bool attention_rewritten = false;
};

// UNIMPLEMENTED for I/O that no surface can carry (string, uint64), or that the rules leave no
// way to carry (several outputs, one output surface and concat banned; a cast the chip lacks).
absl::StatusOr<LoweredProgram> LowerForAne(const mil::VerifiedProgram& program,
                                           const LoweringOptions& options);

// The bytes to allocate for surfaces holding `tensor_bytes` (the largest of a uniform group).
int64_t SurfaceAllocationBytes(int64_t tensor_bytes, const mil::AneRules& rules);

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_LOWERING_H_
