// The simulated ANE (`--backend ane-sim`): an AneDevice that runs on any OS by executing programs
// through the CPU backend in `ane` numerics, while enforcing the behaviours the real framework is
// documented to have, so that code above the device meets them in CI before it meets a Mac.
//
// Every rule is one switch in SimRules, documented with its source. Defaults model the framework
// as ane-seed-spec describes it; tests turn single rules off to show what a rule catches.
// Thread-safety: as AneDevice (ane_device.h): the device's counters are atomic and its state is
// guarded; one model is used by one thread at a time.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_SIM_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_SIM_H_

#include <cstdint>
#include <memory>

#include "server/backend/ane/ane_device.h"

namespace anerd::backend::ane {

// The error the simulator returns once its compile budget is spent. The real framework's
// compileWithQoS:options:error: just returns NO with an NSError (spec 1.8, 12.5: the exact domain,
// code and text are not recorded anywhere); anchors §1.3 quotes "ANECCompile() FAILED". The
// simulator uses that text under the framework's error domain so callers cannot tell the budget
// failure from a rejected program by the error alone — as on the real device.
inline constexpr char kSimErrorDomain[] = "com.apple.appleneuralengine";
inline constexpr char kSimCompileFailedText[] = "ANECCompile() FAILED";
// Multi-input/mis-sized surface evaluations fail with status 0x1d (spec 1.8; anchors §0 item 4).
inline constexpr int64_t kSimBadSurfaceCode = 0x1d;

struct SimRules {
  // spec 1.8 + 11 (README "~119 compiles per process"): successful compiles allowed, after which
  // every compile fails with kSimCompileFailedText. 0 = unlimited. The simulator models one
  // process per device instance (the daemon's worker processes each own one device).
  int64_t compile_budget = kFrameworkCompileBudget;
  // spec 1.8 + 11 (test_weight_reload, m5result.md): weights are baked at compile time; changing
  // the weight bytes afterwards and unloading/reloading does not change results. When false the
  // simulator instead re-reads the caller's weight buffers on every Load (the "delta reload"
  // behaviour Orion reports, anchors §0 item 3), so tests can show the backend never relies on it.
  bool bake_weights = true;
  // spec 1.8 (test_ane_sdpa5): scaled_dot_product_attention ignores attn_mask.
  bool ignore_attn_mask = true;
  // spec 1.5, 1.8, 11 ("single-input constraint", error 0x1d): input/output surfaces accepted per
  // evaluation; more fail at evaluate with code 0x1d.
  int max_inputs = 1;
  int max_outputs = 1;
  // spec 1.4 + 11: a surface holds exactly its tensor (size == input/output bytes, else 0x1d);
  // anchors §0 item 6 / maderix/ANE#35: M5 needs 128-byte aligned surfaces. Surfaces whose size
  // is not a multiple of surface_alignment or below min_surface_bytes are refused at allocation.
  // (The 48 KiB minimum claimed by forks, spec Appendix A, is unverified: off by default.)
  int64_t surface_alignment = 128;
  int64_t min_surface_bytes = 128;
  // spec 11 + 12.6: the ANE computes in fp16. Programs always run in `ane` numerics (every
  // fp16-declared value rounded after each op) whatever the caller asks, and program inputs and
  // outputs must be fp16 or fp32 (a surface carries one of the two; spec 1.4).
  bool fp16_only = true;
};

// Creates a simulated device with `rules`.
std::unique_ptr<AneDevice> CreateSimDevice(const SimRules& rules = SimRules{});

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_SIM_H_
