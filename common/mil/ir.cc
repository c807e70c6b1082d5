// Out-of-line parts of the MIL IR (ir.h): dtype tables, type printing and structural equality.
#include "common/mil/ir.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace anerd::mil {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  int size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kFp16, "fp16", 2},     {DType::kFp32, "fp32", 4}, {DType::kInt32, "int32", 4},
    {DType::kInt16, "int16", 2},   {DType::kInt8, "int8", 1}, {DType::kUInt8, "uint8", 1},
    {DType::kUInt64, "uint64", 8}, {DType::kBool, "bool", 1}, {DType::kString, "string", 0},
};

// Numeric equality that treats NaN as equal to NaN (a literal NaN must compare equal to itself
// after a round trip) and distinguishes -0 from +0.
bool SameValue(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

}  // namespace

absl::string_view DTypeName(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.name;
  }
  return "?";
}

std::optional<DType> DTypeFromName(absl::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (name == info.name) return info.dtype;
  }
  return std::nullopt;
}

int DTypeSize(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.size;
  }
  return 0;
}

bool IsFloat(DType dtype) { return dtype == DType::kFp16 || dtype == DType::kFp32; }

bool IsInteger(DType dtype) {
  switch (dtype) {
    case DType::kInt32:
    case DType::kInt16:
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kUInt64:
      return true;
    default:
      return false;
  }
}

int64_t TensorType::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorType::ToString() const {
  if (shape.empty()) return std::string(DTypeName(dtype));
  return absl::StrCat("tensor<", DTypeName(dtype), ", [", absl::StrJoin(shape, ", "), "]>");
}

bool Literal::operator==(const Literal& o) const {
  if (type != o.type || strings != o.strings || !(blob == o.blob)) return false;
  if (values.size() != o.values.size()) return false;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!SameValue(values[i], o.values[i])) return false;
  }
  return true;
}

Argument Argument::Ref(std::string name) {
  Argument a;
  a.kind = Kind::kRef;
  a.ref = std::move(name);
  return a;
}

Argument Argument::Lit(Literal literal) {
  Argument a;
  a.kind = Kind::kLiteral;
  a.literal = std::move(literal);
  return a;
}

Argument Argument::Tuple(std::vector<Argument> elements) {
  Argument a;
  a.kind = Kind::kTuple;
  a.elements = std::move(elements);
  return a;
}

bool Argument::operator==(const Argument& o) const {
  if (kind != o.kind) return false;
  switch (kind) {
    case Kind::kRef:
      return ref == o.ref;
    case Kind::kLiteral:
      return literal == o.literal;
    case Kind::kTuple:
      return elements == o.elements;
  }
  return false;
}

namespace {
const Argument* FindIn(const std::vector<NamedArgument>& args, absl::string_view name) {
  for (const NamedArgument& a : args) {
    if (a.name == name) return &a.value;
  }
  return nullptr;
}
}  // namespace

const Argument* Operation::FindInput(absl::string_view name) const { return FindIn(inputs, name); }

const Argument* Operation::FindAttribute(absl::string_view name) const {
  return FindIn(attributes, name);
}

const Argument* Operation::FindParam(absl::string_view name) const {
  const Argument* a = FindInput(name);
  return a != nullptr ? a : FindAttribute(name);
}

bool Operation::operator==(const Operation& o) const {
  return op == o.op && inputs == o.inputs && attributes == o.attributes && outputs == o.outputs;
}

bool Function::operator==(const Function& o) const {
  return name == o.name && opset == o.opset && inputs == o.inputs && ops == o.ops &&
         outputs == o.outputs;
}

const Function* Program::FindFunction(absl::string_view name) const {
  for (const Function& f : functions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool Program::operator==(const Program& o) const {
  return version == o.version && build_info == o.build_info && functions == o.functions;
}

}  // namespace anerd::mil
