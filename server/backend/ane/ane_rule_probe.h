// The first-run capability probe (issue 18 item 7, the device half): small programs run straight
// on an AneDevice (no lowering) that measure the rules which differ per chip and OS — the smallest
// surface that evaluates, concat on each axis, a width<->channel reshape, multi-input binding
// order, gelu / non-power-of-two softmax / cast acceptance, the width multiple, whether weights
// are baked — each result checked against the CPU backend. On ane-sim it reproduces the rules
// table (the test says so); on a Mac it measures the chip. MeasuredRuleValues turns the
// measurements into the rule values the lowering prefers over the table's (ApplyRuleProbe applies
// them). AneBackend::ProbeDeviceRules runs it; the engine (server/engine/rule_probe_manager.h)
// persists the result per (chip, OS build) and hands it back to the backend at every start.
// Runs at most kRuleProbeCompiles compiles: callers count them against the device's budget.
// Thread-compatible: one probe at a time per device.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_RULE_PROBE_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_RULE_PROBE_H_

#include <string>
#include <vector>

#include "common/mil/ane_rules.h"
#include "server/backend/ane/ane_device.h"
#include "server/backend/backend.h"

namespace anerd::backend::ane {

using RuleProbeResult = RuleMeasurement;  // expected = the value in `table`

// The most device compiles one ProbeAneRules makes (7 surface sizes + 10 programs).
inline constexpr int64_t kRuleProbeCompiles = 17;

std::vector<RuleProbeResult> ProbeAneRules(AneDevice& device, const mil::AneRules& table);

// The table rule values the measurements establish (min_surface_bytes, concat, binding order or
// single-input, gelu, softmax axis, cast, weights baked), as AneRuleOverrides with `origin`.
// Measurements that do not parse (a failed program, "none up to 65536") establish nothing.
mil::AneRuleOverrides MeasuredRuleValues(const std::vector<RuleProbeResult>& results,
                                         const std::string& origin);

// `table` with MeasuredRuleValues applied.
mil::AneRules ApplyRuleProbe(const mil::AneRules& table,
                             const std::vector<RuleProbeResult>& results);

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_RULE_PROBE_H_
