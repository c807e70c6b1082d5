// Planning of elementwise ops: each op joins the open fused chain of its single-use operand when
// shapes agree (and planning is on), else starts a new chain. A chain is one step, re-emitted at
// the position of its newest op so every leaf it reads is already computed. A last-axis softmax
// or last-axis reduction of a chain's single-use result absorbs the chain (PlanSoftmaxOfGroup,
// PlanReduceOfGroup).
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/backend/cpu/planner.h"

namespace anerd::backend::cpu {

struct Planner::Group {
  EwGroup ew;
  std::vector<View> leaves;
  View out;
  int step_index = -1;
};

std::string Planner::RefName(const mil::Operation& op, absl::string_view name) const {
  const mil::Argument* a = op.FindParam(name);
  return a != nullptr && a->kind == mil::Argument::Kind::kRef ? a->ref : std::string();
}

const Planner::Value* Planner::ScalarLiteral(float value) {
  Value v;
  v.type = mil::TensorType{mil::DType::kFp32, {}};
  v.constant = std::make_shared<std::vector<float>>(1, value);
  v.view = ContiguousView(AddConstant(v.constant), {});
  literals_.push_back(std::move(v));
  return &literals_.back();
}

bool Planner::FuseableInto(const std::string& name, const std::vector<int64_t>& shape) const {
  if (!passes_.on(PlannerPass::kFuseElementwise) || name.empty()) return false;
  auto it = values_.find(name);
  auto u = uses_.find(name);
  return it != values_.end() && it->second.group >= 0 && u != uses_.end() && u->second == 1 &&
         it->second.type.shape == shape;
}

absl::Status Planner::PlanElementwise(const mil::Operation& op, EwOp kind,
                                      const std::vector<const Value*>& vals,
                                      const std::vector<std::string>& refs, float p0, float p1) {
  const mil::NamedType& out = op.outputs[0];
  int gid = -1, fused = -1;
  for (size_t i = 0; i < vals.size() && fused < 0; ++i) {
    if (FuseableInto(refs[i], out.type.shape)) {
      gid = values_[refs[i]].group;
      fused = static_cast<int>(i);
    }
  }
  if (gid < 0) {
    auto g = std::make_shared<Group>();
    g->ew.shape = out.type.shape;
    g->out = NewOutput(out.type);
    groups_.push_back(std::move(g));
    gid = static_cast<int>(groups_.size()) - 1;
  }
  std::shared_ptr<Group> g = groups_[gid];
  EwStep step;
  step.op = kind;
  step.p0 = p0;
  step.p1 = p1;
  step.rounding = RoundingFor(out.type.dtype);
  for (size_t i = 0; i < vals.size(); ++i) {
    if (static_cast<int>(i) == fused) {
      step.operands[i] = -static_cast<int>(g->ew.steps.size());  // the chain's latest result
      continue;
    }
    g->leaves.push_back(BroadcastView(vals[i]->view, out.type.shape));
    step.operands[i] = static_cast<int>(g->leaves.size()) - 1;
  }
  g->ew.steps.push_back(step);
  if (fused >= 0) values_[refs[fused]].group = -1;
  if (g->step_index >= 0) plan_.steps[g->step_index].fn = nullptr;
  AddStep(
      op, g->leaves, {g->out}, EwScratchFloats(g->ew, g->leaves.size()),
      [g](const StepContext& c) {
        std::vector<Strided> leaves;
        leaves.reserve(g->leaves.size());
        for (const View& v : g->leaves) leaves.push_back(Strided{c.Ptr(v), v.shape, v.strides});
        RunEwGroup(g->ew, leaves, c.MutablePtr(g->out), c.scratch);
        return absl::OkStatus();
      },
      g->ew.steps.size() > 1 ? absl::StrCat("fused chain of ", g->ew.steps.size(), " ops") : "");
  g->step_index = static_cast<int>(plan_.steps.size()) - 1;
  Value v;
  v.view = g->out;
  v.group = gid;
  return Define(out, std::move(v));
}

absl::Status Planner::PlanSoftmaxOfGroup(const mil::Operation& op, const Value* xv) {
  std::shared_ptr<Group> g = groups_[xv->group];
  plan_.steps[g->step_index].fn = nullptr;  // the chain now runs inside the softmax step
  values_[RefName(op, "x")].group = -1;
  const View o = NewOutput(op.outputs[0].type);
  const Rounding rounding = RoundingFor(op.outputs[0].type.dtype);
  const int64_t row_len = o.shape.empty() ? 1 : o.shape.back();
  const int64_t rows = row_len == 0 ? 0 : o.NumElements() / row_len;
  AddStep(op, g->leaves, {o}, EwScratchFloats(g->ew, g->leaves.size()),
          [g, o, rows, row_len, rounding](const StepContext& c) {
            std::vector<Strided> leaves;
            leaves.reserve(g->leaves.size());
            for (const View& v : g->leaves) leaves.push_back(Strided{c.Ptr(v), v.shape, v.strides});
            const EwRangeRunner input(g->ew, leaves);
            SoftmaxOfGroup(input, rows, row_len, c.MutablePtr(o), c.scratch, rounding);
            return absl::OkStatus();
          });
  Value v;
  v.view = o;
  return Define(op.outputs[0], std::move(v));
}

absl::Status Planner::PlanReduceOfGroup(const mil::Operation& op, const Value* xv,
                                        ReduceKind kind) {
  std::shared_ptr<Group> g = groups_[xv->group];
  plan_.steps[g->step_index].fn = nullptr;  // the chain now runs inside the reduce step
  values_[RefName(op, "x")].group = -1;
  const View o = NewOutput(op.outputs[0].type);
  const Rounding rounding = RoundingFor(op.outputs[0].type.dtype);
  const int64_t row_len = xv->type.shape.back();
  const int64_t rows = o.NumElements();
  const int64_t scratch = ReduceOfGroupScratchFloats(g->ew, g->leaves.size(), row_len);
  AddStep(op, g->leaves, {o}, scratch, [g, o, rows, row_len, kind, rounding](const StepContext& c) {
    std::vector<Strided> leaves;
    leaves.reserve(g->leaves.size());
    for (const View& v : g->leaves) leaves.push_back(Strided{c.Ptr(v), v.shape, v.strides});
    const EwRangeRunner input(g->ew, leaves);
    ReduceOfGroup(kind, input, rows, row_len, c.MutablePtr(o), c.scratch);
    RoundInPlace(rounding, c.MutablePtr(o), rows);
    return absl::OkStatus();
  });
  Value v;
  v.view = o;
  return Define(op.outputs[0], std::move(v));
}

absl::Status Planner::PlanUnary(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  float p0 = 0;
  EwOp kind;
  if (op.op == "sqrt")
    kind = EwOp::kSqrt;
  else if (op.op == "exp")
    kind = EwOp::kExp;
  else if (op.op == "tanh")
    kind = EwOp::kTanh;
  else if (op.op == "sigmoid")
    kind = EwOp::kSigmoid;
  else if (op.op == "relu")
    kind = EwOp::kRelu;
  else if (op.op == "silu")
    kind = EwOp::kSilu;
  else if (op.op == "rsqrt" || op.op == "log") {
    kind = op.op == "rsqrt" ? EwOp::kRsqrt : EwOp::kLog;
    ANERD_ASSIGN_OR_RETURN(double eps, Float(op, "epsilon", op.op == "rsqrt" ? 1e-12 : 1e-45));
    p0 = static_cast<float>(eps);
  } else {  // gelu
    ANERD_ASSIGN_OR_RETURN(std::string mode, String(op, "mode", "EXACT"));
    kind = mode == "TANH_APPROXIMATION"      ? EwOp::kGeluTanh
           : mode == "SIGMOID_APPROXIMATION" ? EwOp::kGeluSigmoid
                                             : EwOp::kGeluExact;
  }
  return PlanElementwise(op, kind, {x}, {RefName(op, "x")}, p0);
}

absl::Status Planner::PlanBinary(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(const Value* y, Operand(op, "y"));
  EwOp kind = op.op == "add"        ? EwOp::kAdd
              : op.op == "sub"      ? EwOp::kSub
              : op.op == "mul"      ? EwOp::kMul
              : op.op == "real_div" ? EwOp::kDiv
              : op.op == "maximum"  ? EwOp::kMax
              : op.op == "minimum"  ? EwOp::kMin
                                    : EwOp::kPow;
  return PlanElementwise(op, kind, {x, y}, {RefName(op, "x"), RefName(op, "y")});
}

absl::Status Planner::PlanCast(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  const mil::DType to = op.outputs[0].type.dtype;
  EwOp kind = mil::IsFloat(to)          ? EwOp::kIdentity
              : to == mil::DType::kBool ? EwOp::kCastToBool
                                        : EwOp::kCastToInt;
  return PlanElementwise(op, kind, {x}, {RefName(op, "x")});
}

absl::Status Planner::PlanClip(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(double alpha, Float(op, "alpha"));
  ANERD_ASSIGN_OR_RETURN(double beta, Float(op, "beta"));
  return PlanElementwise(op, EwOp::kClip, {x}, {RefName(op, "x")}, static_cast<float>(alpha),
                         static_cast<float>(beta));
}

absl::Status Planner::PlanSelect(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* c, Operand(op, "cond"));
  ANERD_ASSIGN_OR_RETURN(const Value* a, Operand(op, "a"));
  ANERD_ASSIGN_OR_RETURN(const Value* b, Operand(op, "b"));
  return PlanElementwise(op, EwOp::kSelect, {c, a, b},
                         {RefName(op, "cond"), RefName(op, "a"), RefName(op, "b")});
}

