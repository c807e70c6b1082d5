// The portable CPU backend: runs every op the MIL verifier knows, on fp32 buffers with the fp16
// rounding of the chosen NumericsMode (backend.h).
//
// Compile plans the program once (planner.h): ops run in program order (the verifier guarantees
// definitions precede uses, so program order is a topological order); reshape/transpose/slice/split
// become strided views; transposes fold into GEMM operand flags; conv and matmul run on
// cblas_sgemm; single-use elementwise chains fuse into one pass; buffers are reused by liveness;
// BLOBFILE weights are decoded once.
//
// Threads: GEMMs use OpenBLAS's pool (2 threads here, the number of cores). The other kernels run
// on the thread calling Run, and split their large passes (softmax, reductions, elementwise
// chains, strided copies, fp16 rounding and conversion) in two halves with ParallelFor
// (kernels/parallel.h): one helper thread per process that sleeps on a condition variable between
// jobs and is used only between GEMMs, only when OpenBLAS itself runs more than one thread, and
// not for a while after it failed to get a core in time (a loaded machine). It never spins: a
// second spinning pool would busy-wait against OpenBLAS's spinning workers on a 2-core machine
// (machine-facts.md: 2.3x slowdowns seen that way). Split passes compute exactly what the serial
// pass computes.
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
