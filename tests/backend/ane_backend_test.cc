// The ANE backend over the simulated device: every simulator rule (ane_device_sim.h) is shown
// to bite at the device level, and the backend is shown to cope with it (packing, fp16 I/O,
// surface sizes, explicit attention masks, the compile budget, baked weights), plus the device
// error payload, the canary and the registry's preference order.
#include "server/backend/ane/ane_backend.h"

#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/mil/blob_writer.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gtest/gtest.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/ane/ane_lowering.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/registry.h"

namespace anerd::backend::ane {
namespace {

mil::VerifiedProgram Verify(const std::string& text, mil::WeightFiles weights = {}) {
  auto parsed = mil::ParseProgram(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  auto program = mil::VerifyProgram(*std::move(parsed), std::move(weights));
  EXPECT_TRUE(program.ok()) << program.status();
  return *std::move(program);
}

std::string Wrap(const std::string& inputs, const std::string& body, const std::string& outputs) {
  return "program(1.3)\n[buildInfo = dict<string, string>({{\"coremlc-version\", \"3505.4.1\"}})]\n"
         "{\n    func main<ios18>(" +
         inputs + ") {\n" + body + "\n    } -> (" + outputs + ");\n}\n";
}

std::vector<NamedTensor> RandomInputs(const std::vector<TensorSignature>& sigs, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-2, 2);
  std::vector<NamedTensor> out;
  for (const TensorSignature& s : sigs) {
    Tensor t(s.type);
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      const double v = mil::IsInteger(s.type.dtype) ? static_cast<double>(rng() % 3) : u(rng);
      StoreElement(s.type.dtype, t.mutable_data(), i, v);
    }
    out.push_back({s.name, std::move(t)});
  }
  return out;
}

// Runs `program` on `backend` and on the CPU backend (ane numerics) and compares every output.
void ExpectMatchesCpu(Backend& backend, const mil::VerifiedProgram& program,
                      CompileOptions options = {}) {
  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  auto a = backend.Compile(program, options);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = cpu.Compile(program, options);
  ASSERT_TRUE(b.ok()) << b.status();
  const std::vector<NamedTensor> in = RandomInputs((*a)->inputs(), 5);
  auto ra = (*a)->Run(in);
  ASSERT_TRUE(ra.ok()) << ra.status();
  auto rb = (*b)->Run(in);
  ASSERT_TRUE(rb.ok()) << rb.status();
  ASSERT_EQ(ra->outputs.size(), rb->outputs.size());
  for (size_t i = 0; i < ra->outputs.size(); ++i) {
    EXPECT_EQ(ra->outputs[i].name, rb->outputs[i].name);
    EXPECT_EQ(ra->outputs[i].tensor.type(), rb->outputs[i].tensor.type());
    const auto x = ra->outputs[i].tensor.ToDoubles(), y = rb->outputs[i].tensor.ToDoubles();
    for (size_t j = 0; j < x.size(); ++j) {
      EXPECT_NEAR(x[j], y[j], 2e-3 + 4e-3 * std::fabs(y[j]))
          << ra->outputs[i].name << "[" << j << "]";
    }
  }
}

AneBackend SimBackend(const SimRules& rules = {}, int64_t budget = 0) {
  AneBackendOptions o;
  o.compile_budget = budget;
  return AneBackend(std::shared_ptr<AneDevice>(CreateSimDevice(rules)), o);
}

const char* kMixedIo =
    "tensor<fp16, [1, 4, 1, 8]> a, tensor<fp32, [1, 4, 1, 8]> b, tensor<int32, [2]> idx";
const char* kMixedBody =
    "        tensor<fp16, [1, 4, 1, 8]> bh = cast(x = b, dtype = string(\"fp16\"))[name = "
    "string(\"bh\")];\n"
    "        tensor<fp16, [1, 4, 1, 8]> s = add(x = a, y = bh)[name = string(\"s\")];\n"
    "        tensor<fp16, [1, 2, 1, 8]> g = gather(x = s, indices = idx, axis = int32(1))[name = "
    "string(\"g\")];\n"
    "        tensor<fp32, [1, 2, 1, 8]> y = cast(x = g, dtype = string(\"fp32\"))[name = "
    "string(\"y\")];";

// ---- single input/output surface (docs/ANE_NOTES.md §1.5, §1.8) ----

TEST(AneSimDevice, RejectsMoreThanOneInputSurfaceWith0x1dUnderTheSeedsSwitch) {
  SimRules rules;
  rules.ane.multi_input_surfaces = false;  // seed README: the single-input constraint
  std::unique_ptr<AneDevice> device = CreateSimDevice(rules);
  const std::string text = Wrap("tensor<fp16, [1, 64]> a, tensor<fp16, [1, 64]> b",
                                "        tensor<fp16, [1, 64]> y = add(x = a, y = b)[name = "
                                "string(\"y\")];",
                                "y");
  auto model = device->Compile(text, {});
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(device->Load(**model).ok());
  auto a = device->AllocateSurface(49152), b = device->AllocateSurface(49152),
       y = device->AllocateSurface(49152);
  ASSERT_TRUE(a.ok() && b.ok() && y.ok());
  absl::Status s = device->Evaluate(**model, {a->get(), b->get()}, {y->get()});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  auto error = GetDeviceError(s);
  ASSERT_TRUE(error.has_value()) << s;
  EXPECT_EQ(error->code, kAneEvalErrorCode);
  EXPECT_EQ(error->domain, kAneErrorDomain);
  EXPECT_TRUE(absl::StrContains(error->description, "status=0x1d")) << error->description;
  EXPECT_TRUE(absl::StrContains(error->description, "multi_input_surfaces"));
}

TEST(AneBackend, PacksSeveralInputsAndOutputsIntoOneSurface) {
  AneBackend backend = SimBackend();
  const mil::VerifiedProgram program = Verify(Wrap(
      kMixedIo,
      std::string(kMixedBody) + "\n        tensor<fp16, [1, 4, 1, 8]> z = mul(x = s, y = a)[name = "
                                "string(\"z\")];",
      "y, z"));
  LoweringOptions lo;
  auto lowered = LowerForAne(program, lo);
  ASSERT_TRUE(lowered.ok()) << lowered.status();
  EXPECT_TRUE(lowered->packed_inputs);
  EXPECT_TRUE(lowered->packed_outputs);
  ASSERT_EQ(lowered->input_surfaces.size(), 1u);
  ASSERT_EQ(lowered->output_surfaces.size(), 1u);
  EXPECT_EQ(lowered->input_surfaces[0].dtype, mil::DType::kFp32);  // mixed I/O -> fp32 surface
  EXPECT_TRUE(absl::StrContains(lowered->mil_text, "slice_by_size"));
  EXPECT_TRUE(absl::StrContains(lowered->mil_text, "concat"));
  ExpectMatchesCpu(backend, program);
}

// ---- fp16 I/O for hot kernels (docs/ANE_NOTES.md §1.8: no cast at the ends) ----

TEST(AneBackend, KeepsFp16IoWithoutCastsWhenEveryTensorIsFp16) {
  const mil::VerifiedProgram program = Verify(Wrap(
      "tensor<fp16, [1, 64, 1, 16]> a, tensor<fp16, [1, 64, 1, 8]> b",
      "        tensor<fp16, [1, 64, 1, 16]> y = add(x = a, y = fp16(1))[name = string(\"y\")];\n"
      "        tensor<fp16, [1, 64, 1, 8]> z = mul(x = b, y = b)[name = string(\"z\")];",
      "y, z"));
  auto lowered = LowerForAne(program, LoweringOptions{});
  ASSERT_TRUE(lowered.ok()) << lowered.status();
  EXPECT_TRUE(lowered->packed_inputs);  // b's width 8 is not a multiple of 16
  EXPECT_EQ(lowered->input_surfaces[0].dtype, mil::DType::kFp16);
  EXPECT_EQ(lowered->output_surfaces[0].dtype, mil::DType::kFp16);
  EXPECT_FALSE(absl::StrContains(lowered->mil_text, "cast("));
  EXPECT_EQ(lowered->inputs[1].offset, 64 * 16);  // b follows a in the same surface
  AneBackend backend = SimBackend();
  ExpectMatchesCpu(backend, program);
}

TEST(AneBackend, LeavesAProgramThatFitsUnchanged) {
  const mil::VerifiedProgram program = Verify(
      Wrap("tensor<fp16, [1, 64, 1, 64]> x",
           "        tensor<fp16, [1, 64, 1, 64]> y = sigmoid(x = x)[name = string(\"y\")];", "y"));
  LoweringOptions lo;
  auto lowered = LowerForAne(program, lo);
  ASSERT_TRUE(lowered.ok());
  EXPECT_FALSE(lowered->packed_inputs);
  EXPECT_FALSE(lowered->packed_outputs);
  EXPECT_EQ(lowered->program, program.program());
}

// ---- fp16-only compute and I/O dtypes (docs/ANE_NOTES.md §11, §12.6) ----

TEST(AneSimDevice, RejectsIntegerSurfacesAndTheBackendCopes) {
  std::unique_ptr<AneDevice> device = CreateSimDevice();
  auto model = device->Compile(Wrap(kMixedIo, kMixedBody, "y"), {});
  ASSERT_FALSE(model.ok());
  EXPECT_TRUE(absl::StrContains(model.status().message(), "fp16_fp32_surfaces_only"))
      << model.status();
  AneBackend backend = SimBackend();
  ExpectMatchesCpu(backend, Verify(Wrap(kMixedIo, kMixedBody, "y")));
}

TEST(AneBackend, ComputesInFp16EvenWhenFp32NumericsAreAsked) {
  AneBackend backend = SimBackend();
  EXPECT_TRUE(backend.Describe().capabilities.fp16_compute);
  const mil::VerifiedProgram program = Verify(Wrap(
      "tensor<fp16, [1, 64, 1, 2]> x",
      "        tensor<fp16, [1, 64, 1, 2]> a = mul(x = x, y = fp16(3.3))[name = string(\"a\")];\n"
      "        tensor<fp16, [1, 64, 1, 2]> y = mul(x = a, y = fp16(0.3))[name = string(\"y\")];",
      "y"));
  CompileOptions fp32;
  fp32.numerics = NumericsMode::kFp32;
  auto a = backend.Compile(program, fp32);
  auto b = backend.Compile(program, CompileOptions{});
  ASSERT_TRUE(a.ok() && b.ok());
  const std::vector<NamedTensor> in = RandomInputs((*a)->inputs(), 1);
  auto ra = (*a)->Run(in), rb = (*b)->Run(in);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->outputs[0].tensor.bytes(), rb->outputs[0].tensor.bytes());
}

