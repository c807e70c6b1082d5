#include "server/backend/ane/ane_device_sim.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/hash.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "common/status_macros.h"
#include "server/backend/cpu/cpu_backend.h"

namespace anerd::backend::ane {
namespace {

absl::Status SimError(absl::StatusCode code, absl::string_view what, int64_t device_code,
                      absl::string_view text) {
  return MakeDeviceError(code, what, DeviceError{kSimErrorDomain, device_code, std::string(text)});
}

class SimSurface : public DeviceSurface {
 public:
  explicit SimSurface(size_t bytes) : bytes_(bytes, '\0') {}
  size_t size() const override { return bytes_.size(); }
  absl::Status Write(size_t offset, absl::string_view data) override {
    if (offset > bytes_.size() || data.size() > bytes_.size() - offset) {
      return absl::InvalidArgumentError("surface write out of range");
    }
    std::memcpy(&bytes_[offset], data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status Read(size_t offset, size_t bytes, void* out) const override {
    if (offset > bytes_.size() || bytes > bytes_.size() - offset) {
      return absl::InvalidArgumentError("surface read out of range");
    }
    std::memcpy(out, bytes_.data() + offset, bytes);
    return absl::OkStatus();
  }
  const std::string& bytes() const { return bytes_; }
  std::string& mutable_bytes() { return bytes_; }

 private:
  std::string bytes_;
};

class SimModel : public DeviceModel {
 public:
  const std::string& identifier() const override { return identifier_; }
  bool loaded() const override { return loaded_; }
  uint64_t memory_bytes() const override {
    return program != nullptr ? program->memory_bytes() : 0;
  }

  std::string identifier_;
  std::string mil_text;
  std::vector<DeviceWeightFile> weights;  // the caller's buffers (only used when not baked)
  std::unique_ptr<CompiledProgram> program;
  bool loaded_ = false;
  std::vector<size_t> in_order, out_order;  // parameter/result index per binding position
  std::string eval_finding;                 // a rule broken at evaluation ("" when none)
  uint64_t modelled_ns = 0;                 // SimModelledHardwareNs(mil_text)
  uint64_t max_memory_bytes = 0;            // the compile's limit, kept for rebuilds at Load
};

std::string Identifier(absl::string_view mil_text, const std::vector<DeviceWeightFile>& weights) {
  Sha256 h;
  h.Update(mil_text);
  for (const DeviceWeightFile& w : weights) {
    h.Update(w.path);
    h.Update(*w.bytes);
  }
  return h.HexDigest();
}

class SimDevice : public AneDevice {
 public:
  explicit SimDevice(const SimRules& rules)
      : rules_(rules), cpu_(cpu::CpuBackendOptions{}), faults_(rules.faults) {}

  DeviceInfo Info() const override {
    DeviceInfo info;
    info.name = "simulated ANE (CPU backend, ane numerics)";
    info.simulated = true;
    info.compile_budget = rules_.compile_budget;
    info.chip = rules_.chip;
    info.os_build = rules_.os_build;
    info.rules = rules_.reports_rules ? rules_.ane : mil::AneRulesForChip(rules_.chip);
    info.honors_attn_mask = !rules_.ignore_attn_mask;
    info.hardware_counters = true;  // modelled (SimModelledHardwareNs)
    return info;
  }

  absl::StatusOr<std::unique_ptr<DeviceModel>> Compile(absl::string_view mil_text,
                                                       const std::vector<DeviceWeightFile>& weights,
                                                       unsigned int qos) override {
    return CompileWithinMemory(mil_text, weights, qos, 0);
  }

  // The limit is the CPU planner's (CpuProgram::Create): checked on the plan, before its buffers
  // are allocated.
  absl::StatusOr<std::unique_ptr<DeviceModel>> CompileWithinMemory(
      absl::string_view mil_text, const std::vector<DeviceWeightFile>& weights, unsigned int qos,
      uint64_t max_memory_bytes) override {
    (void)qos;  // QoS has no measurable effect (docs/ANE_NOTES.md §1.6)
    ANERD_RETURN_IF_ERROR(CountCompileAttempt());
    if (faults_.NextCompileFails(rules_.compile_budget)) return SimGenericCompileFailure();
    auto model = std::make_unique<SimModel>();
    model->max_memory_bytes = max_memory_bytes;
    model->identifier_ = Identifier(mil_text, weights);
    model->mil_text = std::string(mil_text);
    if (rules_.bake_weights) {
      // Deep copies: later changes to the caller's buffers cannot reach the compiled model.
      for (const DeviceWeightFile& w : weights) {
        model->weights.push_back({w.path, std::make_shared<const std::string>(*w.bytes)});
      }
    } else {
      model->weights = weights;
    }
    ANERD_ASSIGN_OR_RETURN(model->program, Build(*model));
    model->modelled_ns = SimModelledHardwareNs(model->mil_text);
    return std::unique_ptr<DeviceModel>(std::move(model));
  }

  absl::Status Load(DeviceModel& model, unsigned int qos) override {
    (void)qos;
    auto& m = static_cast<SimModel&>(model);
    if (m.loaded_) return absl::OkStatus();
    if (faults_.NextLoadFails()) return SimTransientLoadError();
    // Delta-reload behaviour: re-read the weight buffers (only when weights are not baked).
    if (!rules_.bake_weights) {
      ANERD_ASSIGN_OR_RETURN(m.program, Build(m));
    }
    m.loaded_ = true;
    return absl::OkStatus();
  }

  absl::Status Unload(DeviceModel& model, unsigned int qos) override {
    (void)qos;
    static_cast<SimModel&>(model).loaded_ = false;
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<DeviceSurface>> AllocateSurface(size_t bytes) override {
    // Too-small surfaces allocate fine and fail at evaluation (0x1d), as on the device.
    const int64_t n = static_cast<int64_t>(bytes);
    const int64_t align = rules_.ane.surface_alignment;
    if (n == 0 || (align > 0 && n % align != 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("IOSurface of ", bytes,
                       " bytes refused: the simulated ANE needs a multiple of ", align, " bytes"));
    }
    return std::unique_ptr<DeviceSurface>(new SimSurface(bytes));
  }

  absl::Status Evaluate(DeviceModel& model, const std::vector<DeviceSurface*>& inputs,
                        const std::vector<DeviceSurface*>& outputs, unsigned int qos,
                        PerfCounters* counters) override;

  int64_t compile_count() const override { return compiles_.load(); }

 private:
  // Counts one compile attempt; the framework's generic failure once the budget is spent or
  // from the injected fault's attempt on (SimRules::compile_budget, compile_fail_from_attempt).
  absl::Status CountCompileAttempt();
  // Parses, verifies and plans the model's program from its MIL text and weight buffers.
  absl::StatusOr<std::unique_ptr<CompiledProgram>> Build(SimModel& m);
  absl::Status CheckBinding(const SimModel& m, const std::vector<DeviceSurface*>& inputs,
                            const std::vector<DeviceSurface*>& outputs) const;

  const SimRules rules_;
  cpu::CpuBackend cpu_;
  SimFaultInjector faults_;
  std::atomic<int64_t> compiles_{0};
};

absl::Status SimDevice::CountCompileAttempt() {
  const int64_t attempt = compiles_.fetch_add(1) + 1;
  const bool spent = rules_.compile_budget > 0 && attempt > rules_.compile_budget;
  const int64_t from = rules_.faults.compile_fail_from_attempt;
  const bool fault = from > 0 && attempt >= from;
  if (spent || fault) {
    return SimError(absl::StatusCode::kInternal, "ANE compile failed", 1, kSimCompileFailedText);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CompiledProgram>> SimDevice::Build(SimModel& m) {
  absl::StatusOr<mil::Program> parsed = mil::ParseProgram(m.mil_text);
  if (!parsed.ok()) {
    return SimCompileError(parsed.status().message());
  }
  mil::WeightFiles files;
  for (const DeviceWeightFile& w : m.weights) ANERD_RETURN_IF_ERROR(files.Add(w.path, *w.bytes));
  absl::StatusOr<mil::VerifiedProgram> program =
      mil::VerifyProgram(*std::move(parsed), std::move(files));
  if (!program.ok()) {
    return SimCompileError(program.status().message());
  }
  ANERD_RETURN_IF_ERROR(SimCheckCompile(program->program(), rules_.ane));
  m.eval_finding = SimEvalFinding(program->program(), rules_.ane);
  std::vector<std::string> names;
  for (const mil::NamedType& in : program->main().inputs) names.push_back(in.name);
  m.in_order = SimBindingOrder(names, rules_.ane);
  m.out_order = SimBindingOrder(program->main().outputs, rules_.ane);
  CompileOptions options;
  options.numerics = NumericsMode::kAne;  // fp16 compute (it is the ANE)
  options.ignore_attn_mask = rules_.ignore_attn_mask;
  options.max_memory_bytes = m.max_memory_bytes;
  absl::StatusOr<std::unique_ptr<CompiledProgram>> compiled = cpu_.Compile(*program, options);
  if (compiled.status().code() == absl::StatusCode::kResourceExhausted &&
      absl::StrContains(compiled.status().message(), kMemoryLimitMarker)) {
    // Not a rejection by the compiler: the program is too big for the limit anerd set.
    return absl::ResourceExhaustedError(
        absl::StrCat("simulated ANE: ", compiled.status().message()));
  }
  if (!compiled.ok()) {
    return SimCompileError(compiled.status().message());
  }
  return compiled;
}

absl::Status SimDevice::CheckBinding(const SimModel& m, const std::vector<DeviceSurface*>& inputs,
                                     const std::vector<DeviceSurface*>& outputs) const {
  const auto& ins = m.program->inputs();
  const auto& outs = m.program->outputs();
  if (inputs.size() != ins.size() || outputs.size() != outs.size()) {
    return SimEvalError(absl::StrCat(inputs.size(), " input and ", outputs.size(),
                                     " output surfaces for a program of ", ins.size(), " and ",
                                     outs.size()));
  }
  std::vector<mil::SurfaceUse> in_uses, out_uses;
  for (size_t p = 0; p < inputs.size(); ++p) {
    if (inputs[p] == nullptr) return SimEvalError("null input surface");
    const TensorSignature& sig = ins[m.in_order[p]];
    in_uses.push_back({sig.name, sig.type.NumBytes(), static_cast<int64_t>(inputs[p]->size())});
  }
  for (size_t p = 0; p < outputs.size(); ++p) {
    if (outputs[p] == nullptr) return SimEvalError("null output surface");
    const TensorSignature& sig = outs[m.out_order[p]];
    out_uses.push_back({sig.name, sig.type.NumBytes(), static_cast<int64_t>(outputs[p]->size())});
  }
  ANERD_RETURN_IF_ERROR(SimCheckBinding(in_uses, out_uses, rules_.ane));
  if (!m.eval_finding.empty()) return SimEvalError(m.eval_finding);
  return absl::OkStatus();
}

absl::Status SimDevice::Evaluate(DeviceModel& model, const std::vector<DeviceSurface*>& inputs,
                                 const std::vector<DeviceSurface*>& outputs, unsigned int qos,
                                 PerfCounters* counters) {
  (void)qos;
  auto& m = static_cast<SimModel&>(model);
  if (!m.loaded_) return absl::FailedPreconditionError("ANE eval failed: model is not loaded");
  ANERD_RETURN_IF_ERROR(CheckBinding(m, inputs, outputs));
  std::vector<NamedTensor> tensors;
  for (size_t p = 0; p < inputs.size(); ++p) {  // the device reads the first C*S values
    const TensorSignature& sig = m.program->inputs()[m.in_order[p]];
    const std::string& bytes = static_cast<SimSurface*>(inputs[p])->bytes();
    ANERD_ASSIGN_OR_RETURN(
        Tensor t,
        Tensor::FromBytes(sig.type, bytes.substr(0, static_cast<size_t>(sig.type.NumBytes()))));
    tensors.push_back(NamedTensor{sig.name, std::move(t)});
  }
  absl::StatusOr<RunResult> result = m.program->Run(tensors);
  if (!result.ok()) {
    return SimEvalError(result.status().message());
  }
  for (size_t p = 0; p < outputs.size(); ++p) {  // written at offset 0 of the surface
    const std::string& bytes = result->outputs[m.out_order[p]].tensor.bytes();
    std::memcpy(static_cast<SimSurface*>(outputs[p])->mutable_bytes().data(), bytes.data(),
                bytes.size());
  }
  if (counters != nullptr && m.modelled_ns > 0) {
    counters->hardware_ns = m.modelled_ns;  // the model's, not the CPU's time (see the header)
    counters->simulated = true;
  }
  return absl::OkStatus();
}

// Whether the boolean argument `name` of `op` is a true literal or names a true const.
bool BoolArgument(const mil::Operation& op, absl::string_view name,
                  const std::map<std::string, const mil::Literal*>& consts) {
  for (const mil::NamedArgument& a : op.inputs) {
    if (a.name != name) continue;
    const mil::Literal* lit = nullptr;
    if (a.value.kind == mil::Argument::Kind::kLiteral) lit = &a.value.literal;
    auto it = consts.find(a.value.ref);
    if (a.value.kind == mil::Argument::Kind::kRef && it != consts.end()) lit = it->second;
    return lit != nullptr && !lit->values.empty() && lit->values[0] != 0;
  }
  return false;
}

// FLOPs of one op (see the header): multiply-accumulates x 2 for conv/matmul, else 1 per element.
double OpFlops(const mil::Operation& op, const std::map<std::string, mil::TensorType>& types,
               const std::map<std::string, const mil::Literal*>& consts) {
  if (op.outputs.empty()) return 0;
  const double out = static_cast<double>(op.outputs[0].type.NumElements());
  auto type_of = [&](absl::string_view arg) -> const mil::TensorType* {
    for (const mil::NamedArgument& a : op.inputs) {
      if (a.name != arg || a.value.kind != mil::Argument::Kind::kRef) continue;
      auto it = types.find(a.value.ref);
      return it == types.end() ? nullptr : &it->second;
    }
    return nullptr;
  };
  if (op.op == "conv") {
    const mil::TensorType* w = type_of("weight");
    if (w == nullptr || w->shape.empty() || w->shape[0] <= 0) return out;
    return 2 * out * static_cast<double>(w->NumElements() / w->shape[0]);
  }
  if (op.op == "matmul") {
    const mil::TensorType* x = type_of("x");
    if (x == nullptr || x->shape.size() < 2) return out;
    const bool tx = BoolArgument(op, "transpose_x", consts);
    return 2 * out * static_cast<double>(x->shape[x->shape.size() - (tx ? 2 : 1)]);
  }
  return op.op == "const" ? 0 : out;
}

}  // namespace

uint64_t SimModelledHardwareNs(absl::string_view mil_text) {
  absl::StatusOr<mil::Program> program = mil::ParseProgram(mil_text);
  if (!program.ok() || program->main() == nullptr) return 0;
  const mil::Function& main = *program->main();
  std::map<std::string, mil::TensorType> types;
  std::map<std::string, const mil::Literal*> consts;
  double bytes = 0, flops = 0;
  for (const mil::NamedType& in : main.inputs) {
    types[in.name] = in.type;
    bytes += static_cast<double>(in.type.NumBytes());
  }
  for (const mil::Operation& op : main.ops) {
    for (const mil::NamedType& o : op.outputs) types[o.name] = o.type;
    if (op.op == "const" && !op.outputs.empty()) {
      bytes += static_cast<double>(op.outputs[0].type.NumBytes());
      for (const mil::NamedArgument& a : op.attributes) {
        if (a.name == "val" && a.value.kind == mil::Argument::Kind::kLiteral) {
          consts[op.outputs[0].name] = &a.value.literal;
        }
      }
    }
    flops += OpFlops(op, types, consts);
  }
  for (const std::string& name : main.outputs) {
    auto it = types.find(name);
    if (it != types.end()) bytes += static_cast<double>(it->second.NumBytes());
  }
  const double ns = std::max(flops / kSimFlopsPerNs, bytes / kSimBytesPerNs);
  return kSimDispatchNs + static_cast<uint64_t>(std::ceil(ns));
}

std::unique_ptr<AneDevice> CreateSimDevice(const SimRules& rules) {
  return std::make_unique<SimDevice>(rules);
}

absl::StatusOr<SimRules> ParseSimSettings(absl::string_view spec) {
  constexpr size_t kMaxSpecBytes = 4096;
  if (spec.size() > kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("simulator settings: ", spec.size(), " bytes, more than ", kMaxSpecBytes));
  }
  SimRules rules;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    const std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    const std::string& key = kv.first;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("simulator setting '", item, "': ", why));
    };
    if (key == "chip" || key == "os_build") {
      if (kv.second.empty()) return bad("needs a value");
      (key == "chip" ? rules.chip : rules.os_build) = kv.second;
      continue;
    }
    int64_t* counter =
        key == "load_fail_every"              ? &rules.faults.load_fail_every
        : key == "compile_fail_before_budget" ? &rules.faults.compile_fail_before_budget
        : key == "compile_fail_from_attempt"  ? &rules.faults.compile_fail_from_attempt
        : key == "compile_budget"             ? &rules.compile_budget
                                              : nullptr;
    if (counter != nullptr) {
      if (!absl::SimpleAtoi(kv.second, counter) || *counter < 0) {
        return bad("needs a non-negative integer");
      }
      continue;
    }
    rules.reports_rules = false;  // a device that differs from the table, unknown until probed
    if (absl::Status s = mil::SetAneRule(key, kv.second, &rules.ane); !s.ok()) {
      return bad(absl::StrCat(s.message(),
                              " (keys: load_fail_every, compile_fail_before_budget, "
                              "compile_fail_from_attempt, compile_budget, chip, "
                              "os_build, or an ANE rule id)"));
    }
  }
  return rules;
}

}  // namespace anerd::backend::ane
