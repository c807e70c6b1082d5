// The ANE rules table and the program/binding checks over it (ane_rules.h).
#include "common/mil/ane_rules.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace anerd::mil {
namespace {

std::string Bool(bool b) { return b ? "true" : "false"; }

// Declared types and constant values of one function, by value name.
class Values {
 public:
  explicit Values(const Function& f) {
    for (const NamedType& in : f.inputs) types_[in.name] = in.type;
    for (const Operation& op : f.ops) {
      for (const NamedType& o : op.outputs) types_[o.name] = o.type;
      if (op.op == "const" && op.outputs.size() == 1) {
        if (const Argument* val = op.FindAttribute("val");
            val != nullptr && val->kind == Argument::Kind::kLiteral) {
          consts_[op.outputs[0].name] = &val->literal;
        }
      }
    }
  }
  const TensorType* Type(const Argument* a) const {
    if (a == nullptr) return nullptr;
    if (a->kind == Argument::Kind::kLiteral) return &a->literal.type;
    if (a->kind != Argument::Kind::kRef) return nullptr;
    auto it = types_.find(a->ref);
    return it == types_.end() ? nullptr : &it->second;
  }
  const Literal* Const(const Argument* a) const {
    if (a == nullptr) return nullptr;
    if (a->kind == Argument::Kind::kLiteral) return &a->literal;
    if (a->kind != Argument::Kind::kRef) return nullptr;
    auto it = consts_.find(a->ref);
    return it == consts_.end() ? nullptr : it->second;
  }
  std::optional<int64_t> Int(const Argument* a) const {
    const Literal* l = Const(a);
    if (l == nullptr || l->values.size() != 1) return std::nullopt;
    return static_cast<int64_t>(l->values[0]);
  }
  bool IsRuntime(const Argument* a) const {
    return a != nullptr && a->kind == Argument::Kind::kRef && consts_.count(a->ref) == 0;
  }
  const TensorType* Type(const std::string& name) const {
    auto it = types_.find(name);
    return it == types_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, TensorType> types_;
  std::map<std::string, const Literal*> consts_;
};

// `axis` normalised to [0, rank); nullopt when out of range.
std::optional<int64_t> NormAxis(int64_t axis, int rank) {
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return std::nullopt;
  return axis;
}

class Checker {
 public:
  Checker(const AneRules& rules, std::vector<AneViolation>* out) : rules_(rules), out_(out) {}

  void Add(const std::string& rule, RuleStage stage, bool lowered_away, SourceLoc loc,
           std::string message) {
    out_->push_back({rule, stage, lowered_away, loc, std::move(message)});
  }

  void CheckIo(const Function& f, const Values& v) {
    std::vector<std::pair<std::string, TensorType>> ins, outs;
    for (const NamedType& in : f.inputs) ins.emplace_back(in.name, in.type);
    for (const std::string& name : f.outputs) {
      if (const TensorType* t = v.Type(name)) outs.emplace_back(name, *t);
    }
    CheckSurfaces("input", ins, rules_.multi_input_surfaces, f.loc);
    CheckSurfaces("output", outs, rules_.multi_output_surfaces, f.loc);
  }

  void CheckOp(const Operation& op, const Values& v) {
    if (op.op == "concat") return CheckConcat(op, v);
    if (op.op == "gelu" && !rules_.gelu_supported) {
      Add("gelu_supported", RuleStage::kCompile, true, op.loc,
          "gelu is not an op the ANE compiler accepts (anerd lowers it to tanh/sigmoid ops)");
    }
    if (op.op == "softmax" && rules_.softmax_pow2_axis) CheckSoftmax(op, v);
    if (op.op == "cast" && !rules_.cast_supported) {
      Add("cast_supported", RuleStage::kCompile, false, op.loc,
          absl::StrCat("cast is not runnable on this chip (", rules_.profile,
                       "): use fp16 inputs and outputs"));
    }
    if (op.op == "matmul" && rules_.matmul_runtime_inner_multiple > 0) CheckMatmul(op, v);
    if (op.op == "conv" && rules_.conv_input_channels_limit > 0) {
      const TensorType* x = v.Type(op.FindInput("x"));
      if (x != nullptr && x->rank() >= 2 && x->shape[1] >= rules_.conv_input_channels_limit) {
        Add("conv_input_channels_limit", RuleStage::kCompile, false, op.loc,
            absl::StrCat("conv with ", x->shape[1], " input channels (the ANE rejects ",
                         rules_.conv_input_channels_limit, " and more; use matmul)"));
      }
    }
  }

