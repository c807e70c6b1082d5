#include "server/backend/cpu/cpu_backend.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/cpu/op_support.h"
#include "server/backend/cpu/passes.h"
#include "server/backend/cpu/program.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::backend::cpu {

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : options_(options), threads_(ConfigureBlasThreading()) {}

BackendDescription CpuBackend::Describe() const {
  BackendDescription d;
  d.name = "cpu";
  d.version = "1";
#if defined(ANERD_BLAS_ACCELERATE)
  d.device = absl::StrCat("host CPU (Accelerate BLAS, ", threads_, " threads)");
#else
  d.device = absl::StrCat("host CPU (OpenBLAS, ", threads_, " threads)");
#endif
  d.capabilities.fp16_compute = false;
  d.capabilities.honors_attn_mask = true;
  d.capabilities.multiple_inputs = true;
  d.capabilities.compile_budget = options_.compile_budget;
  d.capabilities.pass_dumps = true;
  return d;
}

absl::Status CpuBackend::Supports(const OpQuery& query) const {
  const std::string why = CpuRefusal(query);
  return why.empty() ? absl::OkStatus() : OpNotSupported("cpu", query.op, why);
}

absl::StatusOr<std::unique_ptr<CompiledProgram>> CpuBackend::Compile(
    const mil::VerifiedProgram& program, const CompileOptions& options) {
  if (options.qos.has_value()) {
    return absl::InvalidArgumentError(
        "options.qos: the cpu backend has no QoS (it is a parameter of the ANE backends)");
  }
  // Reserve a compile slot first so concurrent compiles cannot overshoot the budget.
  const int64_t used = compiles_.fetch_add(1);
  if (options_.compile_budget > 0 && used >= options_.compile_budget) {
    compiles_.fetch_sub(1);
    return absl::ResourceExhaustedError(absl::StrCat(
        "cpu backend compile budget of ", options_.compile_budget, " compiles is used up"));
  }
  PassManager passes(program, options);
  absl::StatusOr<PlannedProgram> plan = passes.Run(options.pass_dumps);
  if (!plan.ok()) {
    compiles_.fetch_sub(1);
    return plan.status();
  }
  // Planning knows every buffer's size; the arena is allocated only within the limit.
  absl::StatusOr<std::unique_ptr<CpuProgram>> compiled =
      CpuProgram::Create(std::move(plan).value(), options.max_memory_bytes);
  if (!compiled.ok()) {
    compiles_.fetch_sub(1);
    return compiled.status();
  }
  return std::unique_ptr<CompiledProgram>(std::move(compiled).value());
}

}  // namespace anerd::backend::cpu