// ---- surface size and alignment (docs/ANE_NOTES.md §1.4, §A.6) ----

TEST(AneSimDevice, RefusesMisalignedSurfaces) {
  std::unique_ptr<AneDevice> device = CreateSimDevice();
  EXPECT_FALSE(device->AllocateSurface(100).ok());  // not a multiple of 128 (ANE PR #35)
  EXPECT_TRUE(device->AllocateSurface(4096).ok());  // small ones fail at evaluation (0x1d)
  EXPECT_TRUE(device->AllocateSurface(49152).ok());
}

TEST(AneBackend, PadsOddSizedTensorsToTheSurfaceRules) {
  AneBackend backend = SimBackend();
  const mil::VerifiedProgram program = Verify(
      Wrap("tensor<fp16, [1, 3, 1, 5]> x",
           "        tensor<fp16, [1, 3, 1, 5]> y = relu(x = x)[name = string(\"y\")];", "y"));
  ExpectMatchesCpu(backend, program);
}

// ---- attention masks are ignored by the device (docs/ANE_NOTES.md §1.8) ----

TEST(AneBackend, HonoursAttentionMasksTheDeviceIgnores) {
  const std::string text = Wrap(
      "tensor<fp16, [1, 2, 4, 8]> q, tensor<fp16, [1, 2, 4, 8]> k, "
      "tensor<fp16, [1, 2, 4, 8]> v, tensor<fp16, [1, 1, 4, 4]> m",
      "        tensor<fp16, [1, 2, 4, 8]> y = scaled_dot_product_attention(query = q, key = "
      "k, value = v, attn_mask = m)[name = string(\"y\")];",
      "y");
  const mil::VerifiedProgram program = Verify(text);
  LoweringOptions lo;
  auto lowered = LowerForAne(program, lo);
  ASSERT_TRUE(lowered.ok()) << lowered.status();
  EXPECT_TRUE(lowered->attention_rewritten);
  EXPECT_FALSE(absl::StrContains(lowered->mil_text, "scaled_dot_product_attention"));
  AneBackend backend = SimBackend();
  ExpectMatchesCpu(backend, program);
  // Asking for the quirk keeps the op, and the device drops the mask.
  CompileOptions quirk;
  quirk.ignore_attn_mask = true;
  ExpectMatchesCpu(backend, program, quirk);
}

