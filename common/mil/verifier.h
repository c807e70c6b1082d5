// VerifyProgram: checks an unverified Program against the op registry and its weight files and,
// on success, returns a VerifiedProgram — the only form backends compile.
//
// Checks: a `main` function exists; every name is defined once and before use; every op is known,
// its operands have the types its signature wants, its attributes are legal, and its declared
// output types equal inference; every BLOBFILE reference points at a valid metadata record inside a
// supplied weight file with the declared type's bytes inside the file (a record whose size or dtype
// disagrees with the declaration is a warning: docs/ANE_NOTES.md §2.2). All problems found are
// reported together.
#ifndef ANERD_COMMON_MIL_VERIFIER_H_
#define ANERD_COMMON_MIL_VERIFIER_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mil/diagnostic.h"
#include "common/mil/ir.h"
#include "common/mil/weights.h"

namespace anerd::mil {

// A program that passed VerifyProgram together with its weight files. Immutable and cheap to copy
// (shared ownership); safe to use from any thread.
class VerifiedProgram {
 public:
  const Program& program() const { return *program_; }
  const Function& main() const { return *program_->main(); }
  const WeightFiles& weights() const { return *weights_; }
  const std::vector<Diagnostic>& warnings() const { return *warnings_; }

 private:
  friend absl::StatusOr<VerifiedProgram> VerifyProgram(Program program, WeightFiles weights);
  VerifiedProgram() = default;
  std::shared_ptr<const Program> program_;
  std::shared_ptr<const WeightFiles> weights_;
  std::shared_ptr<const std::vector<Diagnostic>> warnings_;
};

// Returns INVALID_ARGUMENT listing every error (one "LINE:COL: error: ..." per line).
absl::StatusOr<VerifiedProgram> VerifyProgram(Program program, WeightFiles weights = {});

// Every diagnostic (errors and warnings) without building a VerifiedProgram.
std::vector<Diagnostic> CheckProgram(const Program& program, const WeightFiles& weights);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_VERIFIER_H_
