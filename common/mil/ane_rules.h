// The ANE rules table (issue 18 item 1): every rule the evidence gives for programs and surfaces on
// the Apple Neural Engine's private-framework path, as data, with the source(s) of each value and
// the chips/OS it is known for. Read by the three places that must agree:
//   * the ANE lowering (server/backend/ane/ane_lowering.cc) satisfies them,
//   * the simulated device (server/backend/ane/ane_sim_rules.cc) rejects programs and bindings
//     that break them, failing the way the framework does,
//   * `anectl mil check --target ane` reports them (CheckAneProgram below).
// The evidence behind each rule is summarised in docs/ANE_NOTES.md (§1.4, §1.5, §1.8); source
// names below: "seed" = maderix/ANE, "Orion" = mechramc/Orion
// docs/ane_constraints.md (#N = its numbered constraint), "Espresso" = christopherkarani/Espresso
// ANEValidationPass, "rustane" = ncdrone/rustane README, "ANE#N" = a maderix/ANE issue or PR.
//
// A rule whose sources disagree is a switch (ConcatPolicy, multi-surface binding): both values
// and their sources are in the table row; AneRules holds the value in force.
//
// It lives in common/mil (not server/) because anectl, which never links server code, checks
// programs against it offline. Pure data and pure functions; thread-safe.
#ifndef ANERD_COMMON_MIL_ANE_RULES_H_
#define ANERD_COMMON_MIL_ANE_RULES_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ir.h"

namespace anerd::mil {

// concat: the seed concatenates along channels (axis 1) in its training kernels on M4 hardware;
// Orion (#1, "ANECCompile() FAILED" for concat(axis=1) on M4 Max) and Espresso (concat banned)
// reject every concat. A conflict: a switch.
enum class ConcatPolicy { kChannelsOnly, kBanned };

// Where a rule bites on the device.
enum class RuleStage {
  kCompile,   // compileWithQoS: fails (compiler domain, Code=1)
  kEvaluate,  // evaluateWithQoS: fails with status=0x1d (Code=8), or silently corrupts
  kProcess,   // per-process limits (the compile budget)
};

// The values in force for one device. Defaults: the strictest evidence that still lets the seed's
// own M4 training kernels compile (chip-specific rules are switched on by AneRulesForChip).
struct AneRules {
  std::string profile = "default";  // "default" (M3/M4/M5 class), "m1-m2"

  // Surfaces.
  int64_t min_surface_bytes = 49152;      // Orion #4, Espresso (49,152 B); seed used >= 8,192 B
  int64_t surface_width_multiple = 16;    // rustane README (else silent corruption)
  int64_t surface_alignment = 128;        // ANE PR #35 (M5 needs 128-byte aligned surfaces)
  bool overallocated_surfaces_ok = true;  // Orion #12, #14: the first C*S values are read
  // Several input / output surfaces per request: Orion #2, #12 (work when all have the same
  // allocation size) vs seed README "single-input constraint" (0x1d). A switch.
  bool multi_input_surfaces = true;
  bool multi_output_surfaces = true;
  bool uniform_surface_sizes = true;  // Orion #2, #12
  bool alphabetical_binding = true;   // Orion #3, #13: surfaces bind in name order
  bool fp16_fp32_surfaces_only =
      true;  // seed docs/ANE_NOTES.md §1.4: a surface carries fp16 or fp32

  // Packing and ops.
  int64_t min_pack_channels = 64;  // seed commit 184b182, docs/ANE_NOTES.md §11
  ConcatPolicy concat = ConcatPolicy::kChannelsOnly;
  bool cast_supported = true;                 // false on M1/M2 (ANE PR #6)
  bool gelu_supported = false;                // Orion #10
  bool softmax_pow2_axis = true;              // Espresso (axis 1), hollance/neural-engine#44
  int64_t matmul_runtime_inner_multiple = 0;  // 32 on M1 with two runtime operands (ANE#47)
  int64_t conv_input_channels_limit = 32000;  // seed ane_classifier.h: IC >= this rejected
  bool build_info_required = true;            // seed, Orion and Espresso always emit buildInfo
  bool attn_mask_ignored = true;              // seed test_ane_sdpa5, Orion #6
  bool weights_baked = true;                  // seed test_weight_reload, Orion #7

  // Compile budget (enforced by the backend/worker: issue 18 item 4).
  int64_t compile_budget = 100;           // seed stops at 100 (stories_config.h)
  int64_t framework_compile_limit = 119;  // seed README, Orion #5