// ---- the compile budget (docs/ANE_NOTES.md §1.8, §11) ----

const char* kTiny = "tensor<fp16, [1, 64]> x";
std::string TinyBody(int i) {
  return "        tensor<fp16, [1, 64]> y = mul(x = x, y = fp16(" + std::to_string(i) +
         "))[name = string(\"y\")];";
}

TEST(AneSimDevice, FailsCompilesLikeTheFrameworkOnceTheBudgetIsSpent) {
  SimRules rules;
  rules.compile_budget = 2;
  std::unique_ptr<AneDevice> device = CreateSimDevice(rules);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(device->Compile(Wrap(kTiny, TinyBody(i), "y"), {}).ok());
  auto third = device->Compile(Wrap(kTiny, TinyBody(3), "y"), {});
  ASSERT_FALSE(third.ok());
  auto error = GetDeviceError(third.status());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->description, kSimCompileFailedText);
  // Attempts, the failed one included.
  EXPECT_EQ(device->compile_count(), 3);
  EXPECT_EQ(CreateSimDevice()->Info().compile_budget, 119);  // the documented default
}

TEST(AneSimDevice, CountsEveryCompileAttemptIncludingRejectedPrograms) {
  SimRules rules;
  rules.compile_budget = 2;
  std::unique_ptr<AneDevice> device = CreateSimDevice(rules);
  EXPECT_FALSE(device->Compile("program(1.3) { not mil", {}).ok());
  EXPECT_EQ(device->compile_count(), 1);
  ASSERT_TRUE(device->Compile(Wrap(kTiny, TinyBody(1), "y"), {}).ok());
  EXPECT_EQ(device->compile_count(), 2);
  auto third = device->Compile(Wrap(kTiny, TinyBody(2), "y"), {});  // the rejection spent a slot
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(GetDeviceError(third.status())->description, kSimCompileFailedText);
}

