// libFuzzer target for the CPU backend's planner and kernels: any MIL text that parses and verifies
// (without weight files) must plan, and then compile and run on zero inputs, without crashing, in
// both numerics modes and in reference mode. Errors (UNIMPLEMENTED, INVALID_ARGUMENT) are fine;
// crashes, leaks and sanitizer reports are not.
//
// Tensor sizes are realistic (the parser's default bound, 2^31 elements per value): every program
// is planned, which allocates nothing proportional to its tensors except compile-time constants
// (bounded below). Only a plan whose buffers total at most kMaxRunBytes is allocated and run, so a
// 20000x20000 matmul is planned (and its planned bytes are checked) but never executed here.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "server/backend/cpu/passes.h"
#include "server/backend/cpu/program.h"

namespace {

constexpr int64_t kMaxRunBytes = int64_t{256} << 20;      // plans above this are not run
constexpr int64_t kMaxConstantBytes = int64_t{64} << 20;  // compile-time constants in total

int64_t LiteralBytes(const anerd::mil::Argument& arg) {
  if (arg.kind == anerd::mil::Argument::Kind::kLiteral) return arg.literal.type.NumElements() * 4;
  int64_t bytes = 0;
  for (const anerd::mil::Argument& e : arg.elements) bytes += LiteralBytes(e);
  return bytes;
}

// Bytes the planner materialises at compile time: literals (a splat literal expands to its whole
// type) and dequantised constants.
int64_t ConstantBytes(const anerd::mil::Program& program) {
  int64_t bytes = 0;
  for (const anerd::mil::Function& f : program.functions) {
    for (const anerd::mil::Operation& op : f.ops) {
      for (const auto* list : {&op.inputs, &op.attributes}) {
        for (const anerd::mil::NamedArgument& a : *list) bytes += LiteralBytes(a.value);
      }
      if (op.op.find("dequantize") != std::string::npos) {
        for (const anerd::mil::NamedType& out : op.outputs) bytes += out.type.NumElements() * 4;
      }
    }
  }
  return bytes;
}

// An upper bound of the memory a CpuProgram allocates for `plan`: every buffer with its own
// memory (liveness only lowers it) plus the largest step scratch.
int64_t PlannedBytes(const anerd::backend::cpu::PlannedProgram& plan) {
  int64_t floats = 0, scratch = 0;
  for (const anerd::backend::cpu::BufferSpec& b : plan.buffers) {
    if (b.alias_of < 0 && b.constant == nullptr) floats += b.floats;
  }
  for (const anerd::backend::cpu::Step& s : plan.steps)
    scratch = std::max(scratch, s.scratch_floats);
  return (floats + scratch) * 4;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anerd::mil::ParseOptions options;
  options.max_text_bytes = 1 << 16;
  options.max_statements = 256;
  options.max_literal_elements = 4096;
  absl::StatusOr<anerd::mil::Program> program =
      anerd::mil::ParseProgram(std::string(reinterpret_cast<const char*>(data), size), options);
  if (!program.ok() || ConstantBytes(*program) > kMaxConstantBytes) return 0;
  absl::StatusOr<anerd::mil::VerifiedProgram> verified =
      anerd::mil::VerifyProgram(*std::move(program));
  if (!verified.ok()) return 0;
  for (int mode = 0; mode < 3; ++mode) {
    anerd::backend::CompileOptions compile;
    compile.numerics =
        mode == 1 ? anerd::backend::NumericsMode::kFp32 : anerd::backend::NumericsMode::kAne;
    compile.reference_mode = mode == 2;
    anerd::backend::cpu::PassManager passes(*verified, compile);
    absl::StatusOr<anerd::backend::cpu::PlannedProgram> plan = passes.Run(nullptr);
    if (!plan.ok() || PlannedBytes(*plan) > kMaxRunBytes) continue;
    anerd::backend::cpu::CpuProgram compiled(*std::move(plan));
    std::vector<anerd::backend::NamedTensor> inputs;
    for (const anerd::backend::TensorSignature& sig : compiled.inputs()) {
      inputs.push_back({sig.name, anerd::backend::Tensor(sig.type)});
    }
    (void)compiled.Run(inputs);
  }
  return 0;
}
