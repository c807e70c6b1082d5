#include "server/backend/ane/ane_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/mil/blob_writer.h"
#include "common/mil/builder.h"
#include "common/status_macros.h"
#include "server/backend/ane/ane_lowering.h"
#include "server/backend/ane/ane_rule_probe.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/op_support.h"

namespace anerd::backend::ane {
namespace {

constexpr int kLoadRetryDelayUs =
    100000;  // docs/ANE_NOTES.md §1.3: the bridge retries load once after 100 ms

// Converts `t` into the surface buffer `dst` (of dtype `surface`) at element `offset`.
void PackInto(const Tensor& t, mil::DType surface, int64_t offset, std::string& dst) {
  const int64_t n = t.num_elements();
  void* base = dst.data() + offset * mil::DTypeSize(surface);
  if (t.dtype() == surface) {
    std::memcpy(base, t.data(), t.bytes().size());
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    StoreElement(surface, base, i, LoadElement(t.dtype(), t.data(), i));
}

// Reads the logical tensor of `slot` back out of the surface buffer `src` (dtype `surface`).
Tensor UnpackFrom(const std::string& src, mil::DType surface, const SurfaceSlot& slot) {
  Tensor t(slot.type);
  const void* base = src.data() + slot.offset * mil::DTypeSize(surface);
  if (slot.type.dtype == surface) {
    std::memcpy(t.mutable_data(), base, t.bytes().size());
    return t;
  }
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    StoreElement(slot.type.dtype, t.mutable_data(), i, LoadElement(surface, base, i));
  }
  return t;
}

class AneProgram : public CompiledProgram {
 public:
  AneProgram(std::shared_ptr<AneDevice> device, std::unique_ptr<DeviceModel> model,
             LoweredProgram lowered, std::vector<std::unique_ptr<DeviceSurface>> in,
             std::vector<std::unique_ptr<DeviceSurface>> out, unsigned int qos)
      : device_(std::move(device)),
        model_(std::move(model)),
        lowered_(std::move(lowered)),
        in_(std::move(in)),
        out_(std::move(out)),
        qos_(qos) {
    for (const SurfaceSlot& s : lowered_.inputs) inputs_.push_back({s.name, s.type});
    for (const SurfaceSlot& s : lowered_.outputs) outputs_.push_back({s.name, s.type});
    for (auto& s : in_) in_ptrs_.push_back(s.get());
    for (auto& s : out_) out_ptrs_.push_back(s.get());
  }
  ~AneProgram() override {
    out_.clear();
    in_.clear();
    if (model_->loaded()) (void)device_->Unload(*model_, qos_);
    model_.reset();
  }
  const std::vector<TensorSignature>& inputs() const override { return inputs_; }
  const std::vector<TensorSignature>& outputs() const override { return outputs_; }
  absl::StatusOr<RunResult> Run(const std::vector<NamedTensor>& inputs) override;
  // The device's own figure plus the surfaces; 0 when the device cannot tell.
  uint64_t memory_bytes() const override {
    uint64_t bytes = model_->memory_bytes();
    if (bytes == 0) return 0;
    for (const auto& s : in_) bytes += s->size();
    for (const auto& s : out_) bytes += s->size();
    return bytes;
  }

