#include "server/backend/ane/ane_device_sim.h"

#include <atomic>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
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

  std::string identifier_;
  std::string mil_text;
  std::vector<DeviceWeightFile> weights;  // the caller's buffers (only used when not baked)
  std::unique_ptr<CompiledProgram> program;
  bool loaded_ = false;
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
  explicit SimDevice(const SimRules& rules) : rules_(rules), cpu_(cpu::CpuBackendOptions{}) {}

  DeviceInfo Info() const override {
    DeviceInfo info;
    info.name = "simulated ANE (CPU backend, ane numerics)";
    info.simulated = true;
    info.compile_budget = rules_.compile_budget;
    info.max_inputs = rules_.max_inputs;
    info.max_outputs = rules_.max_outputs;
    info.surface_alignment = rules_.surface_alignment;
    info.min_surface_bytes = rules_.min_surface_bytes;
    info.honors_attn_mask = !rules_.ignore_attn_mask;
    return info;
  }

  absl::StatusOr<std::unique_ptr<DeviceModel>> Compile(absl::string_view mil_text,
                                                       const std::vector<DeviceWeightFile>& weights,
                                                       unsigned int qos) override {
    (void)qos;  // QoS has no measurable effect (spec 1.6)
    if (rules_.compile_budget > 0 && compiles_.load() >= rules_.compile_budget) {
      return SimError(absl::StatusCode::kInternal, "ANE compile failed", 1, kSimCompileFailedText);
    }
    auto model = std::make_unique<SimModel>();
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
    compiles_.fetch_add(1);
    return std::unique_ptr<DeviceModel>(std::move(model));
  }

  absl::Status Load(DeviceModel& model, unsigned int qos) override {
    (void)qos;
    auto& m = static_cast<SimModel&>(model);
    if (m.loaded_) return absl::OkStatus();
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
    const int64_t n = static_cast<int64_t>(bytes);
    if (n == 0 || (rules_.surface_alignment > 0 && n % rules_.surface_alignment != 0) ||
        n < rules_.min_surface_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "IOSurface of ", bytes, " bytes refused: the simulated ANE needs a multiple of ",
          rules_.surface_alignment, " bytes and at least ", rules_.min_surface_bytes));
    }
    return std::unique_ptr<DeviceSurface>(new SimSurface(bytes));
  }

  absl::Status Evaluate(DeviceModel& model, const std::vector<DeviceSurface*>& inputs,
                        const std::vector<DeviceSurface*>& outputs, unsigned int qos,
                        PerfCounters* counters) override;

  int64_t compile_count() const override { return compiles_.load(); }

 private:
  // Parses, verifies and plans the model's program from its MIL text and weight buffers.
  absl::StatusOr<std::unique_ptr<CompiledProgram>> Build(const SimModel& m);
  absl::Status CheckBinding(const SimModel& m, const std::vector<DeviceSurface*>& inputs,
                            const std::vector<DeviceSurface*>& outputs) const;

  const SimRules rules_;
  cpu::CpuBackend cpu_;
  std::atomic<int64_t> compiles_{0};
};

