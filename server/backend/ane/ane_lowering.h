// Lowering a verified MIL program to what an ANE device accepts (ane-seed-spec 1.3, 1.4, 1.8, 11):
//   * canonical MIL text (mil/printer.h) of a program that takes at most `max_inputs` inputs and
//     returns at most `max_outputs` outputs, each fp16 or fp32 with a byte size the device's
//     surface rules accept. When the program's own I/O does not fit, all inputs are packed into one
//     flat surface tensor [1, 1, 1, N] and sliced apart inside the program (slice_by_size ->
//     reshape -> cast), and all outputs are cast, flattened and concatenated into one (spec 11:
//     "pack multiple operands ... and slice_by_size them apart inside MIL"); N is padded up to
//     the surface size rules. The surface dtype is fp16 when every logical input and output is
//     fp16 (fp16 I/O, no cast at the ends: the faster path for hot kernels, spec 1.8) and fp32
//     otherwise (exact for fp16, and for int32/int16/int8/uint8/bool values used as indices).
//   * scaled_dot_product_attention with an attn_mask that must be honoured is rewritten as
//     matmul(q, k^T) * 1/sqrt(E) + mask -> softmax -> matmul(v) when the device ignores masks.
//   * weight files re-keyed by the exact BLOBFILE path string ("@model_path/weights/w.bin") and
//     passed through unchanged (they are already blob format, spec 2; the verifier checked them).
// Pure functions; thread-safe.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_LOWERING_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_LOWERING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mil/ir.h"
#include "common/mil/verifier.h"
#include "server/backend/ane/ane_device.h"
#include "server/backend/backend.h"

namespace anerd::backend::ane {

struct LoweringOptions {
  int max_inputs = 1;
  int max_outputs = 1;
  int64_t surface_alignment = 0;  // bytes; 0 = none
  int64_t min_surface_bytes = 0;
  bool device_honors_attn_mask = false;
  bool honor_attn_mask = true;  // the caller wants masks applied (CompileOptions::ignore_attn_mask)
};

// Where one logical input/output lives in the device surfaces.
struct SurfaceSlot {
  std::string name;      // the logical tensor's name
  mil::TensorType type;  // its logical type
  int surface = 0;       // index of the surface (always 0 when packed)
  int64_t offset = 0;    // element offset inside the surface
};

struct LoweredProgram {
  mil::Program program;  // what the device compiles
  std::string mil_text;  // PrintProgram(program)
  std::vector<DeviceWeightFile> weights;
  std::vector<mil::TensorType> input_surfaces;   // the device program's inputs, in order
  std::vector<mil::TensorType> output_surfaces;  // its outputs, in order
  std::vector<SurfaceSlot> inputs;               // logical inputs (function order)
  std::vector<SurfaceSlot> outputs;              // logical outputs (`-> (...)` order)
  bool packed_inputs = false;
  bool packed_outputs = false;
  bool attention_rewritten = false;
};

// UNIMPLEMENTED for I/O that no surface can carry (string, uint64).
absl::StatusOr<LoweredProgram> LowerForAne(const mil::VerifiedProgram& program,
                                           const LoweringOptions& options);

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_LOWERING_H_