 private:
  std::shared_ptr<AneDevice> device_;  // first: destroyed last
  std::unique_ptr<DeviceModel> model_;
  LoweredProgram lowered_;
  std::vector<std::unique_ptr<DeviceSurface>> in_, out_;
  std::vector<DeviceSurface*> in_ptrs_, out_ptrs_;
  std::vector<TensorSignature> inputs_, outputs_;
  const unsigned int qos_;  // compile, load, evaluate and unload (CompileOptions::qos)
  absl::Mutex mu_;
};

absl::StatusOr<RunResult> AneProgram::Run(const std::vector<NamedTensor>& inputs) {
  const absl::Time start = absl::Now();
  ANERD_RETURN_IF_ERROR(CheckInputs(inputs_, inputs));
  absl::MutexLock lock(&mu_);
  std::vector<std::string> buffers;
  for (const mil::TensorType& t : lowered_.input_surfaces) buffers.emplace_back(t.NumBytes(), '\0');
  for (const SurfaceSlot& slot : lowered_.inputs) {
    for (const NamedTensor& t : inputs) {
      if (t.name != slot.name) continue;
      PackInto(t.tensor, lowered_.input_surfaces[slot.surface].dtype, slot.offset,
               buffers[slot.surface]);
    }
  }
  for (size_t i = 0; i < buffers.size(); ++i) ANERD_RETURN_IF_ERROR(in_[i]->Write(0, buffers[i]));
  const absl::Time compute_start = absl::Now();
  PerfCounters counters;
  absl::Status evaluated = device_->Evaluate(*model_, in_ptrs_, out_ptrs_, qos_, &counters);
  if (!evaluated.ok()) {
    return absl::Status(evaluated.code() == absl::StatusCode::kFailedPrecondition
                            ? evaluated.code()
                            : absl::StatusCode::kInternal,
                        absl::StrCat("ANE evaluation failed: ", evaluated.message()));
  }
  const absl::Time compute_end = absl::Now();
  RunResult result;
  std::vector<std::string> outs;
  for (size_t i = 0; i < out_.size(); ++i) {
    outs.emplace_back(out_[i]->size(), '\0');
    ANERD_RETURN_IF_ERROR(out_[i]->Read(0, outs.back().size(), outs.back().data()));
  }
  for (const SurfaceSlot& slot : lowered_.outputs) {
    result.outputs.push_back(NamedTensor{
        slot.name,
        UnpackFrom(outs[slot.surface], lowered_.output_surfaces[slot.surface].dtype, slot)});
  }
  result.timing.compute_us = absl::ToDoubleMicroseconds(compute_end - compute_start);
  if (counters.hardware_ns.has_value()) {
    result.timing.hardware_us = static_cast<double>(*counters.hardware_ns) / 1000.0;
    result.timing.hardware_simulated = counters.simulated;
  }
  result.timing.total_us = absl::ToDoubleMicroseconds(absl::Now() - start);
  return result;
}

absl::StatusOr<std::vector<std::unique_ptr<DeviceSurface>>> AllocateAll(
    AneDevice& device, const std::vector<int64_t>& sizes) {
  std::vector<std::unique_ptr<DeviceSurface>> out;
  for (int64_t bytes : sizes) {
    ANERD_ASSIGN_OR_RETURN(auto s, device.AllocateSurface(static_cast<size_t>(bytes)));
    out.push_back(std::move(s));
  }
  return out;
}

absl::Status LoadWithRetry(AneDevice& device, DeviceModel& model, unsigned int qos) {
  absl::Status first = device.Load(model, qos);
  if (first.ok()) return first;
  usleep(kLoadRetryDelayUs);  // "ANE slot reclamation"
  absl::Status second = device.Load(model, qos);
  if (second.ok()) return second;
  return absl::UnavailableError(
      absl::StrCat("ANE load failed after one retry: ", second.message()));
}

}  // namespace

int64_t EffectiveCompileBudget(int64_t configured, int64_t device_budget) {
  if (configured > 0 && device_budget > 0) return std::min(configured, device_budget);
  return configured > 0 ? configured : device_budget;
}

AneBackend::AneBackend(std::shared_ptr<AneDevice> device, const AneBackendOptions& options)
    : device_(std::move(device)), options_(options), info_(device_->Info()), rules_(info_.rules) {}

mil::AneRules AneBackend::rules() const {
  absl::MutexLock lock(&rules_mu_);
  return rules_;
}

absl::Status AneBackend::UseMeasuredRules(const mil::AneRuleOverrides& overrides) {
  ANERD_ASSIGN_OR_RETURN(mil::AneRules rules, mil::ApplyAneRuleOverrides(info_.rules, overrides));
  absl::MutexLock lock(&rules_mu_);
  rules_ = std::move(rules);
  return absl::OkStatus();
}

absl::StatusOr<RuleProbeReport> AneBackend::ProbeDeviceRules() {
  // The probe's programs are attempts like any compile: refuse when they would not fit the
  // budget (the worker layer then probes in a fresh worker).
  const int64_t used = compiles_.load();
  if (options_.compile_budget > 0 && used + kRuleProbeCompiles > options_.compile_budget) {
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.name, " backend: the rule probe needs up to ", kRuleProbeCompiles,
                     " compile attempts and ", options_.compile_budget - used, " of the budget of ",
                     options_.compile_budget, " are left"));
  }
  const int64_t before = device_->compile_count();
  RuleProbeReport report;
  report.chip = info_.chip;
  report.os_build = info_.os_build;
  report.simulated = info_.simulated;
  report.rows = ProbeAneRules(*device_, info_.rules);
  compiles_.fetch_add(device_->compile_count() - before);
  return report;
}

