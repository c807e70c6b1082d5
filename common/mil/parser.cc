// Recursive-descent parser for MIL text (parser.h). Every size limit in ParseOptions is checked
// before the allocation it guards; the first error stops parsing.
#include "common/mil/parser.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mil/lexer.h"
#include "common/status_macros.h"

namespace anerd::mil {
namespace {

class Parser {
 public:
  Parser(absl::string_view text, const ParseOptions& options, Diagnostic* error)
      : lex_(text), text_size_(text.size()), opts_(options), error_(error) {}

  absl::StatusOr<Program> Run();

 private:
  absl::Status ErrorAt(SourceLoc loc, std::string message);
  absl::Status Unexpected(absl::string_view wanted);
  absl::Status Expect(absl::string_view punct);
  bool Accept(absl::string_view punct);
  absl::StatusOr<Token> ExpectIdent(absl::string_view what);

  absl::Status ParseHeader(Program* program);
  absl::Status ParseBuildInfo(Program* program);
  absl::Status ParseStringType();
  absl::Status ParseFunction(Function* fn);
  absl::Status ParseStatement(Operation* op);
  absl::Status ParseNamedArgs(absl::string_view closer, std::vector<NamedArgument>* out);
  absl::Status ParseType(TensorType* type);
  absl::Status ParseDims(TensorType* type, SourceLoc loc);
  absl::Status ParseValue(int depth, Argument* out);
  absl::Status ParseTuple(int depth, Argument* out);
  absl::Status ParseTypedLiteral(int depth, Literal* lit);
  absl::Status ParseBlob(Literal* lit);
  absl::Status ParseElementList(int depth, Literal* lit);
  absl::Status ParseElement(Literal* lit);
  absl::Status ParseNumberElement(Literal* lit);
  absl::Status CheckDepth(int depth, SourceLoc loc);

