// The capability probe (ane_rule_probe.h).
#include "server/backend/ane/ane_rule_probe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/mil/blob_writer.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "server/backend/cpu/cpu_backend.h"

namespace anerd::backend::ane {
namespace {

constexpr char kHeader[] =
    "program(1.3)\n[buildInfo = dict<string, string>({{\"coremlc-version\", \"3505.4.1\"}})]\n";
constexpr int64_t kSurface = 49152;  // the surface every other row uses, at least

std::string Program(const std::string& inputs, const std::string& body, const std::string& output) {
  return absl::StrCat(kHeader, "{\n    func main<ios18>(", inputs, ") {\n", body, "\n    } -> (",
                      output, ");\n}\n");
}

std::string Op(const std::string& type, const std::string& out, const std::string& call) {
  return absl::StrCat("        tensor<fp16, ", type, "> ", out, " = ", call, "[name = string(\"",
                      out, "\")];\n");
}

Tensor Ramp(const mil::TensorType& t, double scale) {
  Tensor out(t);
  for (int64_t i = 0; i < out.num_elements(); ++i) {
    StoreElement(t.dtype, out.mutable_data(), i, std::sin(0.37 * static_cast<double>(i)) * scale);
  }
  return out;
}

struct Outcome {
  bool ok = false;
  std::string error;
  bool matches = false;  // the output equals the CPU backend's
};

// Compiles `text` on `device` and evaluates it with `inputs` bound in the given order, every
// surface `surface_bytes` large; compares the (single) output with the CPU backend's.
Outcome Run(AneDevice& device, const std::string& text, const std::vector<NamedTensor>& inputs,
            int64_t surface_bytes, const std::vector<DeviceWeightFile>& weights = {},
            std::vector<NamedTensor> reference_inputs = {}) {
  Outcome o;
  auto fail = [&](const absl::Status& s) {
    o.error = std::string(s.message());
    return o;
  };
  auto parsed = mil::ParseProgram(text);
  if (!parsed.ok()) return fail(parsed.status());
  mil::WeightFiles files;
  for (const DeviceWeightFile& w : weights) (void)files.Add(w.path, *w.bytes);
  auto verified = mil::VerifyProgram(*std::move(parsed), std::move(files));
  if (!verified.ok()) return fail(verified.status());
  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  CompileOptions ane_numerics;
  ane_numerics.numerics = NumericsMode::kAne;
  auto reference = cpu.Compile(*verified, ane_numerics);
  if (!reference.ok()) return fail(reference.status());
  auto want = (*reference)->Run(reference_inputs.empty() ? inputs : reference_inputs);
  if (!want.ok()) return fail(want.status());
  auto model = device.Compile(text, weights);
  if (!model.ok()) return fail(model.status());
  if (absl::Status s = device.Load(**model); !s.ok()) {
    if (absl::Status again = device.Load(**model); !again.ok()) return fail(again);
  }
  std::vector<std::unique_ptr<DeviceSurface>> owned;
  std::vector<DeviceSurface*> ins, outs;
  for (const NamedTensor& t : inputs) {
    auto s = device.AllocateSurface(static_cast<size_t>(surface_bytes));
    if (!s.ok()) return fail(s.status());
    if (absl::Status w = (*s)->Write(0, t.tensor.bytes()); !w.ok()) return fail(w);
    ins.push_back(s->get());
    owned.push_back(*std::move(s));
  }
  auto out = device.AllocateSurface(static_cast<size_t>(surface_bytes));
  if (!out.ok()) return fail(out.status());
  outs.push_back(out->get());
  owned.push_back(*std::move(out));
  if (absl::Status s = device.Evaluate(**model, ins, outs); !s.ok()) return fail(s);
  o.ok = true;
  const Tensor& w = want->outputs[0].tensor;
  std::string got(w.bytes().size(), '\0');
  if (!outs[0]->Read(0, got.size(), got.data()).ok()) return o;
  auto g = Tensor::FromBytes(w.type(), got);
  if (!g.ok()) return o;
  const auto a = g->ToDoubles(), b = w.ToDoubles();
  o.matches = true;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - b[i]) <= 2e-3 + 1e-2 * std::fabs(b[i]))) o.matches = false;
  }
  if (!o.matches) o.error = "output differs from the CPU backend";
  return o;
}

RuleProbeResult Result(std::string rule, std::string expected, std::string measured,
                       std::string detail) {
  const bool agrees = expected == measured;
  return {std::move(rule), std::move(expected), std::move(measured), agrees, std::move(detail)};
}

std::string Bool(bool b) { return b ? "true" : "false"; }

const mil::TensorType kX{mil::DType::kFp16, {1, 64, 1, 16}};
const char* kXDecl = "tensor<fp16, [1, 64, 1, 16]> x";

