// The portable CPU backend: runs every op the MIL verifier knows, on fp32 buffers with the fp16
// rounding of the chosen NumericsMode (backend.h).
//
// Compile plans the program once (planner.h, run by the PassManager of passes.h, whose named
// passes are the rewrites below and can dump the plan after each): ops run in program order (the
// verifier guarantees definitions precede uses, so program order is a topological order);
// reshape/transpose/slice/split become strided views; transposes fold into GEMM operand flags; conv
// and matmul run on cblas_sgemm; single-use elementwise chains fuse into one pass; buffers are
// reused by liveness; BLOBFILE weights are decoded once.
//
// Threads: one pool per process (kernels/parallel.h): the thread calling Run plus one helper that
// sleeps on a condition variable between jobs. Constructing a CpuBackend calls
// ConfigureBlasThreading, which makes OpenBLAS single-threaded for the whole process and gives
// its thread count (2 here, the number of cores) to that pool. GEMMs run as single-threaded
// cblas blocks spread over the pool (batch entries, or a few fixed blocks of one large product);
// softmax, reductions, elementwise chains, copies and fp16 conversion split their passes the same
// way. Nothing spins: OpenBLAS's own workers busy-wait ~0.1 s after each threaded call, which
// starved every pass between GEMMs of the second core (measured on the 2-vCPU development machine:
// two pools spinning against each other cost 2.3x). The split never changes results.
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
  // Refuses ops without a planner handler and the shapes of CpuRefusal (op_support.h).
  absl::Status Supports(const OpQuery& query) const override;
  absl::StatusOr<std::unique_ptr<CompiledProgram>> Compile(const mil::VerifiedProgram& program,
                                                           const CompileOptions& options) override;
  int64_t compiles_used() const override { return compiles_.load(); }

 private:
  CpuBackendOptions options_;
  const int threads_;  // pool width (ConfigureBlasThreading)
  std::atomic<int64_t> compiles_{0};
};

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_CPU_BACKEND_H_