BackendDescription AneBackend::Describe() const {
  BackendDescription d;
  d.name = options_.name;
  d.version = "1";
  d.device = info_.name;
  if (!info_.chip.empty()) absl::StrAppend(&d.device, ", ", info_.chip);
  if (!info_.ane_subtype.empty()) absl::StrAppend(&d.device, ", ANE ", info_.ane_subtype);
  d.capabilities.fp16_compute = true;
  d.capabilities.honors_attn_mask = true;  // masks are lowered to explicit ops when needed
  d.capabilities.multiple_inputs = true;   // packed into one surface when the device needs it
  d.capabilities.compile_budget = options_.compile_budget;
  d.capabilities.qos = true;
  d.capabilities.hardware_time =
      info_.simulated ? "simulated" : (info_.hardware_counters ? "hardware" : "");
  std::string classes;
  for (const std::string& c : info_.classes_found) {
    absl::StrAppend(&classes, classes.empty() ? "" : ",", c);
  }
  d.facts = {{"simulated", info_.simulated ? "true" : "false"},
             {"chip", info_.chip},
             {"ane_subtype", info_.ane_subtype},
             {"os_build", info_.os_build},
             {"framework", info_.framework_path},
             {"classes", classes},
             {"device_compiles", absl::StrCat(device_->compile_count())}};
  if (info_.cores > 0) d.facts.emplace_back("cores", absl::StrCat(info_.cores));
  const mil::AneRules in_force = rules();
  d.facts.emplace_back("ane_rules_profile", in_force.profile);
  for (const mil::AneRuleRow& row : mil::DescribeAneRules(in_force)) {
    d.facts.emplace_back(mil::kAneRuleFactPrefix + row.id, mil::EncodeAneRuleFact(row));
  }
  return d;
}

absl::Status AneBackend::Supports(const OpQuery& query) const {
  // What the CPU backend runs (the simulator executes on it), less what the rules table says no
  // rewrite of the lowering fixes for these operand types.
  if (const std::string why = cpu::CpuRefusal(query); !why.empty()) {
    return OpNotSupported(options_.name, query.op, why);
  }
  // The rules read the data operand first (`x` for conv and matmul), then the rest as written.
  std::vector<mil::TensorType> types;
  types.reserve(query.inputs.size());
  if (const mil::TensorType* x = query.Input("x")) types.push_back(*x);
  for (const auto& [name, type] : query.inputs) {
    if (name != "x") types.push_back(type);
  }
  std::string rule;
  const mil::AneRules in_force = rules();
  if (!mil::AneOpSupported(query.op, types, in_force, &rule)) {
    return OpNotSupported(options_.name, query.op,
                          absl::StrCat("the ANE rule '", rule, "' (", in_force.profile,
                                       " profile; anectl mil check --target ane explains)"));
  }
  return absl::OkStatus();
}

