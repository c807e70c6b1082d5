// Diagnostics reported by the parser and verifier.
#ifndef ANERD_COMMON_MIL_DIAGNOSTIC_H_
#define ANERD_COMMON_MIL_DIAGNOSTIC_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/mil/ir.h"

namespace anerd::mil {

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  SourceLoc loc;
  std::string message;
  // "LINE:COL: error: MESSAGE" (or "warning:"); "error: MESSAGE" when the location is unknown.
  std::string ToString() const;
};

// INVALID_ARGUMENT whose message lists every error diagnostic, one per line; OK if there are none.
absl::Status DiagnosticsToStatus(const std::vector<Diagnostic>& diagnostics);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_DIAGNOSTIC_H_
