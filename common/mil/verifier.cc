// The MIL verifier (verifier.h): names, op signatures, inferred types and weight references, with
// every problem reported rather than only the first.
#include "common/mil/verifier.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/mil/blob_file.h"
#include "common/mil/op_registry.h"

namespace anerd::mil {
namespace {

struct ValueInfo {
  TensorType type;
  bool is_const = false;
  const Literal* value = nullptr;  // inline value of a const op
  SourceLoc loc;
};

std::string LocString(SourceLoc loc) { return absl::StrCat(loc.line, ":", loc.column); }

// Checks one function; appends diagnostics to `out`.
class FunctionChecker {
 public:
  FunctionChecker(const Function& fn, const WeightFiles& weights, std::vector<Diagnostic>* out)
      : fn_(fn), weights_(weights), out_(out) {}

  void Run();

 private:
  void Report(Diagnostic::Severity severity, SourceLoc loc, std::string message) {
    out_->push_back(Diagnostic{severity, loc, std::move(message)});
  }
  void Error(SourceLoc loc, std::string message) {
    Report(Diagnostic::Severity::kError, loc, std::move(message));
  }
  void Define(const NamedType& value, bool is_const, const Literal* literal);
  bool Resolve(const Argument& arg, SourceLoc loc, Operand* out);
  void CheckBlobs(const Argument& arg, SourceLoc loc);
  bool CheckPlacement(const Operation& op, const OpSpec& spec);
  void CheckOp(const Operation& op);
  void CompareOutputs(const Operation& op, const std::vector<TensorType>& inferred);

