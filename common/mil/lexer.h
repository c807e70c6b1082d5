// Lexer for MIL text: a streaming tokenizer with bounded lookahead (no token vector, so memory use
// does not grow with the input). `#` starts a comment that runs to the end of the line.
// Thread-safety: a Lexer is used by one thread at a time; it borrows `text`, which must outlive it.
#ifndef ANERD_COMMON_MIL_LEXER_H_
#define ANERD_COMMON_MIL_LEXER_H_

#include <deque>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ir.h"

namespace anerd::mil {

enum class TokenKind {
  kEnd,     // end of input
  kIdent,   // [A-Za-z_][A-Za-z0-9_]*
  kNumber,  // decimal or C99 hex number, optionally with a leading '-'
  kString,  // "..." with \" \\ \n \t \r \xHH escapes; `str` holds the decoded bytes
  kPunct,   // one of ( ) [ ] { } < > , = ; -  or the two-character "->"
  kError,   // malformed input; `str` holds the message
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  absl::string_view text;  // the source spelling (for strings: including the quotes)
  std::string str;         // decoded string value or error message
  SourceLoc loc;

  bool Is(absl::string_view punct_or_ident) const {
    return (kind == TokenKind::kPunct || kind == TokenKind::kIdent) && text == punct_or_ident;
  }
};

class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  // The token `ahead` positions from the current one (0 = current). `ahead` must be small.
  const Token& Peek(int ahead = 0);
  // Consumes and returns the current token.
  Token Next();

 private:
  Token Scan();
  void SkipSpaceAndComments();
  Token MakeToken(TokenKind kind, size_t start, SourceLoc loc);
  Token ScanString(SourceLoc loc);
  Token ScanNumber(SourceLoc loc);
  void Advance();

  absl::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
  std::deque<Token> lookahead_;
};

// Quotes a token for an error message: 'foo', "end of input".
std::string QuoteToken(const Token& token);

// The value of a number token for an element of `dtype`: decimal or C99 hex floats for fp16/fp32
// (rounded to the dtype: round-to-nearest-even; overflow is an error), decimal integers in range
// for the integer dtypes (uint64 below 2^53). Shared by the parser and the printer's round-trip
// check.
absl::StatusOr<double> NumberValue(absl::string_view text, DType dtype);

// The shortest decimal spelling of `value` (an element of `dtype`) that NumberValue maps back to
// exactly `value`; "inf", "-inf" and "nan" for non-finite floats.
std::string FormatNumber(double value, DType dtype);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_LEXER_H_
