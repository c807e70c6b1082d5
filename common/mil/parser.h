// ParseProgram: MIL text -> unverified Program. Bounded: every limit in ParseOptions is checked
// before the corresponding allocation, so untrusted text cannot exhaust memory. Errors are
// INVALID_ARGUMENT "LINE:COL: message" quoting the offending token.
#ifndef ANERD_COMMON_MIL_PARSER_H_
#define ANERD_COMMON_MIL_PARSER_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/diagnostic.h"
#include "common/mil/ir.h"

namespace anerd::mil {

struct ParseOptions {
  size_t max_text_bytes = 64 << 20;         // whole program text
  size_t max_statements = 100000;           // operations over all functions
  int max_nesting = 32;                     // tuples/tensor literal brackets
  int max_rank = 5;                         // tensor rank
  int64_t max_elements = int64_t{1} << 31;  // elements of any one declared tensor type
  int64_t max_literal_elements = 1 << 22;   // elements written inline in one literal
};

absl::StatusOr<Program> ParseProgram(absl::string_view text, const ParseOptions& options = {});

// As above; on failure also fills `*error` (when non-null) with the located diagnostic, so callers
// that report structured errors need not re-parse the status message.
absl::StatusOr<Program> ParseProgram(absl::string_view text, const ParseOptions& options,
                                     Diagnostic* error);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_PARSER_H_
