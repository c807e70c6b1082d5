// The simulated ANE (`--backend ane-sim`): an AneDevice that runs on any OS by executing programs
// through the CPU backend in `ane` numerics, while enforcing the behaviours the real framework is
// documented to have, so that code above the device meets them in CI before it meets a Mac.
//
// The rules are the table's (SimRules::ane, common/mil/ane_rules.h) plus the device mechanics
// below; tests switch single rules to show what each catches. Errors look like the framework's
// (ane_sim_rules.h).
// Thread-safety: as AneDevice (ane_device.h): the device's counters are atomic and its state is
// guarded; one model is used by one thread at a time.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_SIM_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_SIM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ane_rules.h"
#include "server/backend/ane/ane_device.h"
#include "server/backend/ane/ane_sim_rules.h"

namespace anerd::backend::ane {

// The error the simulator returns once its compile budget is spent. The real framework's
// compileWithQoS:options:error: just returns NO with an NSError; Espresso#18 records the
// compiler's domain, Code=1 and "_ANECompiler : ANECCompile() FAILED". The simulator uses them
// for the budget failure too, so callers cannot tell it from a rejected program by the error's
// domain and code alone — as on the real device.
inline constexpr char kSimErrorDomain[] = "com.apple.appleneuralengine.compiler";
inline constexpr char kSimCompileFailedText[] = "_ANECompiler : ANECCompile() FAILED";

struct SimRules {
  // docs/ANE_NOTES.md §1.8, §11 (maderix/ANE README.md: "~119 compiles per process"): compile
  // attempts allowed (failed ones count too: the compiler leaks per attempt), after which every
  // compile fails with kSimCompileFailedText. 0 = unlimited. The simulator models one process per
  // device instance (the daemon's worker processes each own one device).
  int64_t compile_budget = kFrameworkCompileBudget;
  // What Info() reports as the chip and OS build: the key a capability probe of this device is
  // persisted under (tests set another OS build to show a probe does not carry over).
  std::string chip = "ane-sim";
  std::string os_build = "simulated";
  // docs/ANE_NOTES.md §1.8, §11 (maderix/ANE training/test_weight_reload.m, training/m5result.md):
  // weights are baked at compile time; changing the weight bytes afterwards and unloading/reloading
  // does not change results. When false the simulator instead re-reads the caller's weight buffers
  // on every Load (the "delta reload" behaviour Orion reports, docs/ANE_NOTES.md §A.3), so tests
  // can show the backend never relies on it.
  bool bake_weights = true;
  // docs/ANE_NOTES.md §1.8 (maderix/ANE training/test_ane_sdpa5.m): scaled_dot_product_attention
  // ignores attn_mask.
  bool ignore_attn_mask = true;
  // The rules table in force (common/mil/ane_rules.h): surfaces (minimum size, width multiple,
  // alignment, over-allocation, counts, uniform sizes, alphabetical binding), ops (concat, gelu,
  // softmax axis, matmul inner dim, cast, conv input channels), buildInfo. Enforced by
  // ane_sim_rules.cc; the device always computes in `ane` numerics (docs/ANE_NOTES.md §11, §12.6).
  mil::AneRules ane = mil::DefaultAneRules();
  // Whether Info() reports `ane` as the device's rules (the lowering then follows them). False:
  // Info() reports the table's rules for `chip` while the device enforces `ane` — a device whose
  // rules differ from the table and are unknown until a capability probe measures them, as on
  // real hardware. ParseSimSettings sets it false when the settings change a rule.
  bool reports_rules = true;
  // Faults injected deterministically (transient load failure, compile failure near the budget,
  // every compile failing from an attempt on: ane_sim_rules.h).
  SimFaults faults;
};

// The one parser of the simulator's test settings (anerd --testonly_sim, handed verbatim to each
// worker process): comma-separated KEY=VALUE items over the defaults. Keys: the SimFaults fields
// (load_fail_every, compile_fail_before_budget, compile_fail_from_attempt), compile_budget, chip,
// os_build, and any ANE rule id (ane_rules.h SetAneRule: a device that differs from the table,
// e.g. min_surface_bytes=65536). INVALID_ARGUMENT naming the item for an unknown key or a bad
// value; "" gives the defaults. Input of at most 4096 bytes.
absl::StatusOr<SimRules> ParseSimSettings(absl::string_view spec);

// Counters and QoS (issue 18 item 6), modelled, never measured:
//   * hardware time: every evaluation reports PerfCounters::hardware_ns = SimModelledHardwareNs of
//     the program, with PerfCounters::simulated set. A roofline of the seed's numbers: a fixed
//     kSimDispatchNs per evaluation plus the larger of FLOPs / kSimFlopsPerNs (19 TFLOPS, the
//     seed's inmem_peak reference, docs/ANE_NOTES.md §7) and bytes moved / kSimBytesPerNs (inputs,
//     outputs and weights once). FLOPs: 2 per multiply-accumulate of conv and matmul, 1 per output
//     element of every other op. Deterministic: the same program always reports the same time.
//   * QoS: every value 0..kMaxQos is accepted for compile, load and evaluate and changes nothing,
//     as m5result.md measured on M4/M5 ("no measurable latency difference").
inline constexpr uint64_t kSimDispatchNs = 10000;
inline constexpr double kSimFlopsPerNs = 19000;  // 19 TFLOPS
inline constexpr double kSimBytesPerNs = 100;    // 100 GB/s
// The modelled execution time of `mil_text` (0 when it does not parse).
uint64_t SimModelledHardwareNs(absl::string_view mil_text);

// Creates a simulated device with `rules` (default: the table's rules, no faults).
std::unique_ptr<AneDevice> CreateSimDevice(const SimRules& rules = SimRules{});

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_SIM_H_