absl::StatusOr<const Planner::Value*> Planner::QuantParam(const mil::Operation& op,
                                                          absl::string_view name, int rank,
                                                          double fallback) {
  if (!Has(op, name)) return ScalarLiteral(static_cast<float>(fallback));
  ANERD_ASSIGN_OR_RETURN(const Value* v, Operand(op, name));
  if (v->type.rank() == 0) return v;
  // A vector along `axis`: view it with that axis only.
  ANERD_ASSIGN_OR_RETURN(int64_t axis, Int(op, "axis"));
  if (axis < 0) axis += rank;
  Value shaped = *v;
  shaped.view.shape.assign(rank, 1);
  shaped.view.strides.assign(rank, 0);
  shaped.view.shape[axis] = v->view.shape[0];
  shaped.view.strides[axis] = v->view.strides[0];
  literals_.push_back(std::move(shaped));
  return &literals_.back();
}

absl::Status Planner::PlanQuantize(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "input"));
  ANERD_ASSIGN_OR_RETURN(const Value* scale, QuantParam(op, "scale", x->type.rank(), 1.0));
  ANERD_ASSIGN_OR_RETURN(const Value* zp, QuantParam(op, "zero_point", x->type.rank(), 0.0));
  const bool u8 = op.outputs[0].type.dtype == mil::DType::kUInt8;
  return PlanElementwise(op, EwOp::kQuantize, {x, scale, zp}, {RefName(op, "input"), "", ""},
                         u8 ? 0.0f : -128.0f, u8 ? 255.0f : 127.0f);
}

absl::Status Planner::PlanDequantize(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "input"));
  ANERD_ASSIGN_OR_RETURN(const Value* scale, QuantParam(op, "scale", x->type.rank(), 1.0));
  ANERD_ASSIGN_OR_RETURN(const Value* zp, QuantParam(op, "zero_point", x->type.rank(), 0.0));
  return PlanElementwise(op, EwOp::kDequantize, {x, scale, zp}, {RefName(op, "input"), "", ""});
}

}  // namespace anerd::backend::cpu
