// Planner: turns a VerifiedProgram into a PlannedProgram (program.h) once, at compile time.
// See cpu_backend.h for what planning does. Which rewrites it applies is its PassSet (passes.h:
// run it through the PassManager); with none every op becomes its own step writing a fresh
// contiguous buffer (no views, no fusion, no transposed GEMM outputs).
// Not thread-safe; one Planner per compile.
#ifndef ANERD_SERVER_BACKEND_CPU_PLANNER_H_
#define ANERD_SERVER_BACKEND_CPU_PLANNER_H_

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "common/mil/verifier.h"
#include "server/backend/backend.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/passes.h"
#include "server/backend/cpu/program.h"

namespace anerd::backend::cpu {

class Planner {
 public:
  Planner(const mil::VerifiedProgram& program, const CompileOptions& options, PassSet passes);
  absl::StatusOr<PlannedProgram> Plan();
  // The ops with a handler, sorted: the CPU backend's op list (op_support.h).
  static std::vector<std::string> PlannedOps();

 private:
  struct Value {
    mil::TensorType type;
    View view;
    std::shared_ptr<std::vector<float>> constant;  // compile-time contents (contiguous)
    std::string str;                               // string constants
    int group = -1;  // open fused elementwise chain whose result this is
  };
  struct Group;  // a fused elementwise chain under construction
  using Handler = absl::Status (Planner::*)(const mil::Operation&);

  static const absl::flat_hash_map<std::string, Handler>& Handlers();
  // Plans one op with its handler; errors name the op and its line.
  absl::Status PlanOp(const mil::Operation& op);

  // Operands and compile-time parameters.
  absl::StatusOr<const Value*> Operand(const mil::Operation& op, absl::string_view name);
  bool Has(const mil::Operation& op, absl::string_view name) const;
  absl::StatusOr<std::vector<int64_t>> Ints(const mil::Operation& op, absl::string_view name,
                                            std::optional<std::vector<int64_t>> fallback = {});
  absl::StatusOr<int64_t> Int(const mil::Operation& op, absl::string_view name,
                              std::optional<int64_t> fallback = {});
  absl::StatusOr<double> Float(const mil::Operation& op, absl::string_view name,
                               std::optional<double> fallback = {});
  absl::StatusOr<std::string> String(const mil::Operation& op, absl::string_view name,
                                     std::optional<std::string> fallback = {});
  absl::StatusOr<std::shared_ptr<std::vector<float>>> Decode(const mil::Literal& lit);
  absl::Status Define(const mil::NamedType& out, Value v);

  // Buffers and steps.
  int NewBuffer(int64_t floats);
  int AddConstant(std::shared_ptr<std::vector<float>> data);
  View NewOutput(const mil::TensorType& type);
  // Appends a step; `note` says what a rewrite made of it (Step::note).
  void AddStep(const mil::Operation& op, std::vector<View> reads, std::vector<View> writes,
               int64_t scratch, std::function<absl::Status(const StepContext&)> fn,
               std::string note = "");
  Rounding RoundingFor(mil::DType dtype) const;
  // Defines `out` as `view`, or (reference mode) as a materialised copy of it.
  absl::Status DefineView(const mil::Operation& op, const mil::NamedType& out, View view);
  // A contiguous version of `v` (itself or a copy step).
  View Contiguous(const mil::Operation& op, const View& v);
  bool FuseableInto(const std::string& name, const std::vector<int64_t>& shape) const;
  const mil::Operation* SoleConsumer(const std::string& name) const;

  // Elementwise ops (planner_elementwise.cc).
  // `vals[i]` is operand i; `refs[i]` its value name (empty for literals/synthesised operands).
  absl::Status PlanElementwise(const mil::Operation& op, EwOp kind,
                               const std::vector<const Value*>& vals,
                               const std::vector<std::string>& refs, float p0 = 0, float p1 = 0);
  absl::Status PlanUnary(const mil::Operation& op);
  absl::Status PlanBinary(const mil::Operation& op);
  absl::Status PlanCast(const mil::Operation& op);
  absl::Status PlanClip(const mil::Operation& op);
  absl::Status PlanSelect(const mil::Operation& op);
  absl::Status PlanQuantize(const mil::Operation& op);
  absl::Status PlanDequantize(const mil::Operation& op);
  absl::StatusOr<const Value*> QuantParam(const mil::Operation& op, absl::string_view name,
                                          int rank, double fallback);
  std::string RefName(const mil::Operation& op, absl::string_view name) const;
  const Value* ScalarLiteral(float value);

  // Structural ops (planner_structural.cc).
  absl::Status PlanConst(const mil::Operation& op);
  absl::Status PlanAffineDequantize(const mil::Operation& op);
  absl::Status PlanReshape(const mil::Operation& op);
  absl::Status PlanTranspose(const mil::Operation& op);
  absl::Status PlanSliceBySize(const mil::Operation& op);
  absl::Status PlanSliceByIndex(const mil::Operation& op);
  absl::Status PlanSplit(const mil::Operation& op);
  absl::Status PlanConcat(const mil::Operation& op);
  // Makes the buffer behind `part` (when it is exactly that buffer, contiguous, and computed by a
  // step) an alias of its region of concat output `out`, which starts at element `start`; false
  // (copy it instead) otherwise or in reference mode.
  bool AliasIntoConcat(const View& part, const View& out, int64_t axis, int64_t start);
  absl::Status PlanGather(const mil::Operation& op);

  // Compute ops (planner_compute.cc).
  absl::Status PlanMatmul(const mil::Operation& op);
  absl::Status PlanLinear(const mil::Operation& op);
  absl::Status PlanConv(const mil::Operation& op);
  absl::Status PlanSoftmax(const mil::Operation& op);
  // Last-axis softmax of the open elementwise chain producing `xv` (single use): the chain runs
  // row block by row block inside the softmax step instead of being materialised.
  absl::Status PlanSoftmaxOfGroup(const mil::Operation& op, const Value* xv);
  // The same for a reduction over the last axis only.
  absl::Status PlanReduceOfGroup(const mil::Operation& op, const Value* xv, ReduceKind kind);
  absl::Status PlanReduce(const mil::Operation& op);
  absl::Status PlanLayerNorm(const mil::Operation& op);
  absl::Status PlanAttention(const mil::Operation& op);
  void EmitMatmul(const mil::Operation& op, const View& x, const View& y, const View& out,
                  const View* bias);

  const mil::VerifiedProgram& program_;
  CompileOptions options_;
  PassSet passes_;
  PlannedProgram plan_;
  absl::node_hash_map<std::string, Value> values_;  // stable addresses
  absl::flat_hash_map<std::string, int> uses_;
  absl::flat_hash_map<std::string, const mil::Operation*> consumer_;
  std::deque<Value> literals_;  // inline literal operands
  std::vector<std::shared_ptr<Group>> groups_;
  std::vector<mil::Diagnostic> warnings_;
};

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_PLANNER_H_
