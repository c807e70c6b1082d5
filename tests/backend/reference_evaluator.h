// An independent reference evaluator for the backend conformance suite: interprets a verified MIL
// program op by op with plain loops in double precision, then rounds every result per the numerics
// mode (ane: fp16-declared values to fp16, RNE; fp32: every float value to fp32). Written from the
// op semantics (docs/ANE_NOTES.md §3.4), sharing no code with any backend. Slow; test sizes only.
#ifndef ANERD_TESTS_BACKEND_REFERENCE_EVALUATOR_H_
#define ANERD_TESTS_BACKEND_REFERENCE_EVALUATOR_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mil/verifier.h"

namespace anerd::testing {

struct RefTensor {
  mil::DType dtype = mil::DType::kFp32;
  std::vector<int64_t> shape;
  std::vector<double> values;
};

struct RefOptions {
  bool ane_numerics = true;
  bool ignore_attn_mask = false;
};

// Outputs by name. UNIMPLEMENTED for an op the reference does not know.
absl::StatusOr<std::map<std::string, RefTensor>> EvaluateReference(
    const mil::VerifiedProgram& program, const std::map<std::string, RefTensor>& inputs,
    const RefOptions& options);

// Exact double -> nearest fp16 value (RNE, subnormals, overflow to inf).
double RoundToFp16(double v);

}  // namespace anerd::testing

#endif  // ANERD_TESTS_BACKEND_REFERENCE_EVALUATOR_H_
