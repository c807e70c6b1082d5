// libFuzzer target for the CPU backend's planner and kernels: any MIL text that parses and verifies
// (without weight files) must compile and run on zero inputs without crashing, in both numerics
// modes and in reference mode. Errors (UNIMPLEMENTED, INVALID_ARGUMENT) are fine; crashes, leaks
// and sanitizer reports are not. Sizes are bounded so each input runs in milliseconds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "server/backend/cpu/cpu_backend.h"

namespace {

constexpr int64_t kMaxElements = 1 << 16;  // per value: keeps one run small

bool SmallEnough(const anerd::mil::Program& program) {
  for (const anerd::mil::Function& f : program.functions) {
    for (const anerd::mil::NamedType& in : f.inputs) {
      if (in.type.NumElements() > kMaxElements) return false;
    }
    for (const anerd::mil::Operation& op : f.ops) {
      for (const anerd::mil::NamedType& out : op.outputs) {
        if (out.type.NumElements() > kMaxElements) return false;
      }
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anerd::mil::ParseOptions options;
  options.max_text_bytes = 1 << 16;
  options.max_statements = 256;
  options.max_elements = kMaxElements;
  options.max_literal_elements = 4096;
  absl::StatusOr<anerd::mil::Program> program =
      anerd::mil::ParseProgram(std::string(reinterpret_cast<const char*>(data), size), options);
  if (!program.ok() || !SmallEnough(*program)) return 0;
  absl::StatusOr<anerd::mil::VerifiedProgram> verified =
      anerd::mil::VerifyProgram(*std::move(program));
  if (!verified.ok()) return 0;
  static auto* backend =
      new anerd::backend::cpu::CpuBackend(anerd::backend::cpu::CpuBackendOptions{});
  for (int mode = 0; mode < 3; ++mode) {
    anerd::backend::CompileOptions compile;
    compile.numerics =
        mode == 1 ? anerd::backend::NumericsMode::kFp32 : anerd::backend::NumericsMode::kAne;
    compile.reference_mode = mode == 2;
    auto compiled = backend->Compile(*verified, compile);
    if (!compiled.ok()) continue;
    std::vector<anerd::backend::NamedTensor> inputs;
    for (const anerd::backend::TensorSignature& sig : (*compiled)->inputs()) {
      inputs.push_back({sig.name, anerd::backend::Tensor(sig.type)});
    }
    (void)(*compiled)->Run(inputs);
  }
  return 0;
}