  const Function& fn_;
  const WeightFiles& weights_;
  std::vector<Diagnostic>* out_;
  absl::flat_hash_map<std::string, ValueInfo> scope_;
  absl::flat_hash_map<std::string, SourceLoc> all_defs_;  // every op output, for "used before"
};

void FunctionChecker::Define(const NamedType& value, bool is_const, const Literal* literal) {
  auto [it, inserted] =
      scope_.try_emplace(value.name, ValueInfo{value.type, is_const, literal, value.loc});
  if (!inserted) {
    Error(value.loc, absl::StrCat("redefinition of '", value.name, "' (first defined at ",
                                  LocString(it->second.loc), ")"));
  }
}

bool FunctionChecker::Resolve(const Argument& arg, SourceLoc loc, Operand* out) {
  SourceLoc at = arg.loc.line > 0 ? arg.loc : loc;
  switch (arg.kind) {
    case Argument::Kind::kRef: {
      auto it = scope_.find(arg.ref);
      if (it != scope_.end()) {
        out->type = it->second.type;
        out->is_const = it->second.is_const;
        out->value = it->second.value;
        return true;
      }
      auto later = all_defs_.find(arg.ref);
      if (later != all_defs_.end()) {
        Error(at, absl::StrCat("'", arg.ref, "' is used before its definition at ",
                               LocString(later->second)));
      } else {
        Error(at, absl::StrCat("undefined value '", arg.ref, "'"));
      }
      return false;
    }
    case Argument::Kind::kLiteral:
      out->type = arg.literal.type;
      out->is_const = true;
      out->value = arg.literal.blob ? nullptr : &arg.literal;
      return true;
    case Argument::Kind::kTuple: {
      out->is_tuple = true;
      bool ok = true;
      for (const Argument& e : arg.elements) {
        out->elements.emplace_back();
        ok = Resolve(e, at, &out->elements.back()) && ok;
      }
      return ok;
    }
  }
  return false;
}

void FunctionChecker::CheckBlobs(const Argument& arg, SourceLoc loc) {
  SourceLoc at = arg.loc.line > 0 ? arg.loc : loc;
  if (arg.kind == Argument::Kind::kTuple) {
    for (const Argument& e : arg.elements) CheckBlobs(e, at);
    return;
  }
  if (arg.kind != Argument::Kind::kLiteral || !arg.literal.blob) return;
  std::vector<Diagnostic> warnings;
  auto bytes = ResolveBlob(weights_, *arg.literal.blob, arg.literal.type, &warnings);
  if (!bytes.ok()) Error(at, std::string(bytes.status().message()));
  for (Diagnostic& w : warnings) {
    if (w.loc.line <= 0) w.loc = at;
    out_->push_back(std::move(w));
  }
}

// Operands go in ( ) except for const/constexpr_*, which write them in [ ]; [ ] otherwise holds
// only `name`. Returns false when an operand is misplaced or repeated.
bool FunctionChecker::CheckPlacement(const Operation& op, const OpSpec& spec) {
  bool ok = true;
  absl::flat_hash_set<std::string> seen;
  for (const auto* list : {&op.inputs, &op.attributes}) {
    bool in_attrs = list == &op.attributes;
    for (const NamedArgument& a : *list) {
      SourceLoc at = a.value.loc.line > 0 ? a.value.loc : op.loc;
      if (!seen.insert(a.name).second) {
        Error(at, absl::StrCat("parameter '", a.name, "' of '", op.op, "' given twice"));
        ok = false;
      } else if (in_attrs && a.name == "name") {
        const Argument& v = a.value;
        if (v.kind != Argument::Kind::kLiteral ||
            v.literal.type != TensorType{DType::kString, {}}) {
          Error(at, absl::StrCat("attribute 'name' of '", op.op, "' must be a string(...)"));
        }
      } else if (in_attrs != spec.params_in_attributes) {
        bool known = spec.FindParam(a.name) != nullptr;
        Error(at, known ? absl::StrCat("parameter '", a.name, "' of '", op.op,
                                       "' must be written inside ", in_attrs ? "( )" : "[ ]")
                        : absl::StrCat("unknown ", in_attrs ? "attribute '" : "parameter '", a.name,
                                       "' for op '", op.op, "'"));
        ok = false;
      }
    }
  }
  return ok;
}

void FunctionChecker::CheckOp(const Operation& op) {
  const OpSpec* spec = DefaultOpRegistry().Find(op.op);
  OpArgs args;
  bool resolved = true;
  for (const auto* list : {&op.inputs, &op.attributes}) {
    for (const NamedArgument& a : *list) {
      CheckBlobs(a.value, op.loc);
      if (list == &op.attributes && a.name == "name") continue;
      Operand operand;
      resolved = Resolve(a.value, op.loc, &operand) && resolved;
      args.Set(a.name, std::move(operand));
    }
  }
  if (spec == nullptr) {
    Error(op.loc, absl::StrCat("unknown op '", op.op, "'"));
  } else if (CheckPlacement(op, *spec) && resolved) {
    auto inferred = InferOutputTypes(*spec, args);
    if (inferred.ok()) {
      CompareOutputs(op, *inferred);
    } else {
      std::string msg(inferred.status().message());
      Error(op.loc, absl::StartsWith(msg, op.op + ":") ? msg : absl::StrCat(op.op, ": ", msg));
    }
  }
  bool is_const = op.op == "const" || absl::StartsWith(op.op, "constexpr_");
  const Argument* val = op.op == "const" ? op.FindAttribute("val") : nullptr;
  const Literal* literal =
      val != nullptr && val->kind == Argument::Kind::kLiteral && !val->literal.blob ? &val->literal
                                                                                    : nullptr;
  for (const NamedType& out : op.outputs) Define(out, is_const, literal);
}

void FunctionChecker::CompareOutputs(const Operation& op, const std::vector<TensorType>& inferred) {
  if (inferred.size() != op.outputs.size()) {
    Error(op.loc, absl::StrCat("'", op.op, "' produces ", inferred.size(), " outputs but ",
                               op.outputs.size(), " are declared"));
    return;
  }
  for (size_t i = 0; i < inferred.size(); ++i) {
    const NamedType& out = op.outputs[i];
    if (out.type != inferred[i]) {
      Error(out.loc, absl::StrCat("declared type ", out.type.ToString(), " of '", out.name,
                                  "' does not match the inferred type ", inferred[i].ToString(),
                                  " of '", op.op, "'"));
    }
  }
}

void FunctionChecker::Run() {
  for (const Operation& op : fn_.ops) {
    for (const NamedType& out : op.outputs) all_defs_.try_emplace(out.name, out.loc);
  }
  for (const NamedType& in : fn_.inputs) {
    if (in.type.dtype == DType::kString) {
      Error(in.loc, absl::StrCat("function input '", in.name, "' cannot be a string"));
    }
    Define(in, false, nullptr);
  }
  for (const Operation& op : fn_.ops) CheckOp(op);
  for (const std::string& name : fn_.outputs) {
    if (!scope_.contains(name)) {
      Error(fn_.loc,
            absl::StrCat("output '", name, "' of function '", fn_.name, "' is not defined"));
    }
  }
}

}  // namespace

std::vector<Diagnostic> CheckProgram(const Program& program, const WeightFiles& weights) {
  std::vector<Diagnostic> out;
  if (program.main() == nullptr) {
    out.push_back(Diagnostic{Diagnostic::Severity::kError, {}, "program has no 'main' function"});
  }
  absl::flat_hash_map<std::string, SourceLoc> names;
  for (const Function& fn : program.functions) {
    auto [it, inserted] = names.try_emplace(fn.name, fn.loc);
    if (!inserted) {
      out.push_back(Diagnostic{Diagnostic::Severity::kError, fn.loc,
                               absl::StrCat("function '", fn.name, "' defined twice (first at ",
                                            LocString(it->second), ")")});
    }
    FunctionChecker(fn, weights, &out).Run();
  }
  return out;
}

absl::StatusOr<VerifiedProgram> VerifyProgram(Program program, WeightFiles weights) {
  std::vector<Diagnostic> diagnostics = CheckProgram(program, weights);
  absl::Status status = DiagnosticsToStatus(diagnostics);
  if (!status.ok()) return status;
  VerifiedProgram verified;
  verified.program_ = std::make_shared<const Program>(std::move(program));
  verified.weights_ = std::make_shared<const WeightFiles>(std::move(weights));
  verified.warnings_ = std::make_shared<const std::vector<Diagnostic>>(std::move(diagnostics));
  return verified;
}

}  // namespace anerd::mil
