// PrintProgram: the canonical MIL text of a Program. Re-parsing the output yields a Program equal
// (operator==) to the input, and printing is idempotent. Floats are printed exactly (the shortest
// decimal that parses back to the same fp16/fp32 value); inputs and attributes keep their stored
// order. Layout: the seed's header form, 4-space function indent, 8-space statement indent.
// Pure functions; thread-safe.
#ifndef ANERD_COMMON_MIL_PRINTER_H_
#define ANERD_COMMON_MIL_PRINTER_H_

#include <string>

#include "common/mil/ir.h"

namespace anerd::mil {

std::string PrintProgram(const Program& program);

// Pieces, for diagnostics and generators.
std::string PrintLiteral(const Literal& literal);
std::string PrintArgument(const Argument& argument);
std::string PrintOperation(const Operation& op);  // one statement, no indent or newline
// `"..."` with \" \\ \n \t \r and \xHH escapes for other control bytes.
std::string QuoteString(absl::string_view s);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_PRINTER_H_