RuleProbeResult MinSurface(AneDevice& d, const mil::AneRules& t) {
  const std::string text = Program(kXDecl, Op("[1, 64, 1, 16]", "y", "relu(x = x)"), "y");
  std::string last;
  for (int64_t bytes : {2048, 4096, 8192, 16384, 32768, 49152, 65536}) {
    Outcome o = Run(d, text, {{"x", Ramp(kX, 2)}}, bytes);
    if (o.ok && o.matches) {
      return Result("min_surface_bytes", absl::StrCat(t.min_surface_bytes), absl::StrCat(bytes),
                    last);
    }
    last = o.error;
  }
  return Result("min_surface_bytes", absl::StrCat(t.min_surface_bytes), "none up to 65536", last);
}

RuleProbeResult WidthMultiple(AneDevice& d, const mil::AneRules& t, int64_t surface) {
  const mil::TensorType x24{mil::DType::kFp16, {1, 64, 1, 24}};
  const std::string text =
      Program("tensor<fp16, [1, 64, 1, 24]> x", Op("[1, 64, 1, 24]", "y", "relu(x = x)"), "y");
  Outcome o = Run(d, text, {{"x", Ramp(x24, 2)}}, surface);
  // A width of 24 failing (or corrupting) is consistent with a multiple of 16.
  const bool width24_works = o.ok && o.matches;
  return Result("surface_width_multiple", absl::StrCat(t.surface_width_multiple),
                width24_works ? "8 or less" : "16", o.error);
}

RuleProbeResult Concat(AneDevice& d, const mil::AneRules& t, int64_t surface) {
  auto axis = [&](int a, const std::string& type) {
    return Run(d,
               Program(kXDecl,
                       Op(type, "y",
                          absl::StrCat("concat(values = (x, x), axis = int32(", a,
                                       "), interleave = false)")),
                       "y"),
               {{"x", Ramp(kX, 2)}}, surface);
  };
  const Outcome channels = axis(1, "[1, 128, 1, 16]"), width = axis(3, "[1, 64, 1, 32]");
  const bool c = channels.ok && channels.matches, w = width.ok && width.matches;
  const std::string measured = c && w ? "all_axes" : c ? "channels_only" : "banned";
  const std::string expected = t.concat == mil::ConcatPolicy::kBanned ? "banned" : "channels_only";
  return Result(
      "concat", expected, measured,
      absl::StrCat("axis 1: ", c ? "ok" : channels.error, "; axis 3: ", w ? "ok" : width.error));
}

RuleProbeResult Reshape(AneDevice& d, int64_t surface) {
  const std::string body =
      "        tensor<int32, [4]> s1 = const()[name = string(\"s1\"), val = tensor<int32, [4]>([1, "
      "1024, 1, 1])];\n" +
      Op("[1, 1024, 1, 1]", "a", "reshape(x = x, shape = s1)") +
      Op("[1, 1024, 1, 1]", "b", "relu(x = a)") +
      "        tensor<int32, [4]> s2 = const()[name = string(\"s2\"), val = tensor<int32, [4]>([1, "
      "64, 1, 16])];\n" +
      Op("[1, 64, 1, 16]", "y", "reshape(x = b, shape = s2)");
  Outcome o = Run(d, Program(kXDecl, body, "y"), {{"x", Ramp(kX, 2)}}, surface);
  return Result("width_channel_reshape", "true", Bool(o.ok && o.matches), o.error);
}

RuleProbeResult Binding(AneDevice& d, const mil::AneRules& t, int64_t surface) {
  // Declared (x, a); surfaces given in declaration order. y = x - a is right only when the device
  // binds in declaration order; alphabetical binding computes a - x.
  const std::string text = Program("tensor<fp16, [1, 64, 1, 16]> x, tensor<fp16, [1, 64, 1, 16]> a",
                                   Op("[1, 64, 1, 16]", "y", "sub(x = x, y = a)"), "y");
  const Tensor x = Ramp(kX, 2), a = Ramp(kX, -1);
  Outcome declared = Run(d, text, {{"x", x}, {"a", a}}, surface);
  Outcome swapped = Run(d, text, {{"a", a}, {"x", x}}, surface, {}, {{"x", x}, {"a", a}});
  std::string measured = "multi-input fails";
  if (declared.ok && declared.matches) measured = "false";
  if (swapped.ok && swapped.matches) measured = "true";
  return Result("alphabetical_binding", Bool(t.alphabetical_binding), measured,
                declared.ok ? "" : declared.error);
}

RuleProbeResult Accepts(AneDevice& d, const std::string& rule, bool expected,
                        const std::string& text, const NamedTensor& input, int64_t surface) {
  Outcome o = Run(d, text, {input}, surface);
  return Result(rule, Bool(expected), Bool(o.ok && o.matches), o.error);
}

