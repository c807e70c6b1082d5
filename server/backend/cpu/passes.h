// The CPU planner's rewrites as named passes, run in a fixed order by a small pass manager (as
// XLA's HloPassPipeline), with a text dump of the planned program after each.
//
// The planner lowers a verified program op by op into steps over buffers (planner.h). Without
// passes every op is its own step writing a fresh contiguous buffer (CompileOptions::
// reference_mode). Each pass switches on one rewrite the planner applies while lowering (they
// need its value table, so they are not separate walks over an IR):
//   views            reshape/transpose/slice/split become strided views instead of copies
//   fold-transposes  a matmul whose only consumer swaps its last two axes writes its output
//                    transposed (the transpose becomes a view of it)
//   fuse-elementwise single-use elementwise chains fuse into one step (and into a last-axis
//                    softmax or reduction that consumes them)
//   alias-concat     a producer writes straight into its region of a concat output
// The plan after pass N is the program lowered with passes 1..N on, so each dump shows what that
// pass changed. Pure functions and a single-use manager; thread-compatible.
#ifndef ANERD_SERVER_BACKEND_CPU_PASSES_H_
#define ANERD_SERVER_BACKEND_CPU_PASSES_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/verifier.h"
#include "server/backend/backend.h"
#include "server/backend/cpu/program.h"

namespace anerd::backend::cpu {

enum class PlannerPass { kViews, kFoldTransposes, kFuseElementwise, kAliasConcat };
inline constexpr int kNumPlannerPasses = 4;

// The passes in pipeline order with their dump names ("views", ...).
struct PassInfo {
  PlannerPass pass;
  absl::string_view name;
};
const std::array<PassInfo, kNumPlannerPasses>& PlannerPipeline();

// Which rewrites the planner applies.
class PassSet {
 public:
  static PassSet None() { return PassSet(); }
  static PassSet All();
  // Every pass unless `options.reference_mode`.
  static PassSet For(const CompileOptions& options);
  bool on(PlannerPass p) const { return on_[static_cast<int>(p)]; }
  void Enable(PlannerPass p) { on_[static_cast<int>(p)] = true; }

 private:
  std::array<bool, kNumPlannerPasses> on_{};
};

// A readable listing of a planned program: its inputs and outputs with their views, every live
// step (op, source line, buffers read and written, scratch, what a rewrite made of it) and a
// buffer summary. Deterministic for a given plan.
std::string PrintPlan(const PlannedProgram& plan);

class PassManager {
 public:
  // `program` must outlive the manager.
  PassManager(const mil::VerifiedProgram& program, const CompileOptions& options);
  // Plans with PassSet::For(options). When `dumps` is non-null it also appends, in order,
  // "00-input" (the program's MIL text), "01-lower" (no rewrites) and "NN-<pass>" after each
  // enabled pass; this plans the program once per dump. Errors are the planner's.
  absl::StatusOr<PlannedProgram> Run(std::vector<PassDump>* dumps);

 private:
  const mil::VerifiedProgram& program_;
  CompileOptions options_;
};

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_PASSES_H_
