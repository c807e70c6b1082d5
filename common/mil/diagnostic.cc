// Diagnostic formatting (diagnostic.h).
#include "common/mil/diagnostic.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace anerd::mil {

std::string Diagnostic::ToString() const {
  const char* kind = severity == Severity::kError ? "error" : "warning";
  if (loc.line <= 0) return absl::StrCat(kind, ": ", message);
  return absl::StrCat(loc.line, ":", loc.column, ": ", kind, ": ", message);
}

absl::Status DiagnosticsToStatus(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> lines;
  for (const Diagnostic& d : diagnostics) {
    if (d.severity == Diagnostic::Severity::kError) lines.push_back(d.ToString());
  }
  if (lines.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

}  // namespace anerd::mil