TEST(AneBackend, NearTheBudgetMeansItsLastFifth) {
  EXPECT_FALSE(NearCompileBudget(80, 100));
  EXPECT_TRUE(NearCompileBudget(81, 100));
  EXPECT_TRUE(NearCompileBudget(100, 100));
  EXPECT_FALSE(NearCompileBudget(8, 10));
  EXPECT_TRUE(NearCompileBudget(9, 10));
  EXPECT_FALSE(NearCompileBudget(1, 2));
  EXPECT_TRUE(NearCompileBudget(2, 2));
  EXPECT_FALSE(NearCompileBudget(1000, 0));
}

TEST(AneBackend, CountsDeviceRejectionsAndCallsThemInvalidFarFromTheBudget) {
  SimRules rules;
  rules.faults.compile_fail_from_attempt = 1;  // the device rejects everything
  AneBackend backend = SimBackend(rules, /*budget=*/10);
  auto first = backend.Compile(Verify(Wrap(kTiny, TinyBody(1), "y")), {});
  EXPECT_EQ(first.status().code(), absl::StatusCode::kInvalidArgument) << first.status();
  EXPECT_TRUE(absl::StrContains(first.status().message(), kSimCompileFailedText));
  EXPECT_EQ(backend.compiles_used(), 1);
}

