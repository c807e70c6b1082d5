// The simulated ANE's rule enforcement and fault injection (issue 18 item 3), kept apart from the
// device mechanics in ane_device_sim.cc. The rules come from the table (common/mil/ane_rules.h),
// so the simulator, the lowering and `anectl mil check --target ane` cannot disagree. Failures
// look like the framework's:
//   * compile: domain com.apple.appleneuralengine.compiler, Code=1, "_ANECompiler :
//     ANECCompile() FAILED" (Espresso#18), followed by the simulator's reason;
//   * evaluation: domain com.apple.appleneuralengine, Code=8, the text carrying "status=0x1d"
//     (Orion #2, #4, #12: "ANEProgramProcessRequestDirect() Failed with status=0x1d").
// Pure functions except SimFaultInjector, whose counters are atomic (thread-safe).
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_SIM_RULES_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_SIM_RULES_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/mil/ane_rules.h"
#include "common/mil/ir.h"

namespace anerd::backend::ane {

inline constexpr char kAneCompilerErrorDomain[] = "com.apple.appleneuralengine.compiler";
inline constexpr char kAneErrorDomain[] = "com.apple.appleneuralengine";
inline constexpr int64_t kAneCompileErrorCode = 1;
inline constexpr int64_t kAneEvalErrorCode = 8;
inline constexpr char kAneCompileFailedText[] = "_ANECompiler : ANECCompile() FAILED";
inline constexpr char kAneEvalFailedText[] =
    "ANEProgramProcessRequestDirect() Failed with status=0x1d : Program Inference error";

// INVALID_ARGUMENT carrying the compiler's error (DeviceError payload) plus `reason`.
absl::Status SimCompileError(absl::string_view reason);
// INVALID_ARGUMENT carrying the evaluation error (Code=8, status=0x1d) plus `reason`.
absl::Status SimEvalError(absl::string_view reason);

// The compiler's bare failure (no reason), as near the budget: INTERNAL, Code=1.
absl::Status SimGenericCompileFailure();
// A transient load failure (the seed's bridge retries once after 100 ms): UNAVAILABLE.
absl::Status SimTransientLoadError();

// The rules the program breaks at compile time (a compile error naming each), else OK.
absl::Status SimCheckCompile(const mil::Program& program, const mil::AneRules& rules);
// The program-level rules that bite at evaluation (the width multiple, the M1 matmul rule): the
// hardware corrupts silently; the simulator fails the evaluation instead. "" when none.
std::string SimEvalFinding(const mil::Program& program, const mil::AneRules& rules);
// The binding rules (ane_rules.h CheckAneBinding) as an evaluation error, else OK.
absl::Status SimCheckBinding(const std::vector<mil::SurfaceUse>& inputs,
                             const std::vector<mil::SurfaceUse>& outputs,
                             const mil::AneRules& rules);
// Indices of `names` in binding order (alphabetical when the rules say so).
std::vector<size_t> SimBindingOrder(const std::vector<std::string>& names,
                                    const mil::AneRules& rules);

// Faults the real device shows, injected deterministically.
struct SimFaults {
  // Every Nth Load call fails once with a transient error (the backend retries after 100 ms,
  // docs/ANE_NOTES.md §1.3). 0 = never.
  int64_t load_fail_every = 0;
  // The compile whose attempt number is budget - N (1-based attempts) fails with the compiler's
  // generic text, as the real compiler does near its ~119 limit. 0 = never.
  int64_t compile_fail_before_budget = 0;
  // Every compile attempt from this 1-based attempt on fails with the compiler's generic text
  // while Info() still advertises the budget: the real cliff is approximate ("~119"), so the
  // device may run out before anerd's count says so. 0 = never.
  int64_t compile_fail_from_attempt = 0;
};
// All of them are set from one place: the daemon's --testonly_sim flag, parsed by
// ParseSimSettings (ane_device_sim.h) and passed explicitly to every worker.

class SimFaultInjector {
 public:
  explicit SimFaultInjector(const SimFaults& faults) : faults_(faults) {}
  // Whether this Load call fails (counts calls).
  bool NextLoadFails();
  // Whether this compile attempt fails under a budget of `budget` (0 = none; counts attempts).
  bool NextCompileFails(int64_t budget);

 private:
  const SimFaults faults_;
  std::atomic<int64_t> loads_{0};
  std::atomic<int64_t> compiles_{0};
};

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_SIM_RULES_H_