 private:
  void CheckSurfaces(const char* what, const std::vector<std::pair<std::string, TensorType>>& io,
                     bool multi_ok, SourceLoc loc) {
    if (io.size() > 1 && !multi_ok) {
      Add(absl::StrCat("multi_", what, "_surfaces"), RuleStage::kEvaluate, true, loc,
          absl::StrCat(io.size(), " ", what, "s: this device takes one ", what,
                       " surface (status=0x1d); anerd packs them into one"));
    }
    bool sorted = true, uniform = true;
    for (size_t i = 0; i < io.size(); ++i) {
      const auto& [name, type] = io[i];
      if (i > 0 && io[i - 1].first > name) sorted = false;
      if (i > 0 && io[i - 1].second.NumBytes() != type.NumBytes()) uniform = false;
      if (rules_.fp16_fp32_surfaces_only && type.dtype != DType::kFp16 &&
          type.dtype != DType::kFp32) {
        Add("fp16_fp32_surfaces_only", RuleStage::kCompile, true, loc,
            absl::StrCat(what, " ", name, " is ", type.ToString(),
                         ": a surface carries fp16 or fp32 (anerd packs it into one)"));
      }
      const int64_t width = type.is_scalar() ? 1 : type.shape.back();
      if (rules_.surface_width_multiple > 0 && width % rules_.surface_width_multiple != 0) {
        Add("surface_width_multiple", RuleStage::kEvaluate, true, loc,
            absl::StrCat(what, " ", name, " has width ", width, ", not a multiple of ",
                         rules_.surface_width_multiple,
                         " (reported to corrupt silently; anerd repacks it)"));
      }
      if (type.NumBytes() < rules_.min_surface_bytes) {
        Add("min_surface_bytes", RuleStage::kEvaluate, true, loc,
            absl::StrCat(what, " ", name, " is ", type.NumBytes(), " bytes; surfaces under ",
                         rules_.min_surface_bytes,
                         " bytes fail with status=0x1d (anerd over-allocates its surface)"));
      }
    }
    if (io.size() > 1 && rules_.alphabetical_binding && !sorted) {
      Add("alphabetical_binding", RuleStage::kEvaluate, true, loc,
          absl::StrCat(what,
                       "s are not in alphabetical order: the device binds surfaces in name "
                       "order (anerd declares them sorted)"));
    }
    if (io.size() > 1 && rules_.uniform_surface_sizes && !uniform) {
      Add("uniform_surface_sizes", RuleStage::kEvaluate, true, loc,
          absl::StrCat(what, "s differ in size: every ", what,
                       " surface must be allocated the same size (anerd allocates the largest)"));
    }
  }

  void CheckConcat(const Operation& op, const Values& v) {
    if (rules_.concat == ConcatPolicy::kBanned) {
      Add("concat", RuleStage::kCompile, false, op.loc,
          "concat is rejected by the ANE compiler under this profile (Orion #1, Espresso)");
      return;
    }
    const std::optional<int64_t> axis = v.Int(op.FindParam("axis"));
    const int rank = op.outputs.empty() ? 0 : op.outputs[0].type.rank();
    const std::optional<int64_t> a = axis ? NormAxis(*axis, rank) : std::nullopt;
    if (!a || *a != 1) {
      Add("concat", RuleStage::kCompile, true, op.loc,
          absl::StrCat("concat on axis ", axis ? absl::StrCat(*axis) : std::string("?"),
                       ": only channel (axis 1) concat is known to compile (anerd rewrites it "
                       "through transposes)"));
    }
  }