TEST(AneBackend, TakesADeviceFailureNearTheBudgetForExhaustion) {
  SimRules rules;
  rules.faults.compile_fail_from_attempt = 9;  // the device runs out before anerd's count says so
  AneBackend backend = SimBackend(rules, /*budget=*/10);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(backend.Compile(Verify(Wrap(kTiny, TinyBody(i), "y")), {}).ok()) << i;
  }
  auto ninth = backend.Compile(Verify(Wrap(kTiny, TinyBody(9), "y")), {});
  EXPECT_EQ(ninth.status().code(), absl::StatusCode::kResourceExhausted) << ninth.status();
  EXPECT_TRUE(absl::StrContains(ninth.status().message(), "attempt 9 of a budget of 10"));
  EXPECT_TRUE(absl::StrContains(ninth.status().message(), kSimCompileFailedText));
  EXPECT_EQ(backend.compiles_used(), 9);
}

TEST(AneBackend, ReturnsResourceExhaustedAtItsOwnBudgetWithoutTouchingTheDevice) {
  SimRules rules;
  rules.compile_budget = 10;
  auto device = std::shared_ptr<AneDevice>(CreateSimDevice(rules));
  AneBackendOptions o;
  o.compile_budget = EffectiveCompileBudget(2, rules.compile_budget);
  AneBackend backend(device, o);
  EXPECT_EQ(backend.Describe().capabilities.compile_budget, 2);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(backend.Compile(Verify(Wrap(kTiny, TinyBody(i), "y")), {}).ok());
  }
  auto third = backend.Compile(Verify(Wrap(kTiny, TinyBody(3), "y")), {});
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(backend.compiles_used(), 2);
  EXPECT_EQ(device->compile_count(), 2);
}

TEST(AneBackend, MapsTheDevicesBudgetFailureToResourceExhaustedWithItsText) {
  SimRules rules;
  rules.compile_budget = 2;
  AneBackend backend = SimBackend(rules, /*budget=*/0);  // rely on the device failing
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(backend.Compile(Verify(Wrap(kTiny, TinyBody(i), "y")), {}).ok());
  }
  auto third = backend.Compile(Verify(Wrap(kTiny, TinyBody(3), "y")), {});
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(third.status().message(), kSimCompileFailedText));
  EXPECT_TRUE(absl::StrContains(third.status().message(), kSimErrorDomain));
  EXPECT_EQ(backend.compiles_used(), 3);  // the failed attempt counts
}

TEST(AneBackend, CarriesIntegerOutputsExactlyAndCombinesBudgets) {
  AneBackend backend = SimBackend();
  EXPECT_EQ(EffectiveCompileBudget(0, 119), 119);
  EXPECT_EQ(EffectiveCompileBudget(50, 119), 50);
  EXPECT_EQ(EffectiveCompileBudget(500, 0), 500);
  // An int32 output is not a surface dtype: it travels as fp32 and comes back exact.
  const mil::VerifiedProgram program = Verify(
      Wrap("tensor<fp16, [1, 64]> x",
           "        tensor<int32, [1, 64]> y = cast(x = x, dtype = string(\"int32\"))[name = "
           "string(\"y\")];",
           "y"));
  ExpectMatchesCpu(backend, program);
  EXPECT_EQ(backend.compiles_used(), 1);
}

// ---- QoS and the device's execution time (issue 18 item 6) ----

// A device that records the QoS of every call and forwards to the simulator.
class QosRecorder : public AneDevice {
 public:
  explicit QosRecorder(std::unique_ptr<AneDevice> inner) : inner_(std::move(inner)) {}
  DeviceInfo Info() const override { return inner_->Info(); }
  absl::StatusOr<std::unique_ptr<DeviceModel>> Compile(absl::string_view mil,
                                                       const std::vector<DeviceWeightFile>& w,
                                                       unsigned int qos) override {
    calls.push_back("compile " + std::to_string(qos));
    return inner_->Compile(mil, w, qos);
  }
  absl::Status Load(DeviceModel& m, unsigned int qos) override {
    calls.push_back("load " + std::to_string(qos));
    return inner_->Load(m, qos);
  }
  absl::Status Unload(DeviceModel& m, unsigned int qos) override {
    calls.push_back("unload " + std::to_string(qos));
    return inner_->Unload(m, qos);
  }
  absl::StatusOr<std::unique_ptr<DeviceSurface>> AllocateSurface(size_t bytes) override {
    return inner_->AllocateSurface(bytes);
  }
  absl::Status Evaluate(DeviceModel& m, const std::vector<DeviceSurface*>& in,
                        const std::vector<DeviceSurface*>& out, unsigned int qos,
                        PerfCounters* counters) override {
    calls.push_back("evaluate " + std::to_string(qos));
    return inner_->Evaluate(m, in, out, qos, counters);
  }
  int64_t compile_count() const override { return inner_->compile_count(); }

