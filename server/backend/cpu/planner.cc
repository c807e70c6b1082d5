#include "server/backend/cpu/planner.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"
#include "common/mil/blob_file.h"
#include "common/status_macros.h"

namespace anerd::backend::cpu {
namespace {

absl::Status Unimplemented(const mil::Operation& op, absl::string_view why) {
  return absl::UnimplementedError(absl::StrCat("op '", op.op, "' at line ", op.loc.line,
                                               " is not supported by the cpu backend: ", why));
}

void CountUses(const mil::Argument& a, const mil::Operation* op,
               absl::flat_hash_map<std::string, int>* uses,
               absl::flat_hash_map<std::string, const mil::Operation*>* consumer) {
  if (a.kind == mil::Argument::Kind::kRef) {
    ++(*uses)[a.ref];
    (*consumer)[a.ref] = op;
  }
  for (const mil::Argument& e : a.elements) CountUses(e, op, uses, consumer);
}

}  // namespace

Planner::Planner(const mil::VerifiedProgram& program, const CompileOptions& options, PassSet passes)
    : program_(program), options_(options), passes_(passes) {
  plan_.options = options;
}

absl::StatusOr<PlannedProgram> Planner::Plan() {
  const mil::Function& f = program_.main();
  for (const mil::Operation& op : f.ops) {
    for (const auto& a : op.inputs) CountUses(a.value, &op, &uses_, &consumer_);
    for (const auto& a : op.attributes) CountUses(a.value, &op, &uses_, &consumer_);
  }
  for (const std::string& out : f.outputs) uses_[out] += 2;  // outputs are never fused away
  for (const mil::NamedType& in : f.inputs) {
    Value v;
    v.type = in.type;
    v.view = ContiguousView(NewBuffer(in.type.NumElements()), in.type.shape);
    plan_.inputs.push_back(IoBinding{TensorSignature{in.name, in.type}, v.view});
    values_[in.name] = std::move(v);
  }
  // Constants first: they depend on nothing, and planning decisions that look ahead at a
  // consumer's parameters (a transpose's perm after a matmul) need the const ops that builders
  // emit just before that consumer.
  for (bool consts : {true, false}) {
    for (const mil::Operation& op : f.ops) {
      if ((op.op == "const") != consts) continue;
      if (options_.stop) ANERD_RETURN_IF_ERROR(options_.stop());
      ANERD_RETURN_IF_ERROR(PlanOp(op));
    }
  }
  for (const std::string& name : f.outputs) {
    const Value& v = values_.at(name);
    plan_.outputs.push_back(IoBinding{TensorSignature{name, v.type}, v.view});
  }
  return std::move(plan_);
}

absl::Status Planner::PlanOp(const mil::Operation& op) {
  auto it = Handlers().find(op.op);
  if (it == Handlers().end()) return Unimplemented(op, "unknown op");
  absl::Status st = (this->*(it->second))(op);
  if (st.ok() || st.code() == absl::StatusCode::kUnimplemented) return st;
  return absl::Status(st.code(),
                      absl::StrCat("op '", op.op, "' at line ", op.loc.line, ": ", st.message()));
}

bool Planner::Has(const mil::Operation& op, absl::string_view name) const {
  return op.FindParam(name) != nullptr;
}

absl::StatusOr<const Planner::Value*> Planner::Operand(const mil::Operation& op,
                                                       absl::string_view name) {
  const mil::Argument* a = op.FindParam(name);
  if (a == nullptr) return absl::InvalidArgumentError(absl::StrCat("missing '", name, "'"));
  if (a->kind == mil::Argument::Kind::kRef) {
    auto it = values_.find(a->ref);
    if (it == values_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("undefined value '", a->ref, "'"));
    }
    return &it->second;
  }
  if (a->kind == mil::Argument::Kind::kTuple) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' must not be a tuple"));
  }
  Value v;
  v.type = a->literal.type;
  if (v.type.dtype == mil::DType::kString) {
    v.str = a->literal.strings.empty() ? "" : a->literal.strings[0];
  } else {
    ANERD_ASSIGN_OR_RETURN(v.constant, Decode(a->literal));
    v.view = ContiguousView(AddConstant(v.constant), v.type.shape);
  }
  literals_.push_back(std::move(v));
  return &literals_.back();
}