RuleProbeResult WeightsBaked(AneDevice& d, const mil::AneRules& t, int64_t surface) {
  auto bytes = std::make_shared<std::string>(mil::BuildFp16Blob(std::vector<float>(64 * 16, 2)));
  const std::string text = Program(
      kXDecl,
      "        tensor<fp16, [1, 64, 1, 16]> w = const()[name = string(\"w\"), val = tensor<fp16, "
      "[1, 64, 1, 16]>(BLOBFILE(path = string(\"@model_path/weights/w.bin\"), offset = "
      "uint64(64)))];\n" +
          Op("[1, 64, 1, 16]", "y", "mul(x = x, y = w)"),
      "y");
  auto model = d.Compile(text, {{"@model_path/weights/w.bin", bytes}});
  if (!model.ok())
    return Result("weights_baked", Bool(t.weights_baked), "?",
                  std::string(model.status().message()));
  auto in = d.AllocateSurface(surface), out = d.AllocateSurface(surface);
  if (!in.ok() || !out.ok() || !d.Load(**model).ok()) {
    return Result("weights_baked", Bool(t.weights_baked), "?", "load or allocation failed");
  }
  (void)(*in)->Write(0, Ramp(kX, 1).bytes());
  std::string first(kX.NumBytes(), '\0'), second(kX.NumBytes(), '\0');
  absl::Status a = d.Evaluate(**model, {in->get()}, {out->get()});
  (void)(*out)->Read(0, first.size(), first.data());
  *bytes = mil::BuildFp16Blob(std::vector<float>(64 * 16, 5));
  (void)d.Unload(**model);
  (void)d.Load(**model);
  absl::Status b = d.Evaluate(**model, {in->get()}, {out->get()});
  (void)(*out)->Read(0, second.size(), second.data());
  if (!a.ok() || !b.ok()) {
    return Result("weights_baked", Bool(t.weights_baked), "?",
                  std::string((a.ok() ? b : a).message()));
  }
  return Result("weights_baked", Bool(t.weights_baked), Bool(first == second), "");
}

}  // namespace

std::vector<RuleProbeResult> ProbeAneRules(AneDevice& device, const mil::AneRules& table) {
  std::vector<RuleProbeResult> out;
  out.push_back(MinSurface(device, table));
  // The other rows run on surfaces this device evaluates: a device whose minimum is larger than
  // the table's must not show every other rule as broken.
  int64_t surface = kSurface;
  if (int64_t measured = 0; absl::SimpleAtoi(out.back().measured, &measured)) {
    surface = std::max(surface, measured);
  }
  out.push_back(WidthMultiple(device, table, surface));
  out.push_back(Concat(device, table, surface));
  out.push_back(Reshape(device, surface));
  out.push_back(Binding(device, table, surface));
  const NamedTensor x{"x", Ramp(kX, 2)};
  out.push_back(Accepts(device, "gelu_supported", table.gelu_supported,
                        Program(kXDecl, Op("[1, 64, 1, 16]", "y", "gelu(x = x)"), "y"), x,
                        surface));
  const mil::TensorType x48{mil::DType::kFp16, {1, 64, 1, 48}};
  out.push_back(Accepts(device, "softmax_pow2_axis", table.softmax_pow2_axis,
                        Program("tensor<fp16, [1, 64, 1, 48]> x",
                                Op("[1, 64, 1, 48]", "y", "softmax(x = x, axis = int32(-1))"), "y"),
                        {"x", Ramp(x48, 2)}, surface));
  out.back().measured = out.back().measured == "true" ? "false" : "true";  // accepted = no rule
  out.back().agrees = out.back().measured == out.back().expected;
  const mil::TensorType x32{mil::DType::kFp32, {1, 64, 1, 16}};
  out.push_back(
      Accepts(device, "cast_supported", table.cast_supported,
              Program("tensor<fp32, [1, 64, 1, 16]> x",
                      Op("[1, 64, 1, 16]", "y", "cast(x = x, dtype = string(\"fp16\"))"), "y"),
              {"x", Ramp(x32, 2)}, surface));
  out.push_back(WeightsBaked(device, table, surface));
  return out;
}

mil::AneRuleOverrides MeasuredRuleValues(const std::vector<RuleProbeResult>& results,
                                         const std::string& origin) {
  mil::AneRuleOverrides o;
  o.origin = origin;
  auto boolean = [](const std::string& v) { return v == "true" || v == "false"; };
  for (const RuleProbeResult& p : results) {
    int64_t n = 0;
    if (p.rule == "min_surface_bytes" && absl::SimpleAtoi(p.measured, &n)) {
      o.values[p.rule] = absl::StrCat(n);
    } else if (p.rule == "concat" && !p.measured.empty()) {
      // Non-channel concat is rewritten regardless; only a ban changes what the lowering emits.
      o.values[p.rule] = p.measured == "banned" ? "banned" : "channels_only";
    } else if (p.rule == "alphabetical_binding" && p.measured == "multi-input fails") {
      o.values["multi_input_surfaces"] = "false";
    } else if ((p.rule == "alphabetical_binding" || p.rule == "gelu_supported" ||
                p.rule == "softmax_pow2_axis" || p.rule == "cast_supported" ||
                p.rule == "weights_baked") &&
               boolean(p.measured)) {
      o.values[p.rule] = p.measured;
    }
  }
  return o;
}

mil::AneRules ApplyRuleProbe(const mil::AneRules& table,
                             const std::vector<RuleProbeResult>& results) {
  absl::StatusOr<mil::AneRules> r =
      mil::ApplyAneRuleOverrides(table, MeasuredRuleValues(results, "probe"));
  return r.ok() ? *std::move(r) : table;  // every value above is one SetAneRule takes
}

}  // namespace anerd::backend::ane
