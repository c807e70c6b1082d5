// The first-run capability probe (issue 18 item 7, the device half): small programs run straight
// on an AneDevice (no lowering) that measure the rules which differ per chip and OS — the smallest
// surface that evaluates, concat on each axis, a width<->channel reshape, multi-input binding
// order, gelu / non-power-of-two softmax / cast acceptance, the width multiple, whether weights
// are baked — each result checked against the CPU backend. On ane-sim it reproduces the rules
// table (the test says so); on a Mac it measures the chip. ApplyRuleProbe turns the measurements
// into the AneRules the lowering should prefer over the table's defaults.
// Not yet wired: persisting per (chip, OS build) and `anectl doctor --probe` (see the report).
// Runs many compiles (about 15): callers count them against the device's budget.
// Thread-compatible: one probe at a time per device.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_RULE_PROBE_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_RULE_PROBE_H_

#include <string>
#include <vector>

#include "common/mil/ane_rules.h"
#include "server/backend/ane/ane_device.h"

namespace anerd::backend::ane {

struct RuleProbeResult {
  std::string rule;      // an AneRuleRow id, or "width_channel_reshape" (no table row)
  std::string expected;  // the table's value (in `table`)
  std::string measured;  // what the device showed
  bool agrees = false;   // measured == expected
  std::string detail;    // the device's error text or the mismatch, when there is one
};

std::vector<RuleProbeResult> ProbeAneRules(AneDevice& device, const mil::AneRules& table);

// `table` with every measured value that parses applied (concat, surfaces, ops, binding).
mil::AneRules ApplyRuleProbe(const mil::AneRules& table,
                             const std::vector<RuleProbeResult>& results);

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_RULE_PROBE_H_
