// Every rule of the ANE rules table (common/mil/ane_rules.h) against the three readers that must
// agree: the simulated device rejects a program or binding that breaks it (failing the way the
// framework does), the lowering's output satisfies it (or the program is refused when no rewrite
// can), and CheckAneProgram (what `anectl mil check --target ane` prints) reports it. The last
// test fails when the table gains a rule this file does not cover.
#include "common/mil/ane_rules.h"

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "common/mil/blob_writer.h"
#include "common/mil/check.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gtest/gtest.h"
#include "server/backend/ane/ane_backend.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/ane/ane_lowering.h"
#include "server/backend/ane/ane_rule_probe.h"
#include "server/backend/cpu/cpu_backend.h"

namespace anerd::backend::ane {
namespace {

constexpr char kBuildInfo[] =
    "[buildInfo = dict<string, string>({{\"coremlc-version\", \"3505.4.1\"}})]\n";

std::string Program(const std::string& inputs, const std::string& body, const std::string& outputs,
                    bool build_info = true) {
  return std::string("program(1.3)\n") + (build_info ? kBuildInfo : "") +
         "{\n    func main<ios18>(" + inputs + ") {\n" + body + "\n    } -> (" + outputs +
         ");\n}\n";
}

mil::Program Parse(const std::string& text) {
  auto p = mil::ParseProgram(text);
  EXPECT_TRUE(p.ok()) << p.status() << "\n" << text;
  return p.ok() ? *std::move(p) : mil::Program{};
}

mil::VerifiedProgram Verify(const std::string& text, mil::WeightFiles weights = {}) {
  auto p = mil::VerifyProgram(Parse(text), std::move(weights));
  EXPECT_TRUE(p.ok()) << p.status() << "\n" << text;
  return *std::move(p);
}

// The rule ids CheckAneProgram reports for `text` under `rules`.
std::set<std::string> Reported(const std::string& text, const mil::AneRules& rules = {}) {
  std::set<std::string> out;
  for (const mil::AneViolation& v : mil::CheckAneProgram(Parse(text), rules)) out.insert(v.rule);
  return out;
}

// Compile failure as the framework reports it, naming `rule`.
void ExpectCompileRejects(const std::string& text, const std::string& rule,
                          const mil::AneRules& rules = {}) {
  SimRules sim;
  sim.ane = rules;
  auto model = CreateSimDevice(sim)->Compile(text, {});
  ASSERT_FALSE(model.ok()) << "the simulator accepted a program breaking " << rule;
  auto error = GetDeviceError(model.status());
  ASSERT_TRUE(error.has_value()) << model.status();
  EXPECT_EQ(error->domain, "com.apple.appleneuralengine.compiler");
  EXPECT_EQ(error->code, 1);
  EXPECT_TRUE(absl::StartsWith(error->description, "_ANECompiler : ANECCompile() FAILED"));
  EXPECT_TRUE(absl::StrContains(error->description, rule)) << error->description;
}

// Compiles and evaluates on the device with surfaces of the given sizes (inputs get `fill`).
absl::Status EvaluateWith(const std::string& text, const std::vector<size_t>& in_bytes,
                          const std::vector<size_t>& out_bytes, const mil::AneRules& rules = {},
                          std::vector<std::string>* outputs = nullptr,
                          const std::vector<std::string>& fill = {}) {
  SimRules sim;
  sim.ane = rules;
  std::unique_ptr<AneDevice> device = CreateSimDevice(sim);
  auto model = device->Compile(text, {});
  if (!model.ok()) return model.status();
  if (absl::Status s = device->Load(**model); !s.ok()) return s;
  std::vector<std::unique_ptr<DeviceSurface>> ins, outs;
  std::vector<DeviceSurface*> in_ptrs, out_ptrs;
  for (size_t i = 0; i < in_bytes.size(); ++i) {
    auto s = device->AllocateSurface(in_bytes[i]);
    if (!s.ok()) return s.status();
    if (i < fill.size()) (void)(*s)->Write(0, fill[i]);
    in_ptrs.push_back(s->get());
    ins.push_back(*std::move(s));
  }
  for (size_t b : out_bytes) {
    auto s = device->AllocateSurface(b);
    if (!s.ok()) return s.status();
    out_ptrs.push_back(s->get());
    outs.push_back(*std::move(s));
  }
  absl::Status s = device->Evaluate(**model, in_ptrs, out_ptrs);
  if (s.ok() && outputs != nullptr) {
    for (auto& o : outs) {
      std::string bytes(o->size(), '\0');
      (void)o->Read(0, bytes.size(), bytes.data());
      outputs->push_back(bytes);
    }
  }
  return s;
}

void ExpectEvalRejects(const absl::Status& s, const std::string& rule) {
  ASSERT_FALSE(s.ok()) << "the simulator accepted a binding breaking " << rule;
  auto error = GetDeviceError(s);
  ASSERT_TRUE(error.has_value()) << s;
  EXPECT_EQ(error->code, 8);
  EXPECT_TRUE(absl::StrContains(error->description, "status=0x1d")) << error->description;
  EXPECT_TRUE(absl::StrContains(error->description, rule)) << error->description;
}

absl::StatusOr<LoweredProgram> Lower(const std::string& text, const mil::AneRules& rules = {}) {
  LoweringOptions lo;
  lo.rules = rules;
  return LowerForAne(Verify(text), lo);
}

// The lowered program breaks none of the rules a rewrite can satisfy.
void ExpectLoweredClean(const LoweredProgram& lowered, const mil::AneRules& rules = {}) {
  for (const mil::AneViolation& v : mil::CheckAneProgram(lowered.program, rules)) {
    // Allocation rules: CheckAneProgram assumes surfaces of the declared sizes; the lowering
    // satisfies them by allocating, checked below.
    if (v.rule == "min_surface_bytes" || v.rule == "uniform_surface_sizes") continue;
    ADD_FAILURE() << "lowered program breaks " << v.rule << ": " << v.message << "\n"
                  << lowered.mil_text;
  }
  for (const auto* sizes : {&lowered.input_surface_bytes, &lowered.output_surface_bytes}) {
    for (int64_t b : *sizes) {
      EXPECT_GE(b, rules.min_surface_bytes);
      EXPECT_EQ(b, sizes->front());  // uniform
      if (rules.surface_alignment > 0) EXPECT_EQ(b % rules.surface_alignment, 0);
    }
  }
}

// Runs `text` through the ANE backend over ane-sim and the CPU backend; outputs must agree.
void ExpectBackendMatchesCpu(const std::string& text, const mil::AneRules& rules = {}) {
  SimRules sim;
  sim.ane = rules;
  AneBackend ane(std::shared_ptr<AneDevice>(CreateSimDevice(sim)), AneBackendOptions{});
  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  const mil::VerifiedProgram program = Verify(text);
  auto a = ane.Compile(program, {});
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = cpu.Compile(program, {});
  ASSERT_TRUE(b.ok()) << b.status();
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-2, 2);
  std::vector<NamedTensor> in;
  for (const TensorSignature& s : (*a)->inputs()) {
    Tensor t(s.type);
    for (int64_t i = 0; i < t.num_elements(); ++i)
      StoreElement(s.type.dtype, t.mutable_data(), i, u(rng));
    in.push_back({s.name, std::move(t)});
  }
  auto ra = (*a)->Run(in);
  ASSERT_TRUE(ra.ok()) << ra.status();
  auto rb = (*b)->Run(in);
  ASSERT_TRUE(rb.ok()) << rb.status();
  for (size_t i = 0; i < ra->outputs.size(); ++i) {
    const auto x = ra->outputs[i].tensor.ToDoubles(), y = rb->outputs[i].tensor.ToDoubles();
    ASSERT_EQ(x.size(), y.size());
    for (size_t j = 0; j < x.size(); ++j) {
      ASSERT_NEAR(x[j], y[j], 3e-3 + 5e-3 * std::fabs(y[j]))
          << ra->outputs[i].name << "[" << j << "]";
    }
  }
}

std::string Fp16Bytes(const std::vector<float>& v) {
  return Tensor::FromFloats(mil::DType::kFp16, {static_cast<int64_t>(v.size())}, v).bytes();
}

const char* kIo16 = "tensor<fp16, [1, 64, 1, 16]> x";
const char* kRelu16 = "        tensor<fp16, [1, 64, 1, 16]> y = relu(x = x)[name = string(\"y\")];";
constexpr size_t kTensor16 = 64 * 16 * 2;  // 2,048 bytes

// ---- surfaces ----

TEST(AneRules, MinSurfaceBytes) {
  const std::string text = Program(kIo16, kRelu16, "y");
  ExpectEvalRejects(EvaluateWith(text, {kTensor16}, {kTensor16}), "min_surface_bytes");
  EXPECT_TRUE(EvaluateWith(text, {49152}, {49152}).ok());
  EXPECT_TRUE(Reported(text).count("min_surface_bytes"));
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  EXPECT_EQ(lowered->input_surface_bytes, std::vector<int64_t>{49152});
  ExpectLoweredClean(*lowered);
  ExpectBackendMatchesCpu(text);
}

TEST(AneRules, SurfaceWidthMultiple) {
  const std::string text =
      Program("tensor<fp16, [1, 64, 1, 24]> x",
              "        tensor<fp16, [1, 64, 1, 24]> y = relu(x = x)[name = string(\"y\")];", "y");
  ExpectEvalRejects(EvaluateWith(text, {49152}, {49152}), "surface_width_multiple");
  EXPECT_TRUE(Reported(text).count("surface_width_multiple"));
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  EXPECT_TRUE(lowered->packed_inputs && lowered->packed_outputs);
  EXPECT_EQ(lowered->input_surfaces[0].shape.back() % 16, 0);
  ExpectLoweredClean(*lowered);
  ExpectBackendMatchesCpu(text);
}

TEST(AneRules, SurfaceAlignment) {
  EXPECT_FALSE(CreateSimDevice(SimRules{})->AllocateSurface(49152 + 64).ok());
  EXPECT_EQ(SurfaceAllocationBytes(49153, mil::AneRules{}) % 128, 0);
}

TEST(AneRules, OverallocatedSurfacesOk) {
  const std::string text = Program(kIo16, kRelu16, "y");
  std::vector<float> x(64 * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
  std::vector<std::string> out;
  ASSERT_TRUE(EvaluateWith(text, {65536}, {65536}, {}, &out, {Fp16Bytes(x)}).ok());
  const Tensor y = *Tensor::FromBytes({mil::DType::kFp16, {64 * 16}}, out[0].substr(0, kTensor16));
  const std::vector<float> got = y.ToFloats();
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(got[i], std::max(0.0f, x[i])) << i;
  ExpectEvalRejects(EvaluateWith(text, {49152}, {1024}), "overallocated_surfaces_ok");  // too small
  mil::AneRules strict;
  strict.overallocated_surfaces_ok = false;
  ExpectEvalRejects(EvaluateWith(text, {65536}, {65536}, strict), "overallocated_surfaces_ok");
}

const char* kTwoIn = "tensor<fp16, [1, 64, 1, 16]> x, tensor<fp16, [1, 64, 1, 32]> a";
const char* kTwoInBody =
    "        tensor<fp16, [1, 64, 1, 16]> as = slice_by_size(x = a, begin = tensor<int32, [4]>([0, "
    "0, 0, 0]), size = tensor<int32, [4]>([1, 64, 1, 16]))[name = string(\"as\")];\n"
    "        tensor<fp16, [1, 64, 1, 16]> y = sub(x = x, y = as)[name = string(\"y\")];";

TEST(AneRules, MultiInputSurfaces) {
  const std::string text = Program(kTwoIn, kTwoInBody, "y");
  mil::AneRules seed;
  seed.multi_input_surfaces = false;
  ExpectEvalRejects(EvaluateWith(text, {49152, 49152}, {49152}, seed), "multi_input_surfaces");
  EXPECT_TRUE(EvaluateWith(text, {49152, 49152}, {49152}).ok());
  EXPECT_TRUE(Reported(text, seed).count("multi_input_surfaces"));
  auto separate = Lower(text);
  ASSERT_TRUE(separate.ok());
  EXPECT_EQ(separate->input_surfaces.size(), 2u);
  auto packed = Lower(text, seed);
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ(packed->input_surfaces.size(), 1u);
  ExpectLoweredClean(*packed, seed);
  ExpectBackendMatchesCpu(text);
  ExpectBackendMatchesCpu(text, seed);
}

TEST(AneRules, MultiOutputSurfaces) {
  const std::string text = Program("tensor<fp16, [1, 32, 1, 16]> x",
                                   "        tensor<fp16, [1, 32, 1, 16]> y = relu(x = x)[name = "
                                   "string(\"y\")];\n        tensor<fp16, [1, 32, 1, 16]> b = "
                                   "sigmoid(x = x)[name = string(\"b\")];",
                                   "y, b");
  mil::AneRules seed;
  seed.multi_output_surfaces = false;
  ExpectEvalRejects(EvaluateWith(text, {49152}, {49152, 49152}, seed), "multi_output_surfaces");
  EXPECT_TRUE(Reported(text, seed).count("multi_output_surfaces"));
  auto packed = Lower(text, seed);
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ(packed->output_surfaces.size(), 1u);
  ExpectLoweredClean(*packed, seed);
  auto separate = Lower(text);
  ASSERT_TRUE(separate.ok());
  EXPECT_EQ(separate->output_surfaces.size(), 2u);
  EXPECT_FALSE(absl::StrContains(separate->mil_text, "concat"));
  ExpectBackendMatchesCpu(text);
  ExpectBackendMatchesCpu(text, seed);
}

TEST(AneRules, UniformSurfaceSizes) {
  const std::string text = Program(kTwoIn, kTwoInBody, "y");
  ExpectEvalRejects(EvaluateWith(text, {49152, 65536}, {49152}), "uniform_surface_sizes");
  EXPECT_TRUE(Reported(text).count("uniform_surface_sizes"));
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  ExpectLoweredClean(*lowered);  // checks the sizes are equal
}

TEST(AneRules, AlphabeticalBinding) {
  // Declared (x, a): the device binds surface 0 to `a`. The lowering declares them sorted and
  // binds in that order; y = x - a comes out right only if both agree.
  const std::string text = Program(kTwoIn, kTwoInBody, "y");
  EXPECT_TRUE(Reported(text).count("alphabetical_binding"));
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  EXPECT_EQ(lowered->program.main()->inputs[0].name, "a");
  EXPECT_EQ(lowered->inputs[0].name, "x");  // logical order kept for the caller
  EXPECT_EQ(lowered->inputs[0].surface, 1);
  ExpectLoweredClean(*lowered);
  ExpectBackendMatchesCpu(text);
  // The device really binds by name: a program declared (x, a) given surfaces (x-data, a-data)
  // in declaration order computes a - x, not x - a.
  std::vector<float> ones(64 * 32, 1.0f), twos(64 * 16, 2.0f);
  std::vector<std::string> out;
  ASSERT_TRUE(
      EvaluateWith(text, {49152, 49152}, {49152}, {}, &out, {Fp16Bytes(twos), Fp16Bytes(ones)})
          .ok());
  const Tensor y = *Tensor::FromBytes({mil::DType::kFp16, {64 * 16}}, out[0].substr(0, kTensor16));
  EXPECT_EQ(y.ToFloats()[0], 1.0f - 2.0f);  // surface 0 (twos) went to `a`
}

TEST(AneRules, Fp16Fp32SurfacesOnly) {
  const std::string text =
      Program("tensor<int32, [1, 64, 1, 16]> x",
              "        tensor<fp16, [1, 64, 1, 16]> y = cast(x = x, dtype = string(\"fp16\"))[name "
              "= string(\"y\")];",
              "y");
  ExpectCompileRejects(text, "fp16_fp32_surfaces_only");
  EXPECT_TRUE(Reported(text).count("fp16_fp32_surfaces_only"));
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  EXPECT_EQ(lowered->input_surfaces[0].dtype, mil::DType::kFp32);
  ExpectLoweredClean(*lowered);
}

TEST(AneRules, MinPackChannels) {
  // A lowering convention (seed commit 184b182): the simulator does not enforce it on I/O (the
  // seed's own kvBwd kernel takes 32 channels), the lowering packs with C >= 64.
  const std::string text =
      Program("tensor<fp16, [3, 5]> x",
              "        tensor<fp16, [3, 5]> y = relu(x = x)[name = string(\"y\")];", "y");
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  EXPECT_GE(lowered->input_surfaces[0].shape[1], 64);
  EXPECT_GE(lowered->output_surfaces[0].shape[1], 64);
  ExpectLoweredClean(*lowered);
  ExpectBackendMatchesCpu(text);
}

// ---- ops ----

const char* kWidthConcat =
    "        tensor<fp16, [1, 64, 1, 32]> y = concat(values = (x, x), axis = int32(3))[name = "
    "string(\"y\")];";

TEST(AneRules, ConcatChannelsOnlyAndBanned) {
  const std::string width = Program(kIo16, kWidthConcat, "y");
  ExpectCompileRejects(width, "concat");
  EXPECT_TRUE(Reported(width).count("concat"));
  auto lowered = Lower(width);
  ASSERT_TRUE(lowered.ok());
  ExpectLoweredClean(*lowered);  // the concat now runs on channels between transposes
  ExpectBackendMatchesCpu(width);
  const std::string channels =
      Program(kIo16,
              "        tensor<fp16, [1, 128, 1, 16]> y = concat(values = (x, x), axis = int32(1))"
              "[name = string(\"y\")];",
              "y");
  EXPECT_FALSE(Reported(channels).count("concat"));
  mil::AneRules orion;
  orion.concat = mil::ConcatPolicy::kBanned;
  ExpectCompileRejects(channels, "concat", orion);
  // Under the ban, packing never concatenates: several outputs get their own surfaces, and when
  // the rules leave no way the lowering refuses instead of emitting concat.
  const std::string two = Program("tensor<fp16, [1, 32, 1, 16]> x",
                                  "        tensor<fp16, [1, 32, 1, 16]> y = relu(x = x)[name = "
                                  "string(\"y\")];\n        tensor<fp16, [1, 32, 1, 16]> b = "
                                  "sigmoid(x = x)[name = string(\"b\")];",
                                  "y, b");
  auto separate = Lower(two, orion);
  ASSERT_TRUE(separate.ok());
  EXPECT_FALSE(absl::StrContains(separate->mil_text, "concat"));
  orion.multi_output_surfaces = false;
  EXPECT_EQ(Lower(two, orion).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(AneRules, CastSupported) {
  const mil::AneRules m1 = mil::AneRulesForChip("Apple M1 Pro");
  EXPECT_FALSE(m1.cast_supported);
  EXPECT_TRUE(mil::AneRulesForChip("Apple M4 Max").cast_supported);
  EXPECT_TRUE(mil::AneRulesForChip("Apple M10").cast_supported);
  const std::string text =
      Program("tensor<fp32, [1, 64, 1, 16]> x",
              "        tensor<fp16, [1, 64, 1, 16]> y = cast(x = x, dtype = string(\"fp16\"))[name "
              "= string(\"y\")];",
              "y");
  ExpectCompileRejects(text, "cast_supported", m1);
  EXPECT_FALSE(Reported(text).count("cast_supported"));
  EXPECT_TRUE(Reported(text, m1).count("cast_supported"));
  // Packing fp16 tensors on such a chip emits no cast; fp32 ones would need it: refused.
  const std::string odd =
      Program("tensor<fp16, [3, 5]> x",
              "        tensor<fp16, [3, 5]> y = relu(x = x)[name = string(\"y\")];", "y");
  auto lowered = Lower(odd, m1);
  ASSERT_TRUE(lowered.ok());
  EXPECT_FALSE(absl::StrContains(lowered->mil_text, "cast("));
  ExpectLoweredClean(*lowered, m1);
  const std::string odd32 =
      Program("tensor<fp32, [3, 5]> x",
              "        tensor<fp32, [3, 5]> y = relu(x = x)[name = string(\"y\")];", "y");
  EXPECT_EQ(Lower(odd32, m1).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(AneRules, GeluSupported) {
  for (const char* mode : {"EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"}) {
    const std::string text = Program(
        kIo16,
        std::string("        tensor<fp16, [1, 64, 1, 16]> y = gelu(x = x, mode = string(\"") +
            mode + "\"))[name = string(\"y\")];",
        "y");
    ExpectCompileRejects(text, "gelu_supported");
    EXPECT_TRUE(Reported(text).count("gelu_supported"));
    auto lowered = Lower(text);
    ASSERT_TRUE(lowered.ok());
    EXPECT_FALSE(absl::StrContains(lowered->mil_text, "gelu("));
    ExpectLoweredClean(*lowered);
    ExpectBackendMatchesCpu(text);
  }
}

TEST(AneRules, SoftmaxPow2Axis) {
  const std::string text =
      Program("tensor<fp16, [1, 64, 1, 48]> x",
              "        tensor<fp16, [1, 64, 1, 48]> y = softmax(x = x, axis = int32(-1))[name = "
              "string(\"y\")];",
              "y");
  ExpectCompileRejects(text, "softmax_pow2_axis");
  EXPECT_TRUE(Reported(text).count("softmax_pow2_axis"));
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  ExpectLoweredClean(*lowered);
  ExpectBackendMatchesCpu(text);
}

TEST(AneRules, MatmulRuntimeInnerMultiple) {
  const mil::AneRules m1 = mil::AneRulesForChip("Apple M1");
  EXPECT_EQ(m1.matmul_runtime_inner_multiple, 32);
  const std::string text =
      Program("tensor<fp16, [1, 1, 64, 16]> x, tensor<fp16, [1, 1, 16, 16]> w",
              "        tensor<fp16, [1, 1, 64, 16]> y = matmul(x = x, y = w, transpose_x = false, "
              "transpose_y = false)[name = string(\"y\")];",
              "y");
  EXPECT_TRUE(Reported(text, m1).count("matmul_runtime_inner_multiple"));
  EXPECT_FALSE(Reported(text).count("matmul_runtime_inner_multiple"));
  ExpectEvalRejects(EvaluateWith(text, {49152, 49152}, {49152}, m1),
                    "matmul_runtime_inner_multiple");
  EXPECT_TRUE(EvaluateWith(text, {49152, 49152}, {49152}).ok());
}

TEST(AneRules, ConvInputChannelsLimit) {
  std::vector<float> w(32000, 0.001f);
  const std::string text = Program(
      "tensor<fp16, [1, 32000, 1, 16]> x",
      "        tensor<fp16, [1, 32000, 1, 1]> w = const()[name = string(\"w\"), val = tensor<fp16, "
      "[1, 32000, 1, 1]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = "
      "uint64(64)))];\n"
      "        tensor<fp16, [1, 1, 1, 16]> y = conv(x = x, weight = w)[name = string(\"y\")];",
      "y");
  EXPECT_TRUE(Reported(text).count("conv_input_channels_limit"));
  SimRules sim;
  auto model = CreateSimDevice(sim)->Compile(
      text,
      {{"@model_path/weights/w.bin", std::make_shared<const std::string>(mil::BuildFp16Blob(w))}});
  ASSERT_FALSE(model.ok());
  EXPECT_TRUE(absl::StrContains(model.status().message(), "conv_input_channels_limit"))
      << model.status();
  EXPECT_TRUE(absl::StrContains(model.status().message(), "ANECCompile() FAILED"));
}

TEST(AneRules, BuildInfoRequired) {
  const std::string text = Program(kIo16, kRelu16, "y", /*build_info=*/false);
  ExpectCompileRejects(text, "build_info_required");
  EXPECT_TRUE(Reported(text).count("build_info_required"));
  auto lowered = Lower(text);
  ASSERT_TRUE(lowered.ok());
  EXPECT_TRUE(absl::StrContains(lowered->mil_text, "buildInfo"));
  ExpectLoweredClean(*lowered);
}

// attn_mask_ignored, weights_baked: ane_backend_test.cc (HonoursAttentionMasksTheDeviceIgnores,
// WeightsAreBakedAtCompileTime). compile_budget: ane_backend_test.cc budget tests (attempt
// counting is issue 18 item 4).

// ---- faults ----

TEST(AneSimFaults, TransientLoadFailureIsRetriedByTheBackend) {
  SimRules sim;
  sim.faults.load_fail_every = 2;
  auto device = std::shared_ptr<AneDevice>(CreateSimDevice(sim));
  AneBackend backend(device, AneBackendOptions{});
  const std::string a = Program(kIo16, kRelu16, "y");
  ASSERT_TRUE(backend.Compile(Verify(a), {}).ok());  // load 1
  // The second program's first load (call 2) fails; the backend's retry (call 3) succeeds.
  const std::string b = Program(
      kIo16, "        tensor<fp16, [1, 64, 1, 16]> y = sigmoid(x = x)[name = string(\"y\")];", "y");
  auto second = backend.Compile(Verify(b), {});
  EXPECT_TRUE(second.ok()) << second.status();
  // Without the retry the device's answer is a transient UNAVAILABLE.
  auto model = device->Compile(b, {});
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(device->Load(**model).code(), absl::StatusCode::kUnavailable);  // call 4
}

TEST(AneSimFaults, CompileFailsNearTheBudgetWithTheBareCompilerText) {
  SimRules sim;
  sim.compile_budget = 5;
  sim.faults.compile_fail_before_budget = 2;  // attempt 3 fails
  std::unique_ptr<AneDevice> device = CreateSimDevice(sim);
  const std::string text = Program(kIo16, kRelu16, "y");
  EXPECT_TRUE(device->Compile(text, {}).ok());
  EXPECT_TRUE(device->Compile(text, {}).ok());
  auto third = device->Compile(text, {});
  ASSERT_FALSE(third.ok());
  auto error = GetDeviceError(third.status());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->description, "_ANECompiler : ANECCompile() FAILED");
  EXPECT_EQ(error->domain, "com.apple.appleneuralengine.compiler");
  EXPECT_TRUE(device->Compile(text, {}).ok());
}

TEST(AneSimFaults, OneParserConfiguresFaultsRulesAndTheDeviceKey) {
  absl::StatusOr<SimRules> s = ParseSimSettings(
      "load_fail_every=3,compile_fail_before_budget=7,compile_fail_from_attempt=9,"
      "min_surface_bytes=65536,concat=banned,os_build=B2");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->faults.load_fail_every, 3);
  EXPECT_EQ(s->faults.compile_fail_before_budget, 7);
  EXPECT_EQ(s->faults.compile_fail_from_attempt, 9);
  EXPECT_EQ(s->ane.min_surface_bytes, 65536);
  EXPECT_EQ(s->ane.concat, mil::ConcatPolicy::kBanned);
  EXPECT_EQ(CreateSimDevice(*s)->Info().os_build, "B2");
  EXPECT_EQ(ParseSimSettings("")->faults.load_fail_every, 0);
  // A test switch that silently did nothing would hide a broken test: bad items are errors.
  for (const char* bad : {"bogus=1", "load_fail_every=-1", "min_surface_bytes=x", "chip="}) {
    absl::StatusOr<SimRules> r = ParseSimSettings(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StrContains(r.status().message(), bad)) << r.status();
  }
}

// ---- the capability probe (issue 18 item 7, device half) ----

TEST(AneRuleProbe, ReproducesTheTableOnTheSimulator) {
  std::unique_ptr<AneDevice> device = CreateSimDevice(SimRules{});
  const std::vector<RuleProbeResult> results = ProbeAneRules(*device, mil::DefaultAneRules());
  ASSERT_GE(results.size(), 9u);
  for (const RuleProbeResult& r : results) {
    EXPECT_TRUE(r.agrees) << r.rule << ": table " << r.expected << ", measured " << r.measured
                          << " (" << r.detail << ")";
  }
}

TEST(AneRuleProbe, MeasuresADeviceThatDiffersAndTheLoweringPrefersTheMeasurement) {
  SimRules sim;
  sim.ane.concat = mil::ConcatPolicy::kBanned;  // an Orion-like chip
  sim.ane.cast_supported = false;
  sim.ane.min_surface_bytes = 8192;  // a more permissive one
  std::unique_ptr<AneDevice> device = CreateSimDevice(sim);
  const std::vector<RuleProbeResult> results = ProbeAneRules(*device, mil::DefaultAneRules());
  std::map<std::string, std::string> measured;
  for (const RuleProbeResult& r : results) measured[r.rule] = r.measured;
  EXPECT_EQ(measured["concat"], "banned");
  EXPECT_EQ(measured["cast_supported"], "false");
  EXPECT_EQ(measured["min_surface_bytes"], "8192");
  const mil::AneRules applied = ApplyRuleProbe(mil::DefaultAneRules(), results);
  EXPECT_EQ(applied.concat, mil::ConcatPolicy::kBanned);
  EXPECT_FALSE(applied.cast_supported);
  EXPECT_EQ(applied.min_surface_bytes, 8192);
  EXPECT_TRUE(applied.alphabetical_binding);
}

TEST(AneRuleProbe, TheBackendProbesItsDeviceAndLowersWithTheMeasuredRules) {
  SimRules sim;
  sim.ane.min_surface_bytes = 65536;  // a device stricter than the table
  sim.reports_rules = false;          // and it does not say so: only the probe tells
  sim.os_build = "X1";
  auto device = std::shared_ptr<AneDevice>(CreateSimDevice(sim));
  AneBackendOptions options;
  options.compile_budget = 100;
  AneBackend backend(device, options);
  const std::string text = Program(kIo16, kRelu16, "y");
  const NamedTensor x{"x", Tensor(mil::TensorType{mil::DType::kFp16, {1, 64, 1, 16}})};
  // The table's lowering: 49,152-byte surfaces, which this device fails at evaluation.
  auto before = backend.Compile(Verify(text), {});
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_TRUE(absl::StrContains((*before)->Run({x}).status().message(), "min_surface_bytes"));

  absl::StatusOr<RuleProbeReport> report = backend.ProbeDeviceRules();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->os_build, "X1");
  EXPECT_TRUE(report->simulated);
  EXPECT_GT(backend.compiles_used(), 1);  // the probe's compiles count against the budget
  EXPECT_LE(backend.compiles_used(), 1 + kRuleProbeCompiles);
  // Only the minimum differs: the other rows ran on surfaces this device evaluates.
  for (const RuleProbeResult& r : report->rows) {
    EXPECT_EQ(r.agrees, r.rule != "min_surface_bytes") << r.rule << ": " << r.measured << " ("
                                                       << r.detail << ")";
  }
  const mil::AneRuleOverrides measured = MeasuredRuleValues(report->rows, "probed at T");
  EXPECT_EQ(measured.values.at("min_surface_bytes"), "65536");
  EXPECT_EQ(measured.values.at("concat"), "channels_only");
  EXPECT_EQ(measured.values.count("multi_input_surfaces"), 0u);
  ASSERT_TRUE(backend.UseMeasuredRules(measured).ok());
  auto after = backend.Compile(Verify(text), {});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE((*after)->Run({x}).ok());
  // The facts name each rule's origin.
  bool saw = false;
  for (const auto& [key, value] : backend.Describe().facts) {
    mil::AneRuleRow row;
    if (!mil::DecodeAneRuleFact(key, value, &row)) continue;
    if (row.id == "min_surface_bytes") {
      saw = true;
      EXPECT_EQ(row.value, "65536");
      EXPECT_EQ(row.origin, "probed at T");
    }
    if (row.id == "compile_budget") EXPECT_EQ(row.origin, "table");
  }
  EXPECT_TRUE(saw);
  // A budget too small for the probe is refused before the device is touched.
  AneBackendOptions tight;
  tight.compile_budget = 5;
  AneBackend small(std::shared_ptr<AneDevice>(CreateSimDevice()), tight);
  EXPECT_EQ(small.ProbeDeviceRules().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(small.compiles_used(), 0);
  EXPECT_EQ(backend.UseMeasuredRules({{{"min_surface_bytes", "lots"}}, "x"}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AneRulesTable, EveryRowReadsBackThroughSetAneRule) {
  // What travels as text (facts, persisted probes, worker command lines) sets the same rules.
  mil::AneRules changed = mil::AneRulesForChip("Apple M1");
  changed.min_surface_bytes = 65536;
  changed.concat = mil::ConcatPolicy::kBanned;
  changed.gelu_supported = true;
  mil::AneRules read;
  for (const mil::AneRuleRow& row : mil::DescribeAneRules(changed)) {
    ASSERT_TRUE(mil::SetAneRule(row.id, row.value, &read).ok()) << row.id << "=" << row.value;
  }
  read.profile = changed.profile;
  EXPECT_EQ(mil::DescribeAneRules(read).size(), mil::DescribeAneRules(changed).size());
  for (size_t i = 0; i < mil::DescribeAneRules(read).size(); ++i) {
    EXPECT_EQ(mil::DescribeAneRules(read)[i].value, mil::DescribeAneRules(changed)[i].value) << i;
  }
  EXPECT_EQ(mil::SetAneRule("nonsense", "1", &read).code(), absl::StatusCode::kInvalidArgument);
  mil::AneRuleOverrides o{{{"min_surface_bytes", "8192"}, {"concat", "banned"}}, "probed; at=T"};
  auto decoded = mil::DecodeAneRuleOverrides(mil::EncodeAneRuleOverrides(o));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->values, o.values);
  EXPECT_EQ(decoded->origin, "probed atT");  // the separators cannot appear in it
  auto applied = mil::ApplyAneRuleOverrides(mil::DefaultAneRules(), *decoded);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->min_surface_bytes, 8192);
  EXPECT_EQ(applied->origins.at("concat"), "probed atT");
  EXPECT_FALSE(mil::DecodeAneRuleOverrides("o;min_surface_bytes").ok());
}

TEST(AneRulesTable, OpSupportFollowsTheRulesPerShape) {
  const mil::AneRules def, m1 = mil::AneRulesForChip("Apple M1");
  const mil::TensorType x16{mil::DType::kFp16, {1, 1, 64, 16}},
      x64{mil::DType::kFp16, {1, 1, 64, 64}};
  std::string rule;
  EXPECT_TRUE(mil::AneOpSupported("matmul", {x16, x16}, def));
  EXPECT_FALSE(mil::AneOpSupported("matmul", {x16, x16}, m1, &rule));
  EXPECT_EQ(rule, "matmul_runtime_inner_multiple");
  EXPECT_TRUE(mil::AneOpSupported("matmul", {x64, x64}, m1));
  EXPECT_FALSE(mil::AneOpSupported("cast", {x16}, m1));
  EXPECT_TRUE(mil::AneOpSupported("cast", {x16}, def));
  EXPECT_FALSE(mil::AneOpSupported("conv", {{mil::DType::kFp16, {1, 32000, 1, 16}}}, def, &rule));
  EXPECT_EQ(rule, "conv_input_channels_limit");
  mil::AneRules orion;
  orion.concat = mil::ConcatPolicy::kBanned;
  EXPECT_FALSE(mil::AneOpSupported("concat", {x16, x16}, orion));
  EXPECT_TRUE(mil::AneOpSupported("concat", {x16, x16}, def));
  EXPECT_TRUE(mil::AneOpSupported("gelu", {x16}, def));  // rewritten by the lowering
}

// ---- the table itself ----

TEST(AneRulesTable, EveryRuleHasSourcesAndATest) {
  const std::set<std::string> covered = {"min_surface_bytes",
                                         "surface_width_multiple",
                                         "surface_alignment",
                                         "overallocated_surfaces_ok",
                                         "multi_input_surfaces",
                                         "multi_output_surfaces",
                                         "uniform_surface_sizes",
                                         "alphabetical_binding",
                                         "fp16_fp32_surfaces_only",
                                         "min_pack_channels",
                                         "concat",
                                         "cast_supported",
                                         "gelu_supported",
                                         "softmax_pow2_axis",
                                         "matmul_runtime_inner_multiple",
                                         "conv_input_channels_limit",
                                         "build_info_required",
                                         "attn_mask_ignored",
                                         "weights_baked",
                                         "compile_budget"};
  std::set<std::string> ids;
  for (const mil::AneRuleRow& row : mil::DescribeAneRules(mil::DefaultAneRules())) {
    EXPECT_FALSE(row.sources.empty()) << row.id;
    EXPECT_FALSE(row.value.empty()) << row.id;
    EXPECT_TRUE(covered.count(row.id)) << row.id << " has no test in ane_rules_test.cc";
    ids.insert(row.id);
    mil::AneRuleRow back;
    ASSERT_TRUE(mil::DecodeAneRuleFact(mil::kAneRuleFactPrefix + row.id,
                                       mil::EncodeAneRuleFact(row), &back));
    EXPECT_EQ(back.value, row.value);
    EXPECT_EQ(back.sources, row.sources);
  }
  EXPECT_EQ(ids, covered);
  // A switch documents both values.
  for (const mil::AneRuleRow& row : mil::DescribeAneRules(mil::DefaultAneRules())) {
    if (row.id == "concat" || row.id == "multi_input_surfaces") {
      EXPECT_FALSE(row.alternative.empty()) << row.id;
      EXPECT_FALSE(row.alternative_sources.empty()) << row.id;
    }
  }
}

TEST(AneRulesTable, MilCheckTargetAneReportsErrorsAndWarnings) {
  const std::string text = Program(kIo16, kWidthConcat, "y", /*build_info=*/false);
  const mil::AneRules rules;
  mil::CheckReport plain = mil::CheckMilText(text, {});
  EXPECT_TRUE(plain.ok);
  EXPECT_TRUE(plain.diagnostics.empty());
  mil::CheckReport ane = mil::CheckMilText(text, {}, {}, &rules);
  EXPECT_TRUE(ane.ok);  // the lowering rewrites both: warnings
  bool concat = false;
  for (const mil::Diagnostic& d : ane.diagnostics) {
    concat = concat || absl::StrContains(d.message, "ane rule concat");
    EXPECT_EQ(d.severity, mil::Diagnostic::Severity::kWarning) << d.message;
  }
  EXPECT_TRUE(concat);
  mil::AneRules orion;
  orion.concat = mil::ConcatPolicy::kBanned;
  EXPECT_FALSE(mil::CheckMilText(text, {}, {}, &orion).ok);
}

}  // namespace
}  // namespace anerd::backend::ane
