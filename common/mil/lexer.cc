// Streaming MIL tokenizer (lexer.h).
#include "common/mil/lexer.h"

#include <cmath>
#include <cstdint>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/charconv.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/fp16.h"

namespace anerd::mil {
namespace {

bool IsIdentStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsIdentChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }
bool IsPunct(char c) {
  return c == '(' || c == ')' || c == '[' || c == ']' || c == '{' || c == '}' || c == '<' ||
         c == '>' || c == ',' || c == '=' || c == ';' || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const Token& Lexer::Peek(int ahead) {
  while (static_cast<int>(lookahead_.size()) <= ahead) lookahead_.push_back(Scan());
  return lookahead_[ahead];
}

Token Lexer::Next() {
  Peek(0);
  Token t = std::move(lookahead_.front());
  lookahead_.pop_front();
  return t;
}

void Lexer::Advance() {
  if (text_[pos_] == '\n') {
    ++line_;
    column_ = 1;
  } else {
    ++column_;
  }
  ++pos_;
}

void Lexer::SkipSpaceAndComments() {
  while (pos_ < text_.size()) {
    char c = text_[pos_];
    if (c == '#') {
      while (pos_ < text_.size() && text_[pos_] != '\n') Advance();
    } else if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      Advance();
    } else {
      return;
    }
  }
}

Token Lexer::MakeToken(TokenKind kind, size_t start, SourceLoc loc) {
  Token t;
  t.kind = kind;
  t.text = text_.substr(start, pos_ - start);
  t.loc = loc;
  return t;
}

Token Lexer::Scan() {
  SkipSpaceAndComments();
  SourceLoc loc{line_, column_};
  size_t start = pos_;
  if (pos_ >= text_.size()) return MakeToken(TokenKind::kEnd, start, loc);
  char c = text_[pos_];
  char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
  if (IsIdentStart(c)) {
    while (pos_ < text_.size() && IsIdentChar(text_[pos_])) Advance();
    return MakeToken(TokenKind::kIdent, start, loc);
  }
  if (c == '"') return ScanString(loc);
  if (absl::ascii_isdigit(c) || (c == '.' && absl::ascii_isdigit(next)) ||
      (c == '-' && (absl::ascii_isdigit(next) || next == '.'))) {
    return ScanNumber(loc);
  }
  if (c == '-' && next == '>') {
    Advance();
    Advance();
    return MakeToken(TokenKind::kPunct, start, loc);
  }
  Advance();
  if (IsPunct(c)) return MakeToken(TokenKind::kPunct, start, loc);
  Token t = MakeToken(TokenKind::kError, start, loc);
  t.str = "unexpected character";
  return t;
}

Token Lexer::ScanNumber(SourceLoc loc) {
  size_t start = pos_;
  if (text_[pos_] == '-') Advance();
  bool hex = pos_ + 1 < text_.size() && text_[pos_] == '0' &&
             (text_[pos_ + 1] == 'x' || text_[pos_ + 1] == 'X');
  while (pos_ < text_.size()) {
    char c = text_[pos_];
    char prev = pos_ > start ? text_[pos_ - 1] : '\0';
    bool exponent_sign = (c == '+' || c == '-') &&
                         (hex ? (prev == 'p' || prev == 'P') : (prev == 'e' || prev == 'E'));
    if (!absl::ascii_isalnum(c) && c != '.' && !exponent_sign) break;
    Advance();
  }
  return MakeToken(TokenKind::kNumber, start, loc);
}

Token Lexer::ScanString(SourceLoc loc) {
  size_t start = pos_;
  Advance();  // opening quote
  std::string value;
  while (pos_ < text_.size() && text_[pos_] != '"') {
    char c = text_[pos_];
    Advance();
    if (c != '\\') {
      value.push_back(c);
      continue;
    }
    char e = pos_ < text_.size() ? text_[pos_] : '\0';
    if (pos_ < text_.size()) Advance();
    switch (e) {
      case '"':
        value.push_back('"');
        break;
      case '\\':
        value.push_back('\\');
        break;
      case 'n':
        value.push_back('\n');
        break;
      case 't':
        value.push_back('\t');
        break;
      case 'r':
        value.push_back('\r');
        break;
      case 'x': {
        int hi = pos_ < text_.size() ? HexValue(text_[pos_]) : -1;
        int lo = pos_ + 1 < text_.size() ? HexValue(text_[pos_ + 1]) : -1;
        if (hi < 0 || lo < 0) {
          Token t = MakeToken(TokenKind::kError, start, loc);
          t.str = "bad \\x escape in string (want two hex digits)";
          return t;
        }
        Advance();
        Advance();
        value.push_back(static_cast<char>(hi * 16 + lo));
        break;
      }
      default: {
        Token t = MakeToken(TokenKind::kError, start, loc);
        t.str = absl::StrCat("unknown escape '\\", absl::string_view(&e, e ? 1 : 0), "' in string");
        return t;
      }
    }
  }
  if (pos_ >= text_.size()) {
    Token t = MakeToken(TokenKind::kError, start, loc);
    t.str = "unterminated string";
    return t;
  }
  Advance();  // closing quote
  Token t = MakeToken(TokenKind::kString, start, loc);
  t.str = std::move(value);
  return t;
}

std::string QuoteToken(const Token& token) {
  if (token.kind == TokenKind::kEnd) return "end of input";
  absl::string_view text = token.text;
  if (text.size() > 40) return absl::StrCat("'", text.substr(0, 37), "...'");
  return absl::StrCat("'", text, "'");
}

}  // namespace anerd::mil

