// Canonical MIL printer (printer.h).
#include "common/mil/printer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/mil/lexer.h"

namespace anerd::mil {
namespace {

std::string VerboseType(const TensorType& type) {
  return absl::StrCat("tensor<", DTypeName(type.dtype), ", [", absl::StrJoin(type.shape, ", "),
                      "]>");
}

void AppendElement(const Literal& lit, size_t i, std::string* out) {
  switch (lit.type.dtype) {
    case DType::kString:
      out->append(QuoteString(lit.strings[i]));
      break;
    case DType::kBool:
      out->append(lit.values[i] != 0 ? "true" : "false");
      break;
    default:
      out->append(FormatNumber(lit.values[i], lit.type.dtype));
  }
}

void AppendNamedArgs(const std::vector<NamedArgument>& args, std::string* out) {
  bool first = true;
  for (const NamedArgument& a : args) {
    absl::StrAppend(out, first ? "" : ", ", a.name, " = ", PrintArgument(a.value));
    first = false;
  }
}

void AppendFunction(const Function& fn, std::string* out) {
  absl::StrAppend(out, "    func ", fn.name);
  if (!fn.opset.empty()) absl::StrAppend(out, "<", fn.opset, ">");
  out->append("(");
  for (size_t i = 0; i < fn.inputs.size(); ++i) {
    absl::StrAppend(out, i ? ", " : "", fn.inputs[i].type.ToString(), " ", fn.inputs[i].name);
  }
  out->append(") {\n");
  for (const Operation& op : fn.ops) absl::StrAppend(out, "        ", PrintOperation(op), "\n");
  absl::StrAppend(out, "    } -> (", absl::StrJoin(fn.outputs, ", "), ");\n");
}

}  // namespace

std::string QuoteString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\r':
        out.append("\\r");
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          absl::StrAppend(&out, absl::StrFormat("\\x%02x", u));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string PrintLiteral(const Literal& lit) {
  if (lit.blob) {
    return absl::StrCat(VerboseType(lit.type), "(BLOBFILE(path = string(",
                        QuoteString(lit.blob->path), "), offset = uint64(", lit.blob->offset,
                        ")))");
  }
  std::string out;
  size_t n = lit.type.dtype == DType::kString ? lit.strings.size() : lit.values.size();
  if (lit.type.is_scalar() && n == 1) {
    absl::StrAppend(&out, DTypeName(lit.type.dtype), "(");
    AppendElement(lit, 0, &out);
    out.append(")");
    return out;
  }
  absl::StrAppend(&out, VerboseType(lit.type), "([");
  for (size_t i = 0; i < n; ++i) {
    if (i) out.append(", ");
    AppendElement(lit, i, &out);
  }
  out.append("])");
  return out;
}

std::string PrintArgument(const Argument& arg) {
  switch (arg.kind) {
    case Argument::Kind::kRef:
      return arg.ref;
    case Argument::Kind::kLiteral:
      return PrintLiteral(arg.literal);
    case Argument::Kind::kTuple: {
      std::vector<std::string> parts;
      for (const Argument& e : arg.elements) parts.push_back(PrintArgument(e));
      return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
    }
  }
  return "";
}

std::string PrintOperation(const Operation& op) {
  std::string out;
  for (size_t i = 0; i < op.outputs.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", op.outputs[i].type.ToString(), " ", op.outputs[i].name);
  }
  absl::StrAppend(&out, " = ", op.op, "(");
  AppendNamedArgs(op.inputs, &out);
  out.append(")");
  if (!op.attributes.empty()) {
    out.append("[");
    AppendNamedArgs(op.attributes, &out);
    out.append("]");
  }
  out.append(";");
  return out;
}

std::string PrintProgram(const Program& program) {
  std::string out = absl::StrCat("program(", program.version, ")\n");
  if (!program.build_info.empty()) {
    std::vector<std::string> entries;
    for (const auto& [k, v] : program.build_info) {
      entries.push_back(absl::StrCat("{", QuoteString(k), ", ", QuoteString(v), "}"));
    }
    absl::StrAppend(&out, "[buildInfo = dict<string, string>({", absl::StrJoin(entries, ", "),
                    "})]\n");
  }
  out.append("{\n");
  for (const Function& fn : program.functions) AppendFunction(fn, &out);
  out.append("}\n");
  return out;
}

}  // namespace anerd::mil