  std::vector<std::string> calls;

 private:
  std::unique_ptr<AneDevice> inner_;
};

TEST(AneBackend, PassesTheKernelsQosToEveryDeviceCall) {
  for (std::optional<unsigned int> qos :
       std::vector<std::optional<unsigned int>>{9u, std::nullopt}) {
    auto device = std::make_shared<QosRecorder>(CreateSimDevice());
    AneBackend backend(device, AneBackendOptions{});
    EXPECT_TRUE(backend.Describe().capabilities.qos);
    CompileOptions options;
    options.qos = qos;
    auto program = backend.Compile(Verify(Wrap(kTiny, TinyBody(2), "y")), options);
    ASSERT_TRUE(program.ok()) << program.status();
    ASSERT_TRUE((*program)->Run(RandomInputs((*program)->inputs(), 1)).ok());
    program->reset();  // unloads the model

    // 21 is the seed's default.
    const std::string q = qos.has_value() ? "9" : "21";
    EXPECT_EQ(device->calls, (std::vector<std::string>{"compile " + q, "load " + q, "evaluate " + q,
                                                       "unload " + q}));
  }
  AneBackend backend = SimBackend();
  CompileOptions bad;
  bad.qos = 64;
  auto refused = backend.Compile(Verify(Wrap(kTiny, TinyBody(2), "y")), bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "options.qos: 64"));
  EXPECT_EQ(backend.compiles_used(), 0);
}

TEST(AneSimDevice, ReportsItsModelledExecutionTimeLabelledSimulated) {
  std::unique_ptr<AneDevice> device = CreateSimDevice();
  const std::string small = Wrap(kTiny, TinyBody(2), "y");
  auto model = device->Compile(small, {});
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(device->Load(**model).ok());
  // The rules table's minimum surface (min_surface_bytes), as the lowering would allocate.
  auto in = device->AllocateSurface(49152), out = device->AllocateSurface(49152);
  ASSERT_TRUE(in.ok() && out.ok());
  for (int i = 0; i < 2; ++i) {  // the same program reports the same time, every evaluation
    PerfCounters counters;
    const absl::Status st = device->Evaluate(**model, {in->get()}, {out->get()}, 0, &counters);
    ASSERT_TRUE(st.ok()) << st;
    ASSERT_TRUE(counters.hardware_ns.has_value());
    EXPECT_EQ(*counters.hardware_ns, SimModelledHardwareNs(small));
    EXPECT_TRUE(counters.simulated);
  }
  EXPECT_TRUE(device->Info().hardware_counters);
  // The model follows the work: a 64x64 conv over 64 positions costs more than a scale of 64
  // values, by its FLOPs over the modelled rate.
  const std::string conv =
      Wrap("tensor<fp16, [1, 64, 1, 64]> x",
           "        tensor<fp16, [64, 64, 1, 1]> w = const()[name = string(\"w\"), val = "
           "tensor<fp16, [64, 64, 1, 1]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), "
           "offset = uint64(64)))];\n"
           "        tensor<fp16, [1, 64, 1, 64]> y = conv(x = x, weight = w)[name = "
           "string(\"y\")];",
           "y");
  const uint64_t conv_ns = SimModelledHardwareNs(conv);
  EXPECT_GT(conv_ns, SimModelledHardwareNs(small));
  EXPECT_GE(static_cast<double>(conv_ns - kSimDispatchNs), 2.0 * 64 * 64 * 64 / kSimFlopsPerNs);
  EXPECT_EQ(SimModelledHardwareNs("not mil"), 0u);
}

