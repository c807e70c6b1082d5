// The portable CPU backend: runs every op the MIL verifier knows, on fp32 buffers with the fp16
// rounding of the chosen NumericsMode (backend.h).
//
// Compile plans the program once (planner.h): ops run in program order (the verifier guarantees
// definitions precede uses, so program order is a topological order); reshape/transpose/slice/split
// become strided views; transposes fold into GEMM operand flags; conv and matmul run on
// cblas_sgemm; single-use elementwise chains fuse into one pass; buffers are reused by liveness;
// BLOBFILE weights are decoded once.
//
// Threads: the backend owns no thread pool. GEMMs use OpenBLAS's pool (2 threads here, the number
// of cores), every other kernel runs on the thread calling Run. Kernels outside GEMM are
// memory-bound and small at our shapes, and a second pool would busy-wait against OpenBLAS's
// spinning workers on a 2-core machine (machine-facts.md: 2.3x slowdowns seen that way) — one pool
// is the rule.
//
// Data: every tensor is held as fp32 internally; integer tensors are exact up to |v| <= 2^24, and
// integer arithmetic does not wrap (documented limits of this backend).
// Thread-safety: as backend.h (Compile is safe concurrently; Run serialises per program).
#ifndef ANERD_SERVER_BACKEND_CPU_CPU_BACKEND_H_
#define ANERD_SERVER_BACKEND_CPU_CPU_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "server/backend/backend.h"

namespace anerd::backend::cpu {

struct CpuBackendOptions {
  int64_t compile_budget = 0;  // successful compiles allowed; 0 = unlimited
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options);
  BackendDescription Describe() const override;
  bool Supports(absl::string_view op) const override;
  absl::StatusOr<std::unique_ptr<CompiledProgram>> Compile(const mil::VerifiedProgram& program,
                                                           const CompileOptions& options) override;
  int64_t compiles_used() const override { return compiles_.load(); }

 private:
  CpuBackendOptions options_;
  std::atomic<int64_t> compiles_{0};
};

// Every op the CPU backend executes (sorted).
const std::vector<std::string>& CpuSupportedOps();

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_CPU_BACKEND_H_