absl::StatusOr<std::unique_ptr<CompiledProgram>> SimDevice::Build(const SimModel& m) {
  absl::StatusOr<mil::Program> parsed = mil::ParseProgram(m.mil_text);
  if (!parsed.ok()) {
    return SimError(absl::StatusCode::kInvalidArgument, "ANE compile failed", 2,
                    parsed.status().message());
  }
  mil::WeightFiles files;
  for (const DeviceWeightFile& w : m.weights) ANERD_RETURN_IF_ERROR(files.Add(w.path, *w.bytes));
  absl::StatusOr<mil::VerifiedProgram> program =
      mil::VerifyProgram(*std::move(parsed), std::move(files));
  if (!program.ok()) {
    return SimError(absl::StatusCode::kInvalidArgument, "ANE compile failed", 2,
                    program.status().message());
  }
  if (rules_.fp16_only) {
    std::vector<mil::NamedType> io = program->main().inputs;
    for (const mil::NamedType& in : io) {
      if (in.type.dtype != mil::DType::kFp16 && in.type.dtype != mil::DType::kFp32) {
        return SimError(absl::StatusCode::kInvalidArgument, "ANE compile failed", 2,
                        absl::StrCat("input ", in.name, " is ", in.type.ToString(),
                                     ": surfaces carry fp16 or fp32 only"));
      }
    }
  }
  CompileOptions options;
  options.numerics = NumericsMode::kAne;  // fp16 compute; with fp16_only off too (it is the ANE)
  options.ignore_attn_mask = rules_.ignore_attn_mask;
  absl::StatusOr<std::unique_ptr<CompiledProgram>> compiled = cpu_.Compile(*program, options);
  if (!compiled.ok()) {
    return SimError(absl::StatusCode::kInvalidArgument, "ANE compile failed", 2,
                    compiled.status().message());
  }
  if (rules_.fp16_only) {
    for (const TensorSignature& s : (*compiled)->outputs()) {
      if (s.type.dtype != mil::DType::kFp16 && s.type.dtype != mil::DType::kFp32) {
        return SimError(absl::StatusCode::kInvalidArgument, "ANE compile failed", 2,
                        absl::StrCat("output ", s.name, " is ", s.type.ToString(),
                                     ": surfaces carry fp16 or fp32 only"));
      }
    }
  }
  return compiled;
}

absl::Status SimDevice::CheckBinding(const SimModel& m, const std::vector<DeviceSurface*>& inputs,
                                     const std::vector<DeviceSurface*>& outputs) const {
  if ((rules_.max_inputs > 0 && static_cast<int>(inputs.size()) > rules_.max_inputs) ||
      (rules_.max_outputs > 0 && static_cast<int>(outputs.size()) > rules_.max_outputs)) {
    return SimError(absl::StatusCode::kInvalidArgument, "ANE eval failed", kSimBadSurfaceCode,
                    absl::StrCat("status=0x1d: ", inputs.size(), " input and ", outputs.size(),
                                 " output surfaces (the device takes ", rules_.max_inputs, " and ",
                                 rules_.max_outputs, ")"));
  }
  const auto& ins = m.program->inputs();
  const auto& outs = m.program->outputs();
  if (inputs.size() != ins.size() || outputs.size() != outs.size()) {
    return SimError(absl::StatusCode::kInvalidArgument, "ANE eval failed", kSimBadSurfaceCode,
                    "status=0x1d: surface count differs from the program's inputs/outputs");
  }
  for (size_t i = 0; i < ins.size() + outs.size(); ++i) {
    const bool is_in = i < ins.size();
    const TensorSignature& sig = is_in ? ins[i] : outs[i - ins.size()];
    const DeviceSurface* s = is_in ? inputs[i] : outputs[i - ins.size()];
    if (s == nullptr || static_cast<int64_t>(s->size()) != sig.type.NumBytes()) {
      return SimError(absl::StatusCode::kInvalidArgument, "ANE eval failed", kSimBadSurfaceCode,
                      absl::StrCat("status=0x1d: surface for ", sig.name, " is not ",
                                   sig.type.NumBytes(), " bytes"));
    }
  }
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
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorSignature& sig = m.program->inputs()[i];
    ANERD_ASSIGN_OR_RETURN(
        Tensor t, Tensor::FromBytes(sig.type, static_cast<SimSurface*>(inputs[i])->bytes()));
    tensors.push_back(NamedTensor{sig.name, std::move(t)});
  }
  absl::StatusOr<RunResult> result = m.program->Run(tensors);
  if (!result.ok()) {
    return SimError(absl::StatusCode::kInternal, "ANE eval failed", 3, result.status().message());
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    static_cast<SimSurface*>(outputs[i])->mutable_bytes() = result->outputs[i].tensor.bytes();
  }
  if (counters != nullptr) {
    counters->hardware_ns = static_cast<uint64_t>(result->timing.compute_us * 1000.0);
  }
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<AneDevice> CreateSimDevice(const SimRules& rules) {
  return std::make_unique<SimDevice>(rules);
}

}  // namespace anerd::backend::ane
