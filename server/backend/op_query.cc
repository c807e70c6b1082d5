// OpQuery construction (backend.h): what a backend's Supports sees for each op of a function.
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/backend/backend.h"

namespace anerd::backend {
namespace {

using TypeTable = absl::flat_hash_map<std::string, mil::TensorType>;

void AddOperand(const std::string& name, const mil::Argument& a, const TypeTable& types,
                OpQuery* q) {
  switch (a.kind) {
    case mil::Argument::Kind::kRef: {
      auto it = types.find(a.ref);
      if (it != types.end()) q->inputs.emplace_back(name, it->second);
      return;
    }
    case mil::Argument::Kind::kLiteral:
      q->inputs.emplace_back(name, a.literal.type);
      return;
    case mil::Argument::Kind::kTuple:
      for (const mil::Argument& e : a.elements) AddOperand(name, e, types, q);
      return;
  }
}

}  // namespace

OpQuery OpQuery::Named(absl::string_view op) {
  OpQuery q;
  q.op = std::string(op);
  return q;
}

const mil::TensorType* OpQuery::Input(absl::string_view name) const {
  for (const auto& [n, type] : inputs) {
    if (n == name) return &type;
  }
  return nullptr;
}

std::vector<OpQuery> OpQueriesFor(const mil::Function& function) {
  TypeTable types;
  for (const mil::NamedType& in : function.inputs) types[in.name] = in.type;
  std::vector<OpQuery> out;
  out.reserve(function.ops.size());
  for (const mil::Operation& op : function.ops) {
    OpQuery q = OpQuery::Named(op.op);
    q.operation = &op;
    for (const mil::NamedArgument& a : op.inputs) AddOperand(a.name, a.value, types, &q);
    for (const mil::NamedArgument& a : op.attributes) {
      if (a.name != "name") AddOperand(a.name, a.value, types, &q);
    }
    for (const mil::NamedType& o : op.outputs) {
      q.outputs.push_back(o.type);
      types[o.name] = o.type;
    }
    out.push_back(std::move(q));
  }
  return out;
}

absl::Status OpNotSupported(absl::string_view backend, absl::string_view op,
                            absl::string_view why) {
  return absl::UnimplementedError(
      absl::StrCat("op '", op, "' is not supported by the ", backend, " backend: ", why));
}

}  // namespace anerd::backend