  Lexer lex_;
  size_t text_size_;
  const ParseOptions& opts_;
  Diagnostic* error_;
  size_t statements_ = 0;
  int64_t element_count_ = 0;  // elements of the literal being parsed
};

absl::Status Parser::ErrorAt(SourceLoc loc, std::string message) {
  if (error_ != nullptr) {
    error_->severity = Diagnostic::Severity::kError;
    error_->loc = loc;
    error_->message = message;
  }
  return absl::InvalidArgumentError(absl::StrCat(loc.line, ":", loc.column, ": ", message));
}

absl::Status Parser::Unexpected(absl::string_view wanted) {
  const Token& t = lex_.Peek();
  if (t.kind == TokenKind::kError)
    return ErrorAt(t.loc, absl::StrCat(t.str, " at ", QuoteToken(t)));
  return ErrorAt(t.loc, absl::StrCat("expected ", wanted, " but found ", QuoteToken(t)));
}

absl::Status Parser::Expect(absl::string_view punct) {
  if (Accept(punct)) return absl::OkStatus();
  return Unexpected(absl::StrCat("'", punct, "'"));
}

bool Parser::Accept(absl::string_view punct) {
  if (!lex_.Peek().Is(punct)) return false;
  lex_.Next();
  return true;
}

absl::StatusOr<Token> Parser::ExpectIdent(absl::string_view what) {
  if (lex_.Peek().kind != TokenKind::kIdent) return Unexpected(what);
  return lex_.Next();
}

absl::StatusOr<Program> Parser::Run() {
  if (text_size_ > opts_.max_text_bytes) {
    return ErrorAt({1, 1}, absl::StrCat("program text is ", text_size_, " bytes; the limit is ",
                                        opts_.max_text_bytes));
  }
  Program program;
  ANERD_RETURN_IF_ERROR(ParseHeader(&program));
  ANERD_RETURN_IF_ERROR(Expect("{"));
  while (lex_.Peek().Is("func")) {
    Function fn;
    ANERD_RETURN_IF_ERROR(ParseFunction(&fn));
    program.functions.push_back(std::move(fn));
  }
  if (!Accept("}")) return Unexpected("'func' or '}'");
  if (lex_.Peek().kind != TokenKind::kEnd) return Unexpected("end of input");
  return program;
}

absl::Status Parser::ParseHeader(Program* program) {
  if (!lex_.Peek().Is("program")) return Unexpected("'program'");
  lex_.Next();
  ANERD_RETURN_IF_ERROR(Expect("("));
  const Token& v = lex_.Peek();
  if (v.kind != TokenKind::kNumber) return Unexpected("a program version");
  if (v.text != "1.0" && v.text != "1.3" && v.text != "1.5") {
    return ErrorAt(v.loc, absl::StrCat("unsupported program version ", QuoteToken(v),
                                       " (want 1.0, 1.3 or 1.5)"));
  }
  program->version = std::string(v.text);
  lex_.Next();
  ANERD_RETURN_IF_ERROR(Expect(")"));
  if (Accept("[")) ANERD_RETURN_IF_ERROR(ParseBuildInfo(program));
  return absl::OkStatus();
}

// `string` or the verbose `tensor<string, []>`, as used in buildInfo dict types.
absl::Status Parser::ParseStringType() {
  SourceLoc loc = lex_.Peek().loc;
  TensorType type;
  ANERD_RETURN_IF_ERROR(ParseType(&type));
  if (type.dtype != DType::kString || !type.is_scalar()) {
    return ErrorAt(
        loc, absl::StrCat("buildInfo keys and values must be strings, not ", type.ToString()));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseBuildInfo(Program* program) {
  if (!lex_.Peek().Is("buildInfo")) return Unexpected("'buildInfo'");
  lex_.Next();
  ANERD_RETURN_IF_ERROR(Expect("="));
  if (!lex_.Peek().Is("dict")) return Unexpected("'dict'");
  lex_.Next();
  ANERD_RETURN_IF_ERROR(Expect("<"));
  ANERD_RETURN_IF_ERROR(ParseStringType());
  ANERD_RETURN_IF_ERROR(Expect(","));
  ANERD_RETURN_IF_ERROR(ParseStringType());
  ANERD_RETURN_IF_ERROR(Expect(">"));
  ANERD_RETURN_IF_ERROR(Expect("("));
  ANERD_RETURN_IF_ERROR(Expect("{"));
  while (!Accept("}")) {
    if (!program->build_info.empty()) ANERD_RETURN_IF_ERROR(Expect(","));
    ANERD_RETURN_IF_ERROR(Expect("{"));
    std::pair<std::string, std::string> entry;
    for (std::string* s : {&entry.first, &entry.second}) {
      if (lex_.Peek().kind != TokenKind::kString) return Unexpected("a string");
      *s = lex_.Next().str;
      if (s == &entry.first) ANERD_RETURN_IF_ERROR(Expect(","));
    }
    ANERD_RETURN_IF_ERROR(Expect("}"));
    program->build_info.push_back(std::move(entry));
  }
  ANERD_RETURN_IF_ERROR(Expect(")"));
  return Expect("]");
}

absl::Status Parser::ParseFunction(Function* fn) {
  fn->loc = lex_.Next().loc;  // 'func'
  ANERD_ASSIGN_OR_RETURN(Token name, ExpectIdent("a function name"));
  fn->name = std::string(name.text);
  if (Accept("<")) {
    const Token& opset = lex_.Peek();
    if (!opset.Is("ios16") && !opset.Is("ios17") && !opset.Is("ios18")) {
      return Unexpected("an opset (ios16, ios17 or ios18)");
    }
    fn->opset = std::string(lex_.Next().text);
    ANERD_RETURN_IF_ERROR(Expect(">"));
  }
  ANERD_RETURN_IF_ERROR(Expect("("));
  while (!Accept(")")) {
    if (!fn->inputs.empty()) ANERD_RETURN_IF_ERROR(Expect(","));
    NamedType input;
    input.loc = lex_.Peek().loc;
    ANERD_RETURN_IF_ERROR(ParseType(&input.type));
    ANERD_ASSIGN_OR_RETURN(Token n, ExpectIdent("an input name"));
    input.name = std::string(n.text);
    fn->inputs.push_back(std::move(input));
  }
  ANERD_RETURN_IF_ERROR(Expect("{"));
  while (!Accept("}")) {
    if (statements_ >= opts_.max_statements) {
      return ErrorAt(lex_.Peek().loc,
                     absl::StrCat("more than ", opts_.max_statements, " statements"));
    }
    ++statements_;
    Operation op;
    ANERD_RETURN_IF_ERROR(ParseStatement(&op));
    fn->ops.push_back(std::move(op));
  }
  ANERD_RETURN_IF_ERROR(Expect("->"));
  ANERD_RETURN_IF_ERROR(Expect("("));
  while (!Accept(")")) {
    if (!fn->outputs.empty()) ANERD_RETURN_IF_ERROR(Expect(","));
    ANERD_ASSIGN_OR_RETURN(Token out, ExpectIdent("an output name"));
    fn->outputs.push_back(std::string(out.text));
  }
  return Expect(";");
}

absl::Status Parser::ParseStatement(Operation* op) {
  op->loc = lex_.Peek().loc;
  do {
    NamedType out;
    out.loc = lex_.Peek().loc;
    ANERD_RETURN_IF_ERROR(ParseType(&out.type));
    ANERD_ASSIGN_OR_RETURN(Token name, ExpectIdent("a value name"));
    out.name = std::string(name.text);
    op->outputs.push_back(std::move(out));
  } while (Accept(","));
  ANERD_RETURN_IF_ERROR(Expect("="));
  ANERD_ASSIGN_OR_RETURN(Token name, ExpectIdent("an op name"));
  op->op = std::string(name.text);
  ANERD_RETURN_IF_ERROR(Expect("("));
  ANERD_RETURN_IF_ERROR(ParseNamedArgs(")", &op->inputs));
  if (Accept("[")) ANERD_RETURN_IF_ERROR(ParseNamedArgs("]", &op->attributes));
  return Expect(";");
}

absl::Status Parser::ParseNamedArgs(absl::string_view closer, std::vector<NamedArgument>* out) {
  while (!Accept(closer)) {
    if (!out->empty()) ANERD_RETURN_IF_ERROR(Expect(","));
    NamedArgument arg;
    ANERD_ASSIGN_OR_RETURN(Token name, ExpectIdent("a parameter name"));
    arg.name = std::string(name.text);
    ANERD_RETURN_IF_ERROR(Expect("="));
    ANERD_RETURN_IF_ERROR(ParseValue(0, &arg.value));
    out->push_back(std::move(arg));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseType(TensorType* type) {
  const Token& t = lex_.Peek();
  if (t.kind != TokenKind::kIdent) return Unexpected("a type");
  SourceLoc loc = t.loc;
  if (t.text != "tensor") {
    std::optional<DType> dtype = DTypeFromName(t.text);
    if (!dtype) return ErrorAt(loc, absl::StrCat("unknown type ", QuoteToken(t)));
    lex_.Next();
    *type = TensorType{*dtype, {}};
    return absl::OkStatus();
  }
  lex_.Next();
  ANERD_RETURN_IF_ERROR(Expect("<"));
  const Token& d = lex_.Peek();
  std::optional<DType> dtype = DTypeFromName(d.text);
  if (d.kind != TokenKind::kIdent || !dtype)
    return Unexpected("an element type (fp16, int32, ...)");
  lex_.Next();
  type->dtype = *dtype;
  type->shape.clear();
  ANERD_RETURN_IF_ERROR(Expect(","));
  ANERD_RETURN_IF_ERROR(ParseDims(type, loc));
  return Expect(">");
}

absl::Status Parser::ParseDims(TensorType* type, SourceLoc loc) {
  ANERD_RETURN_IF_ERROR(Expect("["));
  int64_t elements = 1;
  while (!Accept("]")) {
    if (!type->shape.empty()) ANERD_RETURN_IF_ERROR(Expect(","));
    const Token& t = lex_.Peek();
    auto dim = NumberValue(t.text, DType::kUInt64);
    if (t.kind != TokenKind::kNumber || !dim.ok()) return Unexpected("a non-negative dimension");
    if (type->rank() >= opts_.max_rank) {
      return ErrorAt(t.loc, absl::StrCat("tensor rank exceeds the limit of ", opts_.max_rank));
    }
    int64_t d = static_cast<int64_t>(*dim);
    if (d != 0 && elements > opts_.max_elements / d) {
      return ErrorAt(t.loc,
                     absl::StrCat("tensor type has more than ", opts_.max_elements, " elements"));
    }
    elements *= d;
    type->shape.push_back(d);
    lex_.Next();
  }
  return absl::OkStatus();
}

absl::Status Parser::CheckDepth(int depth, SourceLoc loc) {
  if (depth <= opts_.max_nesting) return absl::OkStatus();
  return ErrorAt(loc, absl::StrCat("nesting deeper than ", opts_.max_nesting, " levels"));
}

absl::Status Parser::ParseValue(int depth, Argument* out) {
  const Token& t = lex_.Peek();
  out->loc = t.loc;
  ANERD_RETURN_IF_ERROR(CheckDepth(depth, t.loc));
  if (t.Is("(")) return ParseTuple(depth, out);
  if (t.kind == TokenKind::kNumber) {
    return ErrorAt(t.loc, absl::StrCat("bare number ", QuoteToken(t),
                                       "; write a typed literal such as int32(1) or fp16(0.5)"));
  }
  if (t.kind != TokenKind::kIdent) return Unexpected("a value");
  if (t.Is("true") || t.Is("false")) {
    out->kind = Argument::Kind::kLiteral;
    out->literal = Literal{TensorType{DType::kBool, {}}, {t.Is("true") ? 1.0 : 0.0}, {}, {}};
    lex_.Next();
    return absl::OkStatus();
  }
  bool typed = (t.Is("tensor") && lex_.Peek(1).Is("<")) ||
               (DTypeFromName(t.text).has_value() && lex_.Peek(1).Is("("));
  if (typed) {
    out->kind = Argument::Kind::kLiteral;
    return ParseTypedLiteral(depth, &out->literal);
  }
  out->kind = Argument::Kind::kRef;
  out->ref = std::string(lex_.Next().text);
  return absl::OkStatus();
}

absl::Status Parser::ParseTuple(int depth, Argument* out) {
  lex_.Next();  // '('
  out->kind = Argument::Kind::kTuple;
  while (!Accept(")")) {
    if (!out->elements.empty()) ANERD_RETURN_IF_ERROR(Expect(","));
    Argument element;
    ANERD_RETURN_IF_ERROR(ParseValue(depth + 1, &element));
    out->elements.push_back(std::move(element));
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseTypedLiteral(int depth, Literal* lit) {
  SourceLoc loc = lex_.Peek().loc;
  ANERD_RETURN_IF_ERROR(ParseType(&lit->type));
  ANERD_RETURN_IF_ERROR(Expect("("));
  if (lex_.Peek().Is("BLOBFILE")) {
    ANERD_RETURN_IF_ERROR(ParseBlob(lit));
    return Expect(")");
  }
  int64_t n = lit->type.NumElements();
  if (n > opts_.max_literal_elements) {
    return ErrorAt(loc, absl::StrCat("inline literal of ", n, " elements exceeds the limit of ",
                                     opts_.max_literal_elements));
  }
  element_count_ = 0;
  if (lit->type.dtype == DType::kString) {
    lit->strings.reserve(n);
  } else {
    lit->values.reserve(n);
  }
  if (lit->type.is_scalar()) {
    ANERD_RETURN_IF_ERROR(ParseElement(lit));
  } else {
    if (!lex_.Peek().Is("[")) return Unexpected("'[' starting the elements of a tensor literal");
    ANERD_RETURN_IF_ERROR(ParseElementList(depth + 1, lit));
    if (element_count_ != n) {
      return ErrorAt(loc, absl::StrCat("literal of type ", lit->type.ToString(), " has ",
                                       element_count_, " elements; expected ", n));
    }
  }
  return Expect(")");
}

absl::Status Parser::ParseBlob(Literal* lit) {
  SourceLoc loc = lex_.Next().loc;  // BLOBFILE
  std::vector<NamedArgument> args;
  ANERD_RETURN_IF_ERROR(Expect("("));
  ANERD_RETURN_IF_ERROR(ParseNamedArgs(")", &args));
  BlobRef ref;
  bool has_path = false, has_offset = false;
  for (const NamedArgument& a : args) {
    const Literal& v = a.value.literal;
    bool literal = a.value.kind == Argument::Kind::kLiteral && v.type.is_scalar() && !v.blob;
    if (a.name == "path" && literal && v.type.dtype == DType::kString && !has_path) {
      ref.path = v.strings[0];
      has_path = true;
    } else if (a.name == "offset" && literal && v.type.dtype == DType::kUInt64 && !has_offset) {
      ref.offset = static_cast<uint64_t>(v.values[0]);
      has_offset = true;
    } else {
      return ErrorAt(a.value.loc,
                     absl::StrCat("bad BLOBFILE parameter '", a.name,
                                  "' (want path = string(...), offset = uint64(...))"));
    }
  }
  if (!has_path || !has_offset) {
    return ErrorAt(loc, "BLOBFILE needs path = string(...) and offset = uint64(...)");
  }
  lit->blob = std::move(ref);
  return absl::OkStatus();
}

absl::Status Parser::ParseElementList(int depth, Literal* lit) {
  ANERD_RETURN_IF_ERROR(CheckDepth(depth, lex_.Peek().loc));
  ANERD_RETURN_IF_ERROR(Expect("["));
  bool first = true;
  while (!Accept("]")) {
    if (!first) ANERD_RETURN_IF_ERROR(Expect(","));
    first = false;
    if (lex_.Peek().Is("[")) {
      ANERD_RETURN_IF_ERROR(ParseElementList(depth + 1, lit));
    } else {
      ANERD_RETURN_IF_ERROR(ParseElement(lit));
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseElement(Literal* lit) {
  const Token& t = lex_.Peek();
  if (element_count_ >= lit->type.NumElements()) {
    return ErrorAt(
        t.loc, absl::StrCat("too many elements for ", lit->type.ToString(), " at ", QuoteToken(t)));
  }
  DType dtype = lit->type.dtype;
  if (dtype == DType::kString) {
    if (t.kind != TokenKind::kString) return Unexpected("a string");
    lit->strings.push_back(lex_.Next().str);
  } else if (dtype == DType::kBool) {
    if (!t.Is("true") && !t.Is("false")) return Unexpected("true or false");
    lit->values.push_back(lex_.Next().Is("true") ? 1.0 : 0.0);
  } else {
    ANERD_RETURN_IF_ERROR(ParseNumberElement(lit));
  }
  ++element_count_;
  return absl::OkStatus();
}

absl::Status Parser::ParseNumberElement(Literal* lit) {
  DType dtype = lit->type.dtype;
  const Token& t = lex_.Peek();
  SourceLoc loc = t.loc;
  bool negative = t.Is("-") && (lex_.Peek(1).Is("inf") || lex_.Peek(1).Is("nan"));
  if (negative) lex_.Next();
  const Token& u = lex_.Peek();
  if (IsFloat(dtype) && (u.Is("inf") || u.Is("nan"))) {
    double v = u.Is("inf") ? HUGE_VAL : std::nan("");
    lit->values.push_back(negative ? -v : v);
    lex_.Next();
    return absl::OkStatus();
  }
  if (u.kind != TokenKind::kNumber)
    return Unexpected(absl::StrCat("a ", DTypeName(dtype), " value"));
  auto value = NumberValue(u.text, dtype);
  if (!value.ok()) {
    return ErrorAt(loc, absl::StrCat(value.status().message(), ": ", QuoteToken(u)));
  }
  lit->values.push_back(*value);
  lex_.Next();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Program> ParseProgram(absl::string_view text, const ParseOptions& options) {
  return ParseProgram(text, options, nullptr);
}

absl::StatusOr<Program> ParseProgram(absl::string_view text, const ParseOptions& options,
                                     Diagnostic* error) {
  Parser parser(text, options, error);
  return parser.Run();
}

}  // namespace anerd::mil