absl::StatusOr<std::vector<int64_t>> Planner::Ints(const mil::Operation& op, absl::string_view name,
                                                   std::optional<std::vector<int64_t>> fallback) {
  if (!Has(op, name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Value* v, Operand(op, name));
  if (!v->constant) return absl::InvalidArgumentError(absl::StrCat("'", name, "' must be const"));
  std::vector<int64_t> out;
  for (float f : *v->constant) out.push_back(static_cast<int64_t>(f));
  return out;
}

absl::StatusOr<int64_t> Planner::Int(const mil::Operation& op, absl::string_view name,
                                     std::optional<int64_t> fallback) {
  if (!Has(op, name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> v, Ints(op, name));
  if (v.size() != 1) return absl::InvalidArgumentError(absl::StrCat("'", name, "' not a scalar"));
  return v[0];
}

absl::StatusOr<double> Planner::Float(const mil::Operation& op, absl::string_view name,
                                      std::optional<double> fallback) {
  if (!Has(op, name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Value* v, Operand(op, name));
  if (!v->constant || v->constant->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' must be a const scalar"));
  }
  return (*v->constant)[0];
}

absl::StatusOr<std::string> Planner::String(const mil::Operation& op, absl::string_view name,
                                            std::optional<std::string> fallback) {
  if (!Has(op, name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Value* v, Operand(op, name));
  if (v->type.dtype != mil::DType::kString) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' must be a string"));
  }
  return v->str;
}

absl::StatusOr<std::shared_ptr<std::vector<float>>> Planner::Decode(const mil::Literal& lit) {
  auto out = std::make_shared<std::vector<float>>(lit.type.NumElements());
  if (!lit.blob) {
    for (size_t i = 0; i < out->size() && i < lit.values.size(); ++i) {
      (*out)[i] = static_cast<float>(lit.values[i]);
    }
    if (lit.values.size() == 1) std::fill(out->begin(), out->end(), (*out)[0]);
    return out;
  }
  ANERD_ASSIGN_OR_RETURN(absl::string_view bytes,
                         mil::ResolveBlob(program_.weights(), *lit.blob, lit.type, &warnings_));
  if (lit.type.dtype == mil::DType::kFp16) {
    std::vector<uint16_t> half(out->size());
    std::memcpy(half.data(), bytes.data(), half.size() * sizeof(uint16_t));
    HalfToFloatArray(half.data(), out->data(), out->size());
  } else {
    for (size_t i = 0; i < out->size(); ++i) {
      (*out)[i] = static_cast<float>(LoadElement(lit.type.dtype, bytes.data(), i));
    }
  }
  return out;
}

absl::Status Planner::Define(const mil::NamedType& out, Value v) {
  v.type = out.type;
  values_[out.name] = std::move(v);
  return absl::OkStatus();
}

int Planner::NewBuffer(int64_t floats) {
  plan_.buffers.push_back(BufferSpec{floats, nullptr});
  return static_cast<int>(plan_.buffers.size()) - 1;
}

int Planner::AddConstant(std::shared_ptr<std::vector<float>> data) {
  if (data->empty()) data->push_back(0.0f);  // keep a valid pointer for empty tensors
  const int64_t n = data->size();
  plan_.buffers.push_back(BufferSpec{n, std::move(data)});
  return static_cast<int>(plan_.buffers.size()) - 1;
}

View Planner::NewOutput(const mil::TensorType& type) {
  return ContiguousView(NewBuffer(type.NumElements()), type.shape);
}

void Planner::AddStep(const mil::Operation& op, std::vector<View> reads, std::vector<View> writes,
                      int64_t scratch, std::function<absl::Status(const StepContext&)> fn,
                      std::string note) {
  Step s;
  s.note = std::move(note);
  s.op = op.op;
  s.line = op.loc.line;
  for (const View& v : reads) s.reads.push_back(v.buf);
  for (const View& v : writes) s.writes.push_back(v.buf);
  s.scratch_floats = scratch;
  s.fn = std::move(fn);
  plan_.steps.push_back(std::move(s));
}

Rounding Planner::RoundingFor(mil::DType dtype) const {
  return dtype == mil::DType::kFp16 && options_.numerics == NumericsMode::kAne ? Rounding::kFp16
                                                                               : Rounding::kNone;
}

View Planner::Contiguous(const mil::Operation& op, const View& v) {
  if (v.IsContiguous()) return v;
  View out = ContiguousView(NewBuffer(v.NumElements()), v.shape);
  AddStep(
      op, {v}, {out}, 0,
      [v, out](const StepContext& c) {
        CopyStrided(Strided{c.Ptr(v), v.shape, v.strides}, c.MutablePtr(out));
        return absl::OkStatus();
      },
      "copy to contiguous");
  return out;
}

absl::Status Planner::DefineView(const mil::Operation& op, const mil::NamedType& out, View view) {
  Value v;
  if (!passes_.on(PlannerPass::kViews)) {
    View dst = ContiguousView(NewBuffer(view.NumElements()), view.shape);
    AddStep(
        op, {view}, {dst}, 0,
        [view, dst](const StepContext& c) {
          CopyStrided(Strided{c.Ptr(view), view.shape, view.strides}, c.MutablePtr(dst));
          return absl::OkStatus();
        },
        "copy (no views)");
    view = dst;
  }
  v.view = std::move(view);
  return Define(out, std::move(v));
}

const mil::Operation* Planner::SoleConsumer(const std::string& name) const {
  auto u = uses_.find(name);
  if (u == uses_.end() || u->second != 1) return nullptr;
  return consumer_.at(name);
}

std::vector<std::string> Planner::PlannedOps() {
  std::vector<std::string> ops;
  for (const auto& [name, handler] : Handlers()) ops.push_back(name);
  std::sort(ops.begin(), ops.end());
  return ops;
}

const absl::flat_hash_map<std::string, Planner::Handler>& Planner::Handlers() {
  static const auto* handlers = new absl::flat_hash_map<std::string, Handler>{
      {"const", &Planner::PlanConst},
      {"constexpr_affine_dequantize", &Planner::PlanAffineDequantize},
      {"cast", &Planner::PlanCast},
      {"conv", &Planner::PlanConv},
      {"matmul", &Planner::PlanMatmul},
      {"linear", &Planner::PlanLinear},
      {"reshape", &Planner::PlanReshape},
      {"transpose", &Planner::PlanTranspose},
      {"slice_by_size", &Planner::PlanSliceBySize},
      {"slice_by_index", &Planner::PlanSliceByIndex},
      {"concat", &Planner::PlanConcat},
      {"split", &Planner::PlanSplit},
      {"gather", &Planner::PlanGather},
      {"add", &Planner::PlanBinary},
      {"sub", &Planner::PlanBinary},
      {"mul", &Planner::PlanBinary},
      {"real_div", &Planner::PlanBinary},
      {"maximum", &Planner::PlanBinary},
      {"minimum", &Planner::PlanBinary},
      {"pow", &Planner::PlanBinary},
      {"sqrt", &Planner::PlanUnary},
      {"rsqrt", &Planner::PlanUnary},
      {"exp", &Planner::PlanUnary},
      {"log", &Planner::PlanUnary},
      {"tanh", &Planner::PlanUnary},
      {"sigmoid", &Planner::PlanUnary},
      {"relu", &Planner::PlanUnary},
      {"silu", &Planner::PlanUnary},
      {"gelu", &Planner::PlanUnary},
      {"clip", &Planner::PlanClip},
      {"select", &Planner::PlanSelect},
      {"quantize", &Planner::PlanQuantize},
      {"dequantize", &Planner::PlanDequantize},
      {"softmax", &Planner::PlanSoftmax},
      {"reduce_sum", &Planner::PlanReduce},
      {"reduce_mean", &Planner::PlanReduce},
      {"reduce_max", &Planner::PlanReduce},
      {"layer_norm", &Planner::PlanLayerNorm},
      {"scaled_dot_product_attention", &Planner::PlanAttention},
  };
  return *handlers;
}

}  // namespace anerd::backend::cpu