  void CheckSoftmax(const Operation& op, const Values& v) {
    const TensorType* x = v.Type(op.FindInput("x"));
    const std::optional<int64_t> axis = v.Int(op.FindParam("axis"));
    if (x == nullptr) return;
    const std::optional<int64_t> a = NormAxis(axis.value_or(-1), x->rank());
    if (!a || IsPowerOfTwo(x->shape[*a])) return;
    Add("softmax_pow2_axis", RuleStage::kCompile, rules_.concat != ConcatPolicy::kBanned, op.loc,
        absl::StrCat("softmax over an axis of length ", x->shape[*a],
                     ", not a power of two (anerd pads the axis when concat is allowed)"));
  }

  void CheckMatmul(const Operation& op, const Values& v) {
    const Argument* xa = op.FindInput("x");
    const Argument* ya = op.FindInput("y");
    const TensorType* x = v.Type(xa);
    if (x == nullptr || x->rank() < 1 || !v.IsRuntime(xa) || !v.IsRuntime(ya)) return;
    const bool tx = v.Int(op.FindParam("transpose_x")).value_or(0) != 0;
    const int64_t inner = tx && x->rank() >= 2 ? x->shape[x->rank() - 2] : x->shape.back();
    if (inner % rules_.matmul_runtime_inner_multiple != 0) {
      Add("matmul_runtime_inner_multiple", RuleStage::kEvaluate, false, op.loc,
          absl::StrCat("matmul of two runtime operands with inner dimension ", inner,
                       ", not a multiple of ", rules_.matmul_runtime_inner_multiple,
                       " (silent zeros on ", rules_.profile, ", ANE#47)"));
    }
  }