TEST(AneBackend, RunsReportTheDevicesTimeAndTheCpuReportsNone) {
  AneBackend sim = SimBackend();
  EXPECT_EQ(sim.Describe().capabilities.hardware_time, "simulated");
  const mil::VerifiedProgram program = Verify(Wrap(kTiny, TinyBody(2), "y"));
  auto a = sim.Compile(program, {});
  ASSERT_TRUE(a.ok()) << a.status();
  auto ra = (*a)->Run(RandomInputs((*a)->inputs(), 3));
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(ra->timing.hardware_us.has_value());
  EXPECT_GE(*ra->timing.hardware_us, kSimDispatchNs / 1000.0);  // the model's, never 0
  EXPECT_TRUE(ra->timing.hardware_simulated);

  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  EXPECT_FALSE(cpu.Describe().capabilities.qos);
  EXPECT_EQ(cpu.Describe().capabilities.hardware_time, "");
  auto b = cpu.Compile(program, {});
  ASSERT_TRUE(b.ok());
  auto rb = (*b)->Run(RandomInputs((*b)->inputs(), 3));
  ASSERT_TRUE(rb.ok());
  EXPECT_FALSE(rb->timing.hardware_us.has_value());  // absent, not 0
  CompileOptions with_qos;
  with_qos.qos = 21;
  auto refused = cpu.Compile(program, with_qos);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "options.qos"));
}

// ---- weights are baked at compile time (docs/ANE_NOTES.md §1.8) ----

// Compiles y = x * w (w from a weight file), evaluates, rewrites the weight bytes the caller
// passed, unloads and reloads, evaluates again; returns whether the output changed.
bool OutputChangesAfterWeightRewriteAndReload(bool bake) {
  SimRules rules;
  rules.bake_weights = bake;
  std::unique_ptr<AneDevice> device = CreateSimDevice(rules);
  auto bytes = std::make_shared<std::string>(mil::BuildFp16Blob(std::vector<float>(64, 2.0f)));
  const std::string text = Wrap(
      "tensor<fp16, [1, 64]> x",
      "        tensor<fp16, [1, 64]> w = const()[name = string(\"w\"), val = tensor<fp16, [1, 64]>"
      "(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = uint64(64)))];\n"
      "        tensor<fp16, [1, 64]> y = mul(x = x, y = w)[name = string(\"y\")];",
      "y");
  auto model = device->Compile(text, {{"@model_path/weights/w.bin", bytes}});
  EXPECT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(device->Load(**model).ok());
  auto in = device->AllocateSurface(49152), out = device->AllocateSurface(49152);
  const std::string ones =
      Tensor::FromFloats(mil::DType::kFp16, {1, 64}, std::vector<float>(64, 1.0f)).bytes();
  EXPECT_TRUE((*in)->Write(0, ones).ok());
  std::string first(128, '\0'), second(128, '\0');
  EXPECT_TRUE(device->Evaluate(**model, {in->get()}, {out->get()}).ok());
  EXPECT_TRUE((*out)->Read(0, 128, first.data()).ok());
  *bytes = mil::BuildFp16Blob(std::vector<float>(64, 5.0f));  // "overwrite the weight file"
  EXPECT_TRUE(device->Unload(**model).ok());
  EXPECT_TRUE(device->Load(**model).ok());
  EXPECT_TRUE(device->Evaluate(**model, {in->get()}, {out->get()}).ok());
  EXPECT_TRUE((*out)->Read(0, 128, second.data()).ok());
  return first != second;
}

TEST(AneSimDevice, WeightsAreBakedAtCompileTime) {
  EXPECT_FALSE(OutputChangesAfterWeightRewriteAndReload(/*bake=*/true));
  EXPECT_TRUE(OutputChangesAfterWeightRewriteAndReload(/*bake=*/false));  // the switch matters
}

TEST(AneBackend, NewWeightsMeanANewCompile) {
  // The backend never relies on reload: different weights are a different program and compile.
  AneBackend backend = SimBackend();
  const std::string text = Wrap(
      "tensor<fp16, [1, 64]> x",
      "        tensor<fp16, [1, 64]> w = const()[name = string(\"w\"), val = tensor<fp16, [1, 64]>"
      "(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = uint64(64)))];\n"
      "        tensor<fp16, [1, 64]> y = mul(x = x, y = w)[name = string(\"y\")];",
      "y");
  for (float w : {2.0f, 5.0f}) {
    mil::WeightFiles files;
    ASSERT_TRUE(files.Add("weights/w.bin", mil::BuildFp16Blob(std::vector<float>(64, w))).ok());
    ExpectMatchesCpu(backend, Verify(text, std::move(files)));
  }
  EXPECT_EQ(backend.compiles_used(), 2);
}