bool NearCompileBudget(int64_t attempt, int64_t budget) {
  if (budget <= 0) return false;
  return attempt > budget - std::max<int64_t>(1, budget / 5);
}

absl::Status AneBackend::MapCompileError(const absl::Status& status, int64_t attempt) const {
  if (info_.compile_budget > 0 && device_->compile_count() >= info_.compile_budget) {
    return absl::ResourceExhaustedError(
        absl::StrCat("ANE compile budget spent (", device_->compile_count(),
                     " compile attempts in this process): ", status.message()));
  }
  // Only the framework's own failures (a DeviceError) are unexplained; anerd's (a temp dir that
  // cannot be written, a wrong state) keep their code.
  if (status.code() == absl::StatusCode::kFailedPrecondition ||
      status.code() == absl::StatusCode::kUnavailable || !GetDeviceError(status).has_value()) {
    return status;
  }
  const int64_t budget =
      options_.compile_budget > 0 ? options_.compile_budget : info_.compile_budget;
  if (NearCompileBudget(attempt, budget)) {
    // The framework gives the same text for a spent budget and a rejected program; the seed
    // treats any compile failure as budget spent. A fresh process tells the two apart.
    return absl::ResourceExhaustedError(
        absl::StrCat("ANE compile failed at attempt ", attempt, " of a budget of ", budget,
                     ", near the limit: treated as a spent compile budget: ", status.message()));
  }
  return absl::InvalidArgumentError(absl::StrCat("ANE rejected the program: ", status.message()));
}

absl::StatusOr<std::unique_ptr<CompiledProgram>> AneBackend::Compile(
    const mil::VerifiedProgram& program, const CompileOptions& options) {
  LoweringOptions lo;
  lo.rules = rules();
  lo.device_honors_attn_mask = info_.honors_attn_mask;
  lo.honor_attn_mask = !options.ignore_attn_mask;
  if (options.qos.has_value() && *options.qos > kMaxQos) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.qos: ", *options.qos, " is outside 0..", kMaxQos));
  }
  const unsigned int qos = options.qos.value_or(kDefaultQos);
  // Lowering never reaches the device, so its failures are not attempts.
  ANERD_ASSIGN_OR_RETURN(LoweredProgram lowered, LowerForAne(program, lo));
  const int64_t attempt = compiles_.fetch_add(1) + 1;  // counted whatever the outcome
  if (options_.compile_budget > 0 && attempt > options_.compile_budget) {
    compiles_.fetch_sub(1);  // refused without touching the device: not an attempt
    return absl::ResourceExhaustedError(absl::StrCat(options_.name, " backend compile budget of ",
                                                     options_.compile_budget,
                                                     " compile attempts is used up"));
  }
  absl::StatusOr<std::unique_ptr<DeviceModel>> model = device_->CompileWithinMemory(
      lowered.mil_text, lowered.weights, qos, options.max_memory_bytes);
  if (model.status().code() == absl::StatusCode::kResourceExhausted &&
      absl::StrContains(model.status().message(), kMemoryLimitMarker)) {
    return model.status();  // over the memory limit: neither a rejection nor a spent budget
  }
  if (!model.ok()) return MapCompileError(model.status(), attempt);
  ANERD_RETURN_IF_ERROR(LoadWithRetry(*device_, **model, qos));
  auto in = AllocateAll(*device_, lowered.input_surface_bytes);
  if (!in.ok()) return absl::InternalError(in.status().message());
  auto out = AllocateAll(*device_, lowered.output_surface_bytes);
  if (!out.ok()) return absl::InternalError(out.status().message());
  return std::unique_ptr<CompiledProgram>(new AneProgram(
      device_, *std::move(model), std::move(lowered), *std::move(in), *std::move(out), qos));
}

}  // namespace anerd::backend::ane