  const AneRules& rules_;
  std::vector<AneViolation>* out_;
};

}  // namespace

bool IsPowerOfTwo(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

AneRules DefaultAneRules() { return AneRules{}; }

AneRules AneRulesForChip(absl::string_view chip) {
  AneRules rules;
  const std::string c = absl::AsciiStrToLower(chip);
  // "Apple M1", "Apple M1 Pro", "Apple M2 Max"... but not "Apple M10".
  for (const char* family : {"m1", "m2"}) {
    const size_t at = c.find(family);
    if (at == std::string::npos) continue;
    const size_t end = at + 2;
    if (end < c.size() && absl::ascii_isdigit(c[end])) continue;
    rules.profile = "m1-m2";
    rules.cast_supported = false;              // ANE PR #6 (M1 Pro, macOS 26.3)
    rules.matmul_runtime_inner_multiple = 32;  // ANE#47 (M1)
  }
  return rules;
}

absl::string_view RuleStageName(RuleStage stage) {
  switch (stage) {
    case RuleStage::kCompile:
      return "compile";
    case RuleStage::kEvaluate:
      return "evaluate";
    case RuleStage::kProcess:
      return "process";
  }
  return "?";
}

std::vector<AneRuleRow> DescribeAneRules(const AneRules& r) {
  const std::string all = "all chips seen (M1-M5), macOS 14-26";
  const bool banned = r.concat == ConcatPolicy::kBanned;
  std::vector<AneRuleRow> rows = {
      {"min_surface_bytes", absl::StrCat(r.min_surface_bytes), "8192",
       "Orion ane_constraints #4, ane_api_reference gotcha 1; Espresso ANEValidationPass",
       "seed (smallest surface it uses: 8,192 B)", "M4 Max (Orion), M-series (Espresso)",
       RuleStage::kEvaluate, "every surface allocated at least this size",
       "an I/O surface smaller than this fails at evaluation with status=0x1d"},
      {"surface_width_multiple", absl::StrCat(r.surface_width_multiple), "", "rustane README", "",
       "M4 (rustane)", RuleStage::kEvaluate,
       "I/O declared [1,C,1,W] with W a multiple; other shapes packed",
       "the spatial width (last dim) of an I/O tensor is a multiple of this, else silent "
       "corruption"},
      {"surface_alignment", absl::StrCat(r.surface_alignment), "", "ANE PR #35", "", "M5",
       RuleStage::kEvaluate, "allocation rounded up", "surface byte size a multiple of this"},
      {"overallocated_surfaces_ok", Bool(r.overallocated_surfaces_ok), "", "Orion #12, #14", "",
       "M4 Max", RuleStage::kEvaluate, "surfaces over-allocated, tensors packed at offset 0",
       "a surface larger than its tensor works: the ANE reads the first C*S values"},
      {"multi_input_surfaces", Bool(r.multi_input_surfaces), Bool(!r.multi_input_surfaces),
       r.multi_input_surfaces ? "Orion #12, #13 (LoRA, 3 inputs)" : "seed README",
       r.multi_input_surfaces ? "seed README (single-input constraint, 0x1d)" : "Orion #12, #13",
       "M4 Max (Orion); seed claim unrecorded", RuleStage::kEvaluate,
       "separate surfaces when true, one packed surface when false",
       "several input surfaces per request"},
      {"multi_output_surfaces", Bool(r.multi_output_surfaces), Bool(!r.multi_output_surfaces),
       r.multi_output_surfaces ? "Orion #1, #2, #3" : "seed (never used)",
       r.multi_output_surfaces ? "seed (never used)" : "Orion #1, #2, #3", "M4 Max (Orion)",
       RuleStage::kEvaluate, "separate surfaces when true, channel-packed when false",
       "several output surfaces per request"},
      {"uniform_surface_sizes", Bool(r.uniform_surface_sizes),
       "strictly ascending input / descending output sizes", "Orion #2, #12",
       "ANE#47 (M1, runtime weights: otherwise silent zeros)", "M4 Max (Orion); M1 (ANE#47)",
       RuleStage::kEvaluate, "all input (output) surfaces allocated the largest size",
       "input surfaces of different sizes (or outputs) fail with status=0x1d"},
      {"alphabetical_binding", Bool(r.alphabetical_binding), "", "Orion #3, #13", "", "M4 Max",
       RuleStage::kEvaluate, "parameters and results declared in name order, bound in that order",
       "surfaces bind to parameters/results in alphabetical order of their names"},
      {"fp16_fp32_surfaces_only", Bool(r.fp16_fp32_surfaces_only), "",
       "seed docs/ANE_NOTES.md §1.4", "", all, RuleStage::kCompile,
       "other dtypes packed into an fp16/fp32 surface", "a surface carries fp16 or fp32 values"},
      {"min_pack_channels", absl::StrCat(r.min_pack_channels), "",
       "seed commit 184b182, docs/ANE_NOTES.md §11", "", "M4 (seed)", RuleStage::kCompile,
       "packed surfaces are [1,C,1,16] with C >= this", "channels >= 64 when packing"},
      {"concat", banned ? "banned" : "channels_only", banned ? "channels_only" : "banned",
       banned ? "Orion #1; Espresso validateConcatBan" : "seed (training kernels, axis 1, M4)",
       banned ? "seed (training kernels, axis 1, M4)" : "Orion #1; Espresso validateConcatBan",
       "seed: M4/M5; Orion: M4 Max", RuleStage::kCompile,
       banned ? "no concat emitted; programs using concat rejected"
              : "non-channel concat rewritten through transposes; packing concats channels only",
       "concat in a program"},
      {"cast_supported", Bool(r.cast_supported), Bool(!r.cast_supported),
       r.cast_supported ? "seed (M4: fp32 I/O probes)" : "ANE PR #6",
       r.cast_supported ? "ANE PR #6 (M1/M2)" : "seed (M4)", "false on M1/M2 (ANE PR #6)",
       RuleStage::kCompile, "no cast in packing when false (host converts)",
       "the cast op (fp32<->fp16) runs"},
      {"gelu_supported", Bool(r.gelu_supported), "", "Orion #10; Espresso", "", "M4 Max (Orion)",
       RuleStage::kCompile, "gelu lowered to tanh/sigmoid ops", "gelu is rejected by the compiler"},
      {"softmax_pow2_axis", Bool(r.softmax_pow2_axis), "",
       "Espresso validateSoftmaxDimensions; hollance/neural-engine#44", "", "M-series",
       RuleStage::kCompile, "non-power-of-two softmax axis padded with -65504 and sliced",
       "softmax over a non-power-of-two axis is rejected"},
      {"matmul_runtime_inner_multiple", absl::StrCat(r.matmul_runtime_inner_multiple), "32",
       r.matmul_runtime_inner_multiple > 0 ? "ANE#47" : "seed (M4: inner 64 works)",
       r.matmul_runtime_inner_multiple > 0 ? "seed (M4)" : "ANE#47 (M1)", "32 on M1 (ANE#47)",
       RuleStage::kEvaluate, "rejected (not rewritten)",
       "matmul of two runtime operands needs its inner dim a multiple of this (0 = no rule)"},
      {"conv_input_channels_limit", absl::StrCat(r.conv_input_channels_limit), "",
       "seed ane_classifier.h, test_classifier; docs/ANE_NOTES.md §1.8", "", "M4 (seed)",
       RuleStage::kCompile, "rejected (not rewritten)",
       "conv with this many input channels or more is rejected"},
      {"build_info_required", Bool(r.build_info_required), "",
       "seed, Orion and Espresso always emit it", "", all, RuleStage::kCompile,
       "buildInfo added when the program lacks it", "programs carry buildInfo"},
      {"attn_mask_ignored", Bool(r.attn_mask_ignored), "", "seed test_ane_sdpa5; Orion #6", "", all,
       RuleStage::kCompile, "masked attention lowered to matmul + mask + softmax",
       "scaled_dot_product_attention ignores attn_mask"},
      {"weights_baked", Bool(r.weights_baked), "", "seed test_weight_reload; Orion #7", "", all,
       RuleStage::kCompile, "weights change = recompile", "BLOBFILE weights are frozen at compile"},
      {"compile_budget", absl::StrCat(r.compile_budget), absl::StrCat(r.framework_compile_limit),
       "seed training/stories_config.h:26 (stops at 100)",
       "seed README, Orion #5 (~119 per process); oMLX #2781 (120)", "M4/M5 (seed), M4 Max",
       RuleStage::kProcess, "worker recycled at the budget (counted per attempt: issue 18 item 4)",
       "compiles per process before the compiler fails"},
  };
  for (AneRuleRow& row : rows) {
    auto it = r.origins.find(row.id);
    if (it != r.origins.end()) row.origin = it->second;
  }
  return rows;
}

absl::Status SetAneRule(absl::string_view id, absl::string_view value, AneRules* r) {
  auto bad = [&](const char* want) {
    return absl::InvalidArgumentError(
        absl::StrCat("ANE rule '", id, "': \"", value, "\" is not ", want));
  };
  auto set_int = [&](int64_t* field) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(value, &n) || n < 0 || n > (int64_t{1} << 40)) {
      return bad("a non-negative integer");
    }
    *field = n;
    return absl::OkStatus();
  };
  auto set_bool = [&](bool* field) {
    if (value != "true" && value != "false") return bad("true or false");
    *field = value == "true";
    return absl::OkStatus();
  };
  if (id == "min_surface_bytes") return set_int(&r->min_surface_bytes);
  if (id == "surface_width_multiple") return set_int(&r->surface_width_multiple);
  if (id == "surface_alignment") return set_int(&r->surface_alignment);
  if (id == "min_pack_channels") return set_int(&r->min_pack_channels);
  if (id == "matmul_runtime_inner_multiple") return set_int(&r->matmul_runtime_inner_multiple);
  if (id == "conv_input_channels_limit") return set_int(&r->conv_input_channels_limit);
  if (id == "compile_budget") return set_int(&r->compile_budget);
  if (id == "overallocated_surfaces_ok") return set_bool(&r->overallocated_surfaces_ok);
  if (id == "multi_input_surfaces") return set_bool(&r->multi_input_surfaces);
  if (id == "multi_output_surfaces") return set_bool(&r->multi_output_surfaces);
  if (id == "uniform_surface_sizes") return set_bool(&r->uniform_surface_sizes);
  if (id == "alphabetical_binding") return set_bool(&r->alphabetical_binding);
  if (id == "fp16_fp32_surfaces_only") return set_bool(&r->fp16_fp32_surfaces_only);
  if (id == "cast_supported") return set_bool(&r->cast_supported);
  if (id == "gelu_supported") return set_bool(&r->gelu_supported);
  if (id == "softmax_pow2_axis") return set_bool(&r->softmax_pow2_axis);
  if (id == "build_info_required") return set_bool(&r->build_info_required);
  if (id == "attn_mask_ignored") return set_bool(&r->attn_mask_ignored);
  if (id == "weights_baked") return set_bool(&r->weights_baked);
  if (id == "concat") {
    if (value != "banned" && value != "channels_only") return bad("banned or channels_only");
    r->concat = value == "banned" ? ConcatPolicy::kBanned : ConcatPolicy::kChannelsOnly;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ANE rule '", id, "'"));
}

absl::StatusOr<AneRules> ApplyAneRuleOverrides(const AneRules& rules,
                                               const AneRuleOverrides& overrides) {
  AneRules out = rules;
  for (const auto& [id, value] : overrides.values) {
    if (absl::Status s = SetAneRule(id, value, &out); !s.ok()) return s;
    out.origins[id] = overrides.origin;
  }
  return out;
}

std::string EncodeAneRuleOverrides(const AneRuleOverrides& o) {
  std::string origin = o.origin;
  origin.erase(
      std::remove_if(origin.begin(), origin.end(), [](char c) { return c == ';' || c == '='; }),
      origin.end());
  std::string out = origin;
  for (const auto& [id, value] : o.values) absl::StrAppend(&out, ";", id, "=", value);
  return out;
}

absl::StatusOr<AneRuleOverrides> DecodeAneRuleOverrides(absl::string_view text) {
  AneRuleOverrides o;
  std::vector<std::string> parts = absl::StrSplit(text, ';');
  o.origin = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    std::vector<std::string> kv = absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ANE rule overrides: \"", parts[i], "\" is not id=value"));
    }
    o.values[kv[0]] = kv[1];
  }
  return o;
}