// ---- errors, canary, registry ----

TEST(AneDeviceError, RoundTripsThroughAStatus) {
  absl::Status s = MakeDeviceError(absl::StatusCode::kInternal, "ANE eval failed",
                                   {"com.apple.appleneuralengine", 29, "bad\nthing"});
  EXPECT_TRUE(absl::StrContains(s.message(), "bad\nthing"));
  auto e = GetDeviceError(s);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->domain, "com.apple.appleneuralengine");
  EXPECT_EQ(e->code, 29);
  EXPECT_EQ(e->description, "bad\nthing");
  EXPECT_FALSE(GetDeviceError(absl::InternalError("plain")).has_value());
}

// A backend whose results are off by a little in one element (a "device" computing wrongly).
class OffByOne : public Backend {
 public:
  class Program : public CompiledProgram {
   public:
    explicit Program(std::unique_ptr<CompiledProgram> inner) : inner_(std::move(inner)) {}
    const std::vector<TensorSignature>& inputs() const override { return inner_->inputs(); }
    const std::vector<TensorSignature>& outputs() const override { return inner_->outputs(); }
    absl::StatusOr<RunResult> Run(const std::vector<NamedTensor>& in) override {
      absl::StatusOr<RunResult> r = inner_->Run(in);
      if (!r.ok()) return r;
      Tensor& t = r->outputs[0].tensor;
      StoreElement(t.dtype(), t.mutable_data(), 7, LoadElement(t.dtype(), t.data(), 7) + 0.25);
      return r;
    }
    std::unique_ptr<CompiledProgram> inner_;
  };
  BackendDescription Describe() const override { return {"off-by-one", "0", "", {}}; }
  absl::Status Supports(const OpQuery&) const override { return absl::OkStatus(); }
  absl::StatusOr<std::unique_ptr<CompiledProgram>> Compile(const mil::VerifiedProgram& p,
                                                           const CompileOptions& o) override {
    auto inner = inner_.Compile(p, o);
    if (!inner.ok()) return inner.status();
    return std::unique_ptr<CompiledProgram>(new Program(*std::move(inner)));
  }
  int64_t compiles_used() const override { return 0; }
  cpu::CpuBackend inner_{cpu::CpuBackendOptions{}};
};

TEST(AneCanary, PassesOnTheSimulatorAndCatchesAWrongDevice) {
  AneBackend sim = SimBackend();
  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  EXPECT_TRUE(RunCanary(sim, cpu).ok());
  OffByOne wrong;
  absl::Status s = RunCanary(wrong, cpu);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "element 7")) << s;
}

TEST(Registry, OffersCpuAndTheSimulatorAndSaysWhyTheAneIsAbsent) {
  BackendRegistry registry(RegistryOptions{});
  const std::vector<std::string> names = registry.names();
  ASSERT_GE(names.size(), 2u);
  EXPECT_EQ(names.back(), "ane-sim");
  ASSERT_NE(registry.Find("cpu"), nullptr);
  if (registry.Find("ane") == nullptr) {
    ASSERT_EQ(registry.unavailable().size(), 1u);
    EXPECT_EQ(registry.unavailable()[0].name, "ane");
    EXPECT_FALSE(registry.unavailable()[0].reason.empty());
    EXPECT_EQ(names.front(), "cpu");
  } else {
    EXPECT_EQ(names.front(), "ane");  // preferred when present
  }
  // The seed's 100 by default (below the device's ~119), or the configured one.
  EXPECT_EQ(registry.Find("ane-sim")->Describe().capabilities.compile_budget, 100);
  RegistryOptions options;
  options.compile_budget = 7;
  EXPECT_EQ(BackendRegistry(options).Find("ane-sim")->Describe().capabilities.compile_budget, 7);
}

}  // namespace
}  // namespace anerd::backend::ane
