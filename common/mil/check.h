// The offline MIL checker behind `anectl mil check`: parse + verify a program text against its
// weight files and summarise the result. Pure functions; thread-safe.
#ifndef ANERD_COMMON_MIL_CHECK_H_
#define ANERD_COMMON_MIL_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/mil/ane_rules.h"
#include "common/mil/diagnostic.h"
#include "common/mil/parser.h"
#include "common/mil/weights.h"

namespace anerd::mil {

struct CheckReport {
  bool ok = false;              // parsed and verified without errors
  std::string entry_signature;  // "main(tensor<fp16, [1, 64, 1, 16]> x) -> (tensor<...> y)"
  int64_t op_count = 0;         // operations over all functions
  uint64_t weight_bytes = 0;    // bytes of the distinct BLOBFILE tensors the program declares
  std::vector<Diagnostic> diagnostics;  // errors and warnings, in source order of discovery
};

// Never fails: problems are reported in `diagnostics` (a parse error yields exactly one).
// With `ane_rules` (`anectl mil check --target ane`), the ANE rules table's findings are added
// (CheckAneProgram): an error for a rule anerd's lowering cannot satisfy (the daemon's ANE
// backend would fail the program), a warning for one the lowering rewrites away; messages start
// "ane rule <id>: ".
CheckReport CheckMilText(absl::string_view text, const WeightFiles& weights,
                         const ParseOptions& options = {}, const AneRules* ane_rules = nullptr);

// {"ok":..,"entry":..,"ops":..,"weight_bytes":..,"diagnostics":[{"severity","line","column",
// "message"}]} on one line.
std::string ReportToJson(const CheckReport& report);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_CHECK_H_