std::string EncodeAneRuleFact(const AneRuleRow& r) {
  return absl::StrJoin({r.value, r.alternative, r.sources, r.alternative_sources, r.applies_to,
                        std::string(RuleStageName(r.stage)), r.lowering, r.description, r.origin},
                       "\x1f");
}

bool DecodeAneRuleFact(absl::string_view key, absl::string_view value, AneRuleRow* row) {
  if (!absl::ConsumePrefix(&key, kAneRuleFactPrefix)) return false;
  std::vector<std::string> f = absl::StrSplit(value, '\x1f');
  if (f.size() != 8 && f.size() != 9) return false;  // 8: before the origin field
  row->id = std::string(key);
  row->value = f[0];
  row->alternative = f[1];
  row->sources = f[2];
  row->alternative_sources = f[3];
  row->applies_to = f[4];
  row->stage = f[5] == "evaluate"  ? RuleStage::kEvaluate
               : f[5] == "process" ? RuleStage::kProcess
                                   : RuleStage::kCompile;
  row->lowering = f[6];
  row->description = f[7];
  row->origin = f.size() == 9 ? f[8] : "table";
  return true;
}

std::vector<AneViolation> CheckAneProgram(const Program& program, const AneRules& rules) {
  std::vector<AneViolation> out;
  Checker checker(rules, &out);
  if (rules.build_info_required && program.build_info.empty()) {
    checker.Add("build_info_required", RuleStage::kCompile, true, SourceLoc{},
                "the program has no buildInfo (anerd adds the seed's)");
  }
  for (const Function& f : program.functions) {
    const Values values(f);
    if (f.name == "main") checker.CheckIo(f, values);
    for (const Operation& op : f.ops) checker.CheckOp(op, values);
  }
  return out;
}

