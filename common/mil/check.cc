// The offline MIL checker (check.h).
#include "common/mil/check.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/mil/verifier.h"

namespace anerd::mil {
namespace {

std::string EntrySignature(const Function& fn,
                           const std::vector<std::pair<std::string, TensorType>>& outputs) {
  std::string s = absl::StrCat(fn.name, "(");
  for (size_t i = 0; i < fn.inputs.size(); ++i) {
    absl::StrAppend(&s, i ? ", " : "", fn.inputs[i].type.ToString(), " ", fn.inputs[i].name);
  }
  s.append(") -> (");
  for (size_t i = 0; i < outputs.size(); ++i) {
    absl::StrAppend(&s, i ? ", " : "", outputs[i].second.ToString(), " ", outputs[i].first);
  }
  s.append(")");
  return s;
}

// Output names with their declared types (inputs may also be returned directly).
std::vector<std::pair<std::string, TensorType>> OutputTypes(const Function& fn) {
  std::vector<std::pair<std::string, TensorType>> out;
  for (const std::string& name : fn.outputs) {
    TensorType type;
    for (const NamedType& in : fn.inputs) {
      if (in.name == name) type = in.type;
    }
    for (const Operation& op : fn.ops) {
      for (const NamedType& o : op.outputs) {
        if (o.name == name) type = o.type;
      }
    }
    out.emplace_back(name, type);
  }
  return out;
}

void CollectBlobBytes(const Argument& arg, std::set<std::pair<std::string, uint64_t>>* seen,
                      uint64_t* bytes) {
  if (arg.kind == Argument::Kind::kTuple) {
    for (const Argument& e : arg.elements) CollectBlobBytes(e, seen, bytes);
  } else if (arg.kind == Argument::Kind::kLiteral && arg.literal.blob &&
             seen->emplace(arg.literal.blob->path, arg.literal.blob->offset).second) {
    *bytes += static_cast<uint64_t>(arg.literal.type.NumBytes());
  }
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", u));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

CheckReport CheckMilText(absl::string_view text, const WeightFiles& weights,
                         const ParseOptions& options, const AneRules* ane_rules) {
  CheckReport report;
  Diagnostic parse_error;
  auto program = ParseProgram(text, options, &parse_error);
  if (!program.ok()) {
    report.diagnostics.push_back(std::move(parse_error));
    return report;
  }
  report.diagnostics = CheckProgram(*program, weights);
  if (ane_rules != nullptr) {
    for (const AneViolation& v : CheckAneProgram(*program, *ane_rules)) {
      report.diagnostics.push_back(
          {v.lowered_away ? Diagnostic::Severity::kWarning : Diagnostic::Severity::kError, v.loc,
           absl::StrCat("ane rule ", v.rule, " (", RuleStageName(v.stage), "): ", v.message)});
    }
  }
  report.ok = true;
  for (const Diagnostic& d : report.diagnostics) {
    if (d.severity == Diagnostic::Severity::kError) report.ok = false;
  }
  std::set<std::pair<std::string, uint64_t>> seen;
  for (const Function& fn : program->functions) {
    report.op_count += static_cast<int64_t>(fn.ops.size());
    for (const Operation& op : fn.ops) {
      for (const auto* list : {&op.inputs, &op.attributes}) {
        for (const NamedArgument& a : *list) CollectBlobBytes(a.value, &seen, &report.weight_bytes);
      }
    }
  }
  if (const Function* main = program->main()) {
    report.entry_signature = EntrySignature(*main, OutputTypes(*main));
  }
  return report;
}

std::string ReportToJson(const CheckReport& report) {
  std::string out =
      absl::StrCat("{\"ok\":", report.ok ? "true" : "false",
                   ",\"entry\":", JsonString(report.entry_signature), ",\"ops\":", report.op_count,
                   ",\"weight_bytes\":", report.weight_bytes, ",\"diagnostics\":[");
  for (size_t i = 0; i < report.diagnostics.size(); ++i) {
    const Diagnostic& d = report.diagnostics[i];
    absl::StrAppend(&out, i ? "," : "", "{\"severity\":",
                    d.severity == Diagnostic::Severity::kError ? "\"error\"" : "\"warning\"",
                    ",\"line\":", d.loc.line, ",\"column\":", d.loc.column,
                    ",\"message\":", JsonString(d.message), "}");
  }
  out.append("]}");
  return out;
}

}  // namespace anerd::mil
