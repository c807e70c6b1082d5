// OpArgs accessors, the registry, generic signature checks and shape helpers (op_registry.h).
#include "common/mil/op_registry.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/mil/shape_inference.h"
#include "common/status_macros.h"

namespace anerd::mil {

Operand Operand::Tensor(TensorType type) {
  Operand o;
  o.type = std::move(type);
  return o;
}

Operand Operand::Tuple(std::vector<Operand> elements) {
  Operand o;
  o.is_tuple = true;
  o.elements = std::move(elements);
  return o;
}

void OpArgs::Set(std::string name, Operand operand) {
  operands_[std::move(name)] = std::move(operand);
}

void OpArgs::SetTensor(std::string name, TensorType type) {
  Set(std::move(name), Operand::Tensor(std::move(type)));
}

void OpArgs::SetConst(std::string name, Literal value) {
  owned_.push_back(std::move(value));
  Operand o = Operand::Tensor(owned_.back().type);
  o.is_const = true;
  o.value = owned_.back().blob ? nullptr : &owned_.back();
  Set(std::move(name), std::move(o));
}

void OpArgs::SetTuple(std::string name, std::vector<TensorType> types) {
  std::vector<Operand> elements;
  for (TensorType& t : types) elements.push_back(Operand::Tensor(std::move(t)));
  Set(std::move(name), Operand::Tuple(std::move(elements)));
}

const Operand* OpArgs::Find(absl::string_view name) const {
  auto it = operands_.find(name);
  return it == operands_.end() ? nullptr : &it->second;
}

absl::StatusOr<TensorType> OpArgs::Type(absl::string_view name) const {
  const Operand* o = Find(name);
  if (o == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("missing parameter '", name, "'"));
  if (o->is_tuple) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' must be a tensor"));
  }
  return o->type;
}

absl::StatusOr<const Literal*> OpArgs::ConstValue(absl::string_view name) const {
  const Operand* o = Find(name);
  if (o == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("missing parameter '", name, "'"));
  if (o->is_tuple || o->value == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "' must be an inline compile-time constant"));
  }
  return o->value;
}

absl::StatusOr<std::vector<int64_t>> OpArgs::Ints(
    absl::string_view name, std::optional<std::vector<int64_t>> fallback) const {
  if (!Has(name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Literal* v, ConstValue(name));
  if (!IsInteger(v->type.dtype) && v->type.dtype != DType::kBool) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "' must be integers, not ", v->type.ToString()));
  }
  if (v->type.rank() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' must be rank 0 or 1"));
  }
  return std::vector<int64_t>(v->values.begin(), v->values.end());
}

absl::StatusOr<int64_t> OpArgs::Int(absl::string_view name, std::optional<int64_t> fallback) const {
  if (!Has(name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Literal* v, ConstValue(name));
  if (!IsInteger(v->type.dtype) || !v->type.is_scalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "' must be an integer scalar, not ", v->type.ToString()));
  }
  return static_cast<int64_t>(v->values[0]);
}

absl::StatusOr<bool> OpArgs::Bool(absl::string_view name, std::optional<bool> fallback) const {
  if (!Has(name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Literal* v, ConstValue(name));
  if (v->type.dtype != DType::kBool || !v->type.is_scalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "' must be a bool scalar, not ", v->type.ToString()));
  }
  return v->values[0] != 0;
}

absl::StatusOr<double> OpArgs::Float(absl::string_view name, std::optional<double> fallback) const {
  if (!Has(name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Literal* v, ConstValue(name));
  if (!IsFloat(v->type.dtype) || !v->type.is_scalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "' must be a float scalar, not ", v->type.ToString()));
  }
  return v->values[0];
}

absl::StatusOr<std::string> OpArgs::String(absl::string_view name,
                                           std::optional<std::string> fallback) const {
  if (!Has(name) && fallback) return *fallback;
  ANERD_ASSIGN_OR_RETURN(const Literal* v, ConstValue(name));
  if (v->type.dtype != DType::kString || !v->type.is_scalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", name, "' must be a string scalar, not ", v->type.ToString()));
  }
  return v->strings[0];
}

const ParamSpec* OpSpec::FindParam(absl::string_view param) const {
  for (const ParamSpec& p : params) {
    if (p.name == param) return &p;
  }
  return nullptr;
}

void OpRegistry::Register(OpSpec spec) {
  std::string name = spec.name;
  ops_[name] = std::move(spec);
}

const OpSpec* OpRegistry::Find(absl::string_view op) const {
  auto it = ops_.find(op);
  return it == ops_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::OpNames() const {
  std::vector<std::string> names;
  for (const auto& [name, spec] : ops_) {
    if (!spec.test_only) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

const OpRegistry& DefaultOpRegistry() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterMilOps(r);
    return r;
  }();
  return *registry;
}

std::vector<std::string> KnownOps() { return DefaultOpRegistry().OpNames(); }

namespace {

std::string DTypeSetNames(DTypeSet set) {
  std::string out;
  for (int i = 0; i <= static_cast<int>(DType::kString); ++i) {
    if (set & (DTypeSet{1} << i)) {
      absl::StrAppend(&out, out.empty() ? "" : "/", DTypeName(static_cast<DType>(i)));
    }
  }
  return out;
}

absl::Status CheckOperand(const ParamSpec& p, const Operand& o) {
  if (p.tuple != o.is_tuple) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", p.name, "' must be ",
                                                   p.tuple ? "a tuple (a, b, ...)" : "a tensor"));
  }
  std::vector<const Operand*> tensors;
  if (o.is_tuple) {
    for (const Operand& e : o.elements) tensors.push_back(&e);
  } else {
    tensors.push_back(&o);
  }
  for (const Operand* t : tensors) {
    if (t->is_tuple) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", p.name, "' must not contain nested tuples"));
    }
    if (!(p.dtypes & DTypeBit(t->type.dtype))) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", p.name, "' has type ",
                                                     t->type.ToString(), "; expected ",
                                                     DTypeSetNames(p.dtypes)));
    }
    if (p.constant && !t->is_const) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", p.name, "' must be a compile-time constant"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TensorType>> InferOutputTypes(const OpSpec& spec, const OpArgs& args) {
  for (const auto& [name, operand] : args.operands()) {
    if (spec.FindParam(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown parameter '", name, "' for op '", spec.name, "'"));
    }
  }
  for (const ParamSpec& p : spec.params) {
    const Operand* o = args.Find(p.name);
    if (o == nullptr) {
      if (p.required) {
        return absl::InvalidArgumentError(
            absl::StrCat("op '", spec.name, "' is missing required parameter '", p.name, "'"));
      }
      continue;
    }
    ANERD_RETURN_IF_ERROR(CheckOperand(p, *o));
  }
  return spec.infer(args);
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<int> NormalizeAxis(int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

absl::StatusOr<std::vector<int64_t>> BroadcastShapes(const std::vector<int64_t>& a,
                                                     const std::vector<int64_t>& b) {
  size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(absl::StrCat("shapes ", ShapeToString(a), " and ",
                                                     ShapeToString(b), " do not broadcast"));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace anerd::mil