  // Where values that are not the table's come from: rule id -> origin (e.g. "probed at
  // 2026-12-07T06:14:37Z on Apple M4, 24E248"). Rules absent here are the table's.
  std::map<std::string, std::string> origins;
};

// The default profile (the table's values).
AneRules DefaultAneRules();
// The profile for a chip name as the framework reports it ("Apple M1 Pro", "Apple M4"...);
// M1/M2 switch off `cast` and turn on the matmul inner-dimension rule. Unknown: the default.
AneRules AneRulesForChip(absl::string_view chip);

// One row of the table: what `anectl doctor --json` prints and the docs list.
struct AneRuleRow {
  std::string id;           // e.g. "min_surface_bytes"
  std::string value;        // the value in force, as text
  std::string alternative;  // the other value of a switch ("" when sources agree)
  std::string sources;      // the source(s) of `value`
  std::string alternative_sources;
  std::string applies_to;  // chips/OS where known
  RuleStage stage = RuleStage::kCompile;
  std::string lowering;  // how the lowering satisfies it, or "rejected" when it cannot
  std::string description;
  std::string origin = "table";  // "table", or where the value in force was measured
};
std::vector<AneRuleRow> DescribeAneRules(const AneRules& rules);
absl::string_view RuleStageName(RuleStage stage);

// A program that breaks a rule.
struct AneViolation {
  std::string rule;  // AneRuleRow::id
  RuleStage stage = RuleStage::kCompile;
  bool lowered_away = false;  // anerd's lowering rewrites it (mil check: a warning)
  SourceLoc loc;
  std::string message;
};

// The rules a MIL program breaks as the device would see it (its `main` I/O each bound to a
// surface of exactly its declared size, ops as written; so min_surface_bytes and
// uniform_surface_sizes describe that naive binding, which the lowering's allocation avoids). Needs
// only declared types, so it works on unverified programs too.
std::vector<AneViolation> CheckAneProgram(const Program& program, const AneRules& rules);

// Whether the ANE can run `op` on inputs of these types under `rules`, as far as types alone tell
// (what Backend::Supports asks): false for what no rewrite fixes (cast where the chip has none, a
// conv at the input-channel limit, any concat when banned, an M1 matmul whose inner dimension
// breaks the multiple), with the rule id in `*rule` when not null.
bool AneOpSupported(absl::string_view op, const std::vector<TensorType>& inputs,
                    const AneRules& rules, std::string* rule = nullptr);

// One bound surface at evaluation: the bytes its MIL parameter declares and the bytes allocated.
struct SurfaceUse {
  std::string name;
  int64_t declared_bytes = 0;
  int64_t allocated_bytes = 0;
};
// Binding rules (min size, over-allocation, uniform sizes, surface counts); "" when fine, else
// the violated rule's id and message in `violation`.
bool CheckAneBinding(const std::vector<SurfaceUse>& inputs, const std::vector<SurfaceUse>& outputs,
                     const AneRules& rules, AneViolation* violation);

// A row as one device fact (key "ane_rule.<id>", fields joined by the ASCII unit separator), so the
// rules in force travel with the backend's facts (worker wire, GetInfo) to `anectl doctor`.
inline constexpr char kAneRuleFactPrefix[] = "ane_rule.";
std::string EncodeAneRuleFact(const AneRuleRow& row);
// Inverse of EncodeAneRuleFact for the fact's key and value; false when it is not a rule fact.
bool DecodeAneRuleFact(absl::string_view key, absl::string_view value, AneRuleRow* row);

// Sets rule `id` of `rules` from `value` written as DescribeAneRules prints it ("65536", "true",
// "banned"...). INVALID_ARGUMENT naming the rule for an unknown id or a value it cannot take.
absl::Status SetAneRule(absl::string_view id, absl::string_view value, AneRules* rules);

// Values that replace the table's for one device (a capability probe's measurements, persisted
// per chip and OS build) and where they come from.
struct AneRuleOverrides {
  std::map<std::string, std::string> values;  // rule id -> value (as SetAneRule reads it)
  std::string origin;                         // recorded in AneRules::origins for each
  bool empty() const { return values.empty(); }
};
// `rules` with every override set and its origin recorded; INVALID_ARGUMENT as SetAneRule.
absl::StatusOr<AneRules> ApplyAneRuleOverrides(const AneRules& rules,
                                               const AneRuleOverrides& overrides);
// One line ("origin;id=value;id=value", ';' and '=' removed from the origin) and its inverse
// (INVALID_ARGUMENT for a malformed entry): how a worker process receives them on its command
// line.
std::string EncodeAneRuleOverrides(const AneRuleOverrides& overrides);
absl::StatusOr<AneRuleOverrides> DecodeAneRuleOverrides(absl::string_view text);

// Whether `n` is a power of two (n > 0).
bool IsPowerOfTwo(int64_t n);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_ANE_RULES_H_