bool AneOpSupported(absl::string_view op, const std::vector<TensorType>& inputs,
                    const AneRules& rules, std::string* rule) {
  auto no = [&](const char* id) {
    if (rule != nullptr) *rule = id;
    return false;
  };
  if (op == "cast" && !rules.cast_supported) return no("cast_supported");
  if (op == "concat" && rules.concat == ConcatPolicy::kBanned) return no("concat");
  if (op == "conv" && rules.conv_input_channels_limit > 0 && !inputs.empty() &&
      inputs[0].rank() >= 2 && inputs[0].shape[1] >= rules.conv_input_channels_limit) {
    return no("conv_input_channels_limit");
  }
  if (op == "matmul" && rules.matmul_runtime_inner_multiple > 0 && !inputs.empty() &&
      inputs[0].rank() >= 1 && inputs[0].shape.back() % rules.matmul_runtime_inner_multiple != 0) {
    return no("matmul_runtime_inner_multiple");
  }
  return true;
}

bool CheckAneBinding(const std::vector<SurfaceUse>& inputs, const std::vector<SurfaceUse>& outputs,
                     const AneRules& rules, AneViolation* violation) {
  auto fail = [&](std::string rule, std::string message) {
    *violation = {std::move(rule), RuleStage::kEvaluate, false, SourceLoc{}, std::move(message)};
    return false;
  };
  if (inputs.size() > 1 && !rules.multi_input_surfaces) {
    return fail("multi_input_surfaces", absl::StrCat(inputs.size(), " input surfaces"));
  }
  if (outputs.size() > 1 && !rules.multi_output_surfaces) {
    return fail("multi_output_surfaces", absl::StrCat(outputs.size(), " output surfaces"));
  }
  for (const auto* list : {&inputs, &outputs}) {
    for (const SurfaceUse& s : *list) {
      if (s.allocated_bytes < s.declared_bytes) {
        return fail("overallocated_surfaces_ok",
                    absl::StrCat("surface for ", s.name, " is ", s.allocated_bytes,
                                 " bytes, smaller than its ", s.declared_bytes, "-byte tensor"));
      }
      if (s.allocated_bytes > s.declared_bytes && !rules.overallocated_surfaces_ok) {
        return fail("overallocated_surfaces_ok",
                    absl::StrCat("surface for ", s.name, " is larger than its tensor"));
      }
      if (s.allocated_bytes < rules.min_surface_bytes) {
        return fail("min_surface_bytes",
                    absl::StrCat("surface for ", s.name, " is ", s.allocated_bytes,
                                 " bytes, under the ", rules.min_surface_bytes, "-byte minimum"));
      }
      if (rules.uniform_surface_sizes && s.allocated_bytes != list->front().allocated_bytes) {
        return fail("uniform_surface_sizes",
                    absl::StrCat("surface for ", s.name, " is ", s.allocated_bytes, " bytes but ",
                                 list->front().name, "'s is ", list->front().allocated_bytes));
      }
    }
  }
  return true;
}

}  // namespace anerd::mil