namespace anerd::mil {
namespace {

absl::StatusOr<double> ParseFloatText(absl::string_view text) {
  bool negative = absl::ConsumePrefix(&text, "-");
  double value = 0;
  absl::from_chars_result r;
  if (absl::ConsumePrefix(&text, "0x") || absl::ConsumePrefix(&text, "0X")) {
    r = absl::from_chars(text.data(), text.data() + text.size(), value, absl::chars_format::hex);
  } else {
    r = absl::from_chars(text.data(), text.data() + text.size(), value);
  }
  if (text.empty() || r.ptr != text.data() + text.size() || r.ec != std::errc()) {
    return absl::InvalidArgumentError("malformed number");
  }
  return negative ? -value : value;
}

absl::StatusOr<double> RoundToFloatDType(double value, DType dtype) {
  double rounded = dtype == DType::kFp16
                       ? static_cast<double>(RoundToHalf(static_cast<float>(value)))
                       : static_cast<double>(static_cast<float>(value));
  if (std::isinf(rounded) && !std::isinf(value)) {
    return absl::InvalidArgumentError(absl::StrCat("value out of range for ", DTypeName(dtype)));
  }
  return rounded;
}

bool IntegerInRange(int64_t v, DType dtype) {
  switch (dtype) {
    case DType::kInt32:
      return v >= INT32_MIN && v <= INT32_MAX;
    case DType::kInt16:
      return v >= INT16_MIN && v <= INT16_MAX;
    case DType::kInt8:
      return v >= INT8_MIN && v <= INT8_MAX;
    case DType::kUInt8:
      return v >= 0 && v <= UINT8_MAX;
    case DType::kUInt64:
      return v >= 0 && v < (int64_t{1} << 53);
    default:
      return false;
  }
}

}  // namespace

absl::StatusOr<double> NumberValue(absl::string_view text, DType dtype) {
  if (IsFloat(dtype)) {
    auto value = ParseFloatText(text);
    if (!value.ok()) return value.status();
    return RoundToFloatDType(*value, dtype);
  }
  if (!IsInteger(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("a number is not a ", DTypeName(dtype)));
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || text.empty() || text[0] == '+') {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a decimal integer for ", DTypeName(dtype)));
  }
  if (!IntegerInRange(v, dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("value out of range for ", DTypeName(dtype)));
  }
  return static_cast<double>(v);
}

std::string FormatNumber(double value, DType dtype) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  // Integral values print as plain integers (exact, and clearer than "6.55e+04" for 65504).
  if (!IsFloat(dtype) || (value == std::trunc(value) && std::fabs(value) < 1e15 &&
                          !(value == 0 && std::signbit(value)))) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::string s = absl::StrFormat("%.*g", precision, value);
    auto back = NumberValue(s, dtype);
    if (back.ok() && *back == value && std::signbit(*back) == std::signbit(value)) return s;
  }
  return absl::StrFormat("%a", value);  // unreachable for finite doubles; exact anyway
}

}  // namespace anerd::mil
