// Conformance: every op, several shapes (broadcasting, edge sizes), both numerics modes, on every
// backend the registry creates (cpu, ane-sim, and ane on a Mac), against the independent reference
// evaluator. Also checks that
// planned execution equals reference_mode execution (bit-identical unless a GEMM is involved), and
// runs the MIL corpus and the dynamic training kernels (docs/ANE_NOTES.md §4.3) the same way.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/training/kernels.h"
#include "tests/backend/reference_evaluator.h"

namespace anerd::backend {
namespace {

using testing::RefTensor;

struct Case {
  std::string name;
  std::string inputs;     // "tensor<fp16, [2, 3]> a, ..."
  std::string body;       // statements
  std::string outputs;    // "y" or "y, z"
  bool gemm = false;      // planned vs reference_mode may differ by accumulation order
  bool positive = false;  // inputs drawn from (0.25, 4) instead of (-2, 2)
  double tol = 1;         // tolerance multiplier
};

std::string ProgramText(const Case& c) {
  return absl::StrCat("program(1.3)\n{\n    func main<ios18>(", c.inputs, ") {\n", c.body,
                      "\n    } -> (", c.outputs, ");\n}\n");
}

// Deterministic inputs for every function input.
std::vector<NamedTensor> MakeInputs(const mil::Function& f, bool positive, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<NamedTensor> out;
  for (const mil::NamedType& in : f.inputs) {
    Tensor t(in.type);
    const int64_t n = t.num_elements();
    std::uniform_real_distribution<double> u(positive ? 0.25 : -2.0, positive ? 4.0 : 2.0);
    for (int64_t i = 0; i < n; ++i) {
      double v = u(rng);
      if (in.type.dtype == mil::DType::kBool) v = rng() % 2;
      if (mil::IsInteger(in.type.dtype)) v = static_cast<double>(rng() % 3);  // valid indices
      StoreElement(in.type.dtype, t.mutable_data(), i, v);
    }
    out.push_back(NamedTensor{in.name, std::move(t)});
  }
  return out;
}

std::map<std::string, RefTensor> ToRef(const std::vector<NamedTensor>& in) {
  std::map<std::string, RefTensor> out;
  for (const NamedTensor& t : in) {
    out[t.name] = RefTensor{t.tensor.dtype(), t.tensor.shape(), t.tensor.ToDoubles()};
  }
  return out;
}

bool Close(double got, double want, double rtol, double atol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

// Compares every output element; reports the first few mismatches.
void ExpectClose(const std::string& what, const std::vector<double>& got,
                 const std::vector<double>& want, double rtol, double atol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    if (!Close(got[i], want[i], rtol, atol)) {
      ADD_FAILURE() << what << " element " << i << ": got " << got[i] << " want " << want[i];
      ++bad;
    }
  }
}

absl::StatusOr<RunResult> CompileAndRun(Backend& b, const mil::VerifiedProgram& p,
                                        const CompileOptions& o,
                                        const std::vector<NamedTensor>& in) {
  absl::StatusOr<std::unique_ptr<CompiledProgram>> c = b.Compile(p, o);
  if (!c.ok()) return c.status();
  return (*c)->Run(in);
}

// Runs `program` on every backend in both numerics modes, planned and in reference mode.
void CheckProgram(const std::string& name, const mil::VerifiedProgram& program, bool gemm,
                  bool positive, double tol, const std::vector<NamedTensor>* given = nullptr) {
  const std::vector<NamedTensor> inputs =
      given != nullptr ? *given : MakeInputs(program.main(), positive, 1234);
  for (const auto& backend : CreateBackends(RegistryOptions{})) {
    for (NumericsMode mode : {NumericsMode::kAne, NumericsMode::kFp32}) {
      const std::string what =
          absl::StrCat(name, " on ", backend->Describe().name, " (", NumericsModeName(mode), ")");
      // A backend that computes in fp16 (the ANE, ane-sim) does so whatever mode is asked for.
      const bool fp16_device = backend->Describe().capabilities.fp16_compute;
      testing::RefOptions ro;
      ro.ane_numerics = mode == NumericsMode::kAne || fp16_device;
      auto ref = testing::EvaluateReference(program, ToRef(inputs), ro);
      ASSERT_TRUE(ref.ok()) << what << ": " << ref.status();
      CompileOptions opts;
      opts.numerics = mode;
      auto planned = CompileAndRun(*backend, program, opts, inputs);
      ASSERT_TRUE(planned.ok()) << what << ": " << planned.status();
      opts.reference_mode = true;
      auto unplanned = CompileAndRun(*backend, program, opts, inputs);
      ASSERT_TRUE(unplanned.ok()) << what << ": " << unplanned.status();
      for (size_t i = 0; i < planned->outputs.size(); ++i) {
        const NamedTensor& got = planned->outputs[i];
        // fp16 outputs are quantised to fp16 in every mode, so a last-place flip is allowed.
        const bool coarse = ro.ane_numerics || got.tensor.dtype() == mil::DType::kFp16;
        const double rtol = (coarse ? 2e-3 : 2e-5) * tol, atol = (coarse ? 1e-3 : 1e-5) * tol;
        const RefTensor& want = ref->at(got.name);
        EXPECT_EQ(got.tensor.shape(), want.shape) << what;
        ExpectClose(what + " output " + got.name, got.tensor.ToDoubles(), want.values, rtol, atol);
        const Tensor& un = unplanned->outputs[i].tensor;
        if (gemm) {
          ExpectClose(what + " planned vs reference_mode " + got.name, got.tensor.ToDoubles(),
                      un.ToDoubles(), rtol, atol);
        } else {
          EXPECT_EQ(got.tensor.bytes(), un.bytes())
              << what << ": planned and reference_mode differ for " << got.name;
        }
      }
    }
  }
}

void CheckCase(const Case& c) {
  SCOPED_TRACE(c.name);
  absl::StatusOr<mil::Program> parsed = mil::ParseProgram(ProgramText(c));
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << ProgramText(c);
  absl::StatusOr<mil::VerifiedProgram> program = mil::VerifyProgram(*std::move(parsed));
  ASSERT_TRUE(program.ok()) << program.status() << "\n" << ProgramText(c);
  CheckProgram(c.name, *program, c.gemm, c.positive, c.tol);
}

#define T16(shape) "tensor<fp16, " shape ">"
#define T32(shape) "tensor<fp32, " shape ">"

// The MIL programs below are built from adjacent literals and T16/T32 macros, which clang-format
// cuts into unreadable fragments; they are laid out by hand, one MIL op per line.
// clang-format off
TEST(Conformance, BinaryOpsWithBroadcasting) {
  for (const char* op : {"add", "sub", "mul", "real_div", "maximum", "minimum"}) {
    const std::string o(op);
    CheckCase({o + " same shape", T16("[2, 3, 5]") " a, " T16("[2, 3, 5]") " b",
               T16("[2, 3, 5]") " y = " + o + "(x = a, y = b);", "y"});
    CheckCase({o + " broadcast", T16("[1, 4, 1, 6]") " a, " T16("[1, 1, 1, 6]") " b",
               T16("[1, 4, 1, 6]") " y = " + o + "(x = a, y = b);", "y"});
    CheckCase({o + " two-sided broadcast fp32", T32("[3, 1]") " a, " T32("[1, 7]") " b",
               T32("[3, 7]") " y = " + o + "(x = a, y = b);", "y"});
    CheckCase({o + " scalar literal", T16("[1, 8, 1, 1]") " a",
               T16("[1, 8, 1, 1]") " y = " + o + "(x = fp16(0.5), y = a);", "y"});
  }
  CheckCase({"pow", T16("[4, 9]") " a", T16("[4, 9]") " y = pow(x = a, y = fp16(-0.5));", "y",
             false, true});
  CheckCase({"edge sizes: 1 element", T16("[1]") " a, " T16("[1]") " b",
             T16("[1]") " y = add(x = a, y = b);", "y"});
  CheckCase({"edge sizes: long row", T32("[1, 3000]") " a, " T32("[1]") " b",
             T32("[1, 3000]") " y = mul(x = a, y = b);", "y"});
}

TEST(Conformance, UnaryOps) {
  for (const char* op : {"exp", "tanh", "sigmoid", "relu", "silu", "gelu"}) {
    const std::string o(op);
    CheckCase({o, T16("[2, 3, 17]") " a", T16("[2, 3, 17]") " y = " + o + "(x = a);", "y"});
    CheckCase({o + " fp32", T32("[5]") " a", T32("[5]") " y = " + o + "(x = a);", "y"});
  }
  for (const char* op : {"sqrt", "rsqrt", "log"}) {
    const std::string o(op);
    CheckCase({o, T16("[3, 11]") " a", T16("[3, 11]") " y = " + o + "(x = a);", "y", false, true});
  }
  CheckCase({"rsqrt eps", T32("[6]") " a", T32("[6]") " y = rsqrt(x = a, epsilon = fp32(0.5));",
             "y", false, true});
  CheckCase({"gelu tanh", T16("[40]") " a",
             T16("[40]") " y = gelu(x = a, mode = string(\"TANH_APPROXIMATION\"));", "y"});
  CheckCase({"gelu sigmoid", T16("[40]") " a",
             T16("[40]") " y = gelu(x = a, mode = string(\"SIGMOID_APPROXIMATION\"));", "y"});
  CheckCase({"clip", T16("[2, 20]") " a",
             T16("[2, 20]") " y = clip(x = a, alpha = fp16(-0.5), beta = fp16(1.25));", "y"});
  CheckCase({"select broadcast", "tensor<bool, [2, 1]> c, " T16("[2, 6]") " a, " T16("[6]") " b",
             T16("[2, 6]") " y = select(cond = c, a = a, b = b);", "y"});
}

TEST(Conformance, Cast) {
  CheckCase({"cast fp32->fp16->fp32", T32("[3, 5]") " a",
             T16("[3, 5]") " h = cast(x = a, dtype = string(\"fp16\"));\n"
             T32("[3, 5]") " y = cast(x = h, dtype = string(\"fp32\"));",
             "h, y"});
  CheckCase({"cast to int32 and back", T32("[7]") " a",
             "tensor<int32, [7]> i = cast(x = a, dtype = string(\"int32\"));\n"
             T32("[7]") " y = cast(x = i, dtype = string(\"fp32\"));",
             "i, y"});
}

TEST(Conformance, FusedChainRmsNorm) {
  // The seed's RMSNorm idiom (docs/ANE_NOTES.md §3.5): a long elementwise chain plus a reduction.
  CheckCase({"rmsnorm", T16("[1, 16, 1, 8]") " x, " T16("[1, 16, 1, 1]") " w",
             T16("[1, 16, 1, 8]") " sq = mul(x = x, y = x);\n"
             T16("[1, 1, 1, 8]") " ss = reduce_sum(x = sq, axes = tensor<int32, [1]>([1]), "
                                 "keep_dims = bool(true));\n"
             T16("[1, 1, 1, 8]") " ss2 = mul(x = ss, y = fp16(0.0625));\n"
             T16("[1, 1, 1, 8]") " ss3 = add(x = ss2, y = fp16(0.00001));\n"
             T16("[1, 1, 1, 8]") " rr = pow(x = ss3, y = fp16(-0.5));\n"
             T16("[1, 16, 1, 8]") " xr = mul(x = x, y = rr);\n"
             T16("[1, 16, 1, 8]") " y = mul(x = xr, y = w);",
             "y", false, false, 2});
  CheckCase({"silu gate chain", T16("[1, 8, 1, 12]") " h1, " T16("[1, 8, 1, 12]") " h3",
             T16("[1, 8, 1, 12]") " sig = sigmoid(x = h1);\n"
             T16("[1, 8, 1, 12]") " oms = sub(x = fp16(1), y = sig);\n"
             T16("[1, 8, 1, 12]") " homs = mul(x = h1, y = oms);\n"
             T16("[1, 8, 1, 12]") " brk = add(x = fp16(1), y = homs);\n"
             T16("[1, 8, 1, 12]") " dsd = mul(x = sig, y = brk);\n"
             T16("[1, 8, 1, 12]") " y = mul(x = dsd, y = h3);",
             "y"});
}

TEST(Conformance, Matmul) {
  CheckCase({"matmul 2d", T16("[5, 7]") " a, " T16("[7, 3]") " b",
             T16("[5, 3]") " y = matmul(x = a, y = b);", "y", true});
  CheckCase({"matmul transposes", T16("[2, 7, 5]") " a, " T16("[2, 3, 7]") " b",
             T16("[2, 5, 3]") " y = matmul(x = a, y = b, transpose_x = bool(true), "
                              "transpose_y = bool(true));",
             "y", true});
  CheckCase({"matmul batch broadcast", T16("[1, 4, 6, 8]") " a, " T16("[1, 1, 8, 5]") " b",
             T16("[1, 4, 6, 5]") " y = matmul(x = a, y = b);", "y", true});
  CheckCase({"matmul rank-3 x rank-2 fp32", T32("[3, 4, 6]") " a, " T32("[6, 2]") " b",
             T32("[3, 4, 2]") " y = matmul(x = a, y = b);", "y", true});
  CheckCase({"matmul vector", T32("[6]") " a, " T32("[6, 2]") " b",
             T32("[2]") " y = matmul(x = a, y = b);", "y", true});
  CheckCase({"matmul then transpose (folded output)",
             T16("[1, 1, 6, 4]") " a, " T16("[1, 1, 4, 9]") " b",
             T16("[1, 1, 6, 9]") " m = matmul(x = a, y = b);\n"
             T16("[1, 1, 9, 6]") " y = transpose(x = m, perm = tensor<int32, [4]>([0, 1, 3, 2]));",
             "y", true});
  CheckCase({"linear with bias", T16("[3, 10]") " a, " T16("[4, 10]") " w, " T16("[4]") " b",
             T16("[3, 4]") " y = linear(x = a, weight = w, bias = b);", "y", true});
  CheckCase({"linear no bias rank 1", T32("[10]") " a, " T32("[4, 10]") " w",
             T32("[4]") " y = linear(x = a, weight = w);", "y", true});
}

TEST(Conformance, DynamicMatmulPattern) {
  // docs/ANE_NOTES.md §3.5 gen_dyn_matmul: IC=8, OC=6, S=5; input [1, IC, 1, S+OC].
  CheckCase({"dyn matmul", T16("[1, 8, 1, 11]") " x",
             T16("[1, 8, 1, 5]") " act = slice_by_size(x = x, begin = tensor<int32, [4]>([0, 0, "
                                 "0, 0]), size = tensor<int32, [4]>([1, 8, 1, 5]));\n"
             T16("[1, 8, 1, 6]") " wt = slice_by_size(x = x, begin = tensor<int32, [4]>([0, 0, 0, "
                                 "5]), size = tensor<int32, [4]>([1, 8, 1, 6]));\n"
             T16("[1, 1, 8, 5]") " a2 = reshape(x = act, shape = tensor<int32, [4]>([1, 1, 8, "
                                 "5]));\n"
             T16("[1, 1, 5, 8]") " a3 = transpose(x = a2, perm = tensor<int32, [4]>([0, 1, 3, "
                                 "2]));\n"
             T16("[1, 1, 8, 6]") " W = reshape(x = wt, shape = tensor<int32, [4]>([1, 1, 8, 6]));\n"
             T16("[1, 1, 5, 6]") " yh = matmul(x = a3, y = W, transpose_x = bool(false), "
                                 "transpose_y = bool(false));\n"
             T16("[1, 1, 6, 5]") " yt = transpose(x = yh, perm = tensor<int32, [4]>([0, 1, 3, "
                                 "2]));\n"
             T16("[1, 6, 1, 5]") " y = reshape(x = yt, shape = tensor<int32, [4]>([1, 6, 1, 5]));",
             "y", true});
}

TEST(Conformance, Conv) {
  CheckCase({"conv 1x1", T16("[1, 16, 1, 10]") " x, " T16("[8, 16, 1, 1]") " w",
             T16("[1, 8, 1, 10]") " y = conv(x = x, weight = w);", "y", true});
  CheckCase({"conv 1x1 grouped", T16("[1, 12, 1, 6]") " x, " T16("[6, 4, 1, 1]") " w",
             T16("[1, 6, 1, 6]") " y = conv(x = x, weight = w, groups = int32(3));", "y", true});
  CheckCase({"conv 3x3 stride 2 pad custom bias",
             T32("[2, 3, 9, 8]") " x, " T32("[4, 3, 3, 3]") " w, " T32("[4]") " b",
             T32("[2, 4, 5, 4]") " y = conv(x = x, weight = w, bias = b, strides = tensor<int32, "
                                 "[2]>([2, 2]), pad_type = string(\"custom\"), "
                                 "pad = tensor<int32, [4]>([1, 1, 1, 0]));",
             "y", true});
  CheckCase(
      {"conv same dilated grouped", T16("[1, 4, 7, 7]") " x, " T16("[4, 2, 3, 3]") " w",
       T16("[1, 4, 7, 7]") " y = conv(x = x, weight = w, groups = int32(2), "
                           "dilations = tensor<int32, [2]>([2, 1]), pad_type = string(\"same\"));",
       "y", true, false, 2});
  CheckCase({"conv 1d", T32("[1, 3, 10]") " x, " T32("[2, 3, 3]") " w",
             T32("[1, 2, 8]") " y = conv(x = x, weight = w);", "y", true});
  CheckCase(
      {"conv on a transposed view", T16("[1, 1, 10, 16]") " x, " T16("[8, 16, 1, 1]") " w",
       T16("[1, 1, 16, 10]") " xt = transpose(x = x, perm = tensor<int32, [4]>([0, 1, 3, 2]));\n"
       T16("[1, 16, 1, 10]") " xr = reshape(x = xt, shape = tensor<int32, [4]>([1, 16, 1, 10]));\n"
       T16("[1, 8, 1, 10]") " y = conv(x = xr, weight = w);",
       "y", true});
}

TEST(Conformance, DataMovement) {
  CheckCase(
      {"reshape/transpose chain", T16("[2, 3, 4]") " x",
       T16("[3, 2, 4]") " t = transpose(x = x, perm = tensor<int32, [3]>([1, 0, 2]));\n"
       T16("[6, 4]") " r = reshape(x = t, shape = tensor<int32, [2]>([6, 4]));\n"
       T16("[6, 4]") " y = add(x = r, y = fp16(1));",
       "y, t"});
  CheckCase(
      {"slice_by_size", T16("[1, 8, 1, 10]") " x",
       T16("[1, 3, 1, 5]") " y = slice_by_size(x = x, begin = tensor<int32, [4]>([0, 2, 0, 5]), "
                           "size = tensor<int32, [4]>([1, 3, 1, -1]));",
       "y"});
  CheckCase(
      {"slice_by_index strided squeeze", T32("[4, 9]") " x",
       T32("[4]") " y = slice_by_index(x = x, begin = tensor<int32, [2]>([0, 7]), "
                  "end = tensor<int32, [2]>([4, 8]), squeeze_mask = tensor<bool, [2]>([false, "
                  "true]));\n"
       T32("[2, 3]") " z = slice_by_index(x = x, begin = tensor<int32, [2]>([3, 1]), "
                     "end = tensor<int32, [2]>([0, 9]), stride = tensor<int32, [2]>([-2, 3]), "
                     "begin_mask = tensor<bool, [2]>([false, false]), end_mask = tensor<bool, "
                     "[2]>([true, false]));",
       "y, z"});
  CheckCase(
      {"concat channels + literal", T16("[1, 2, 1, 3]") " a, " T16("[1, 4, 1, 3]") " b",
       T16("[1, 6, 1, 3]") " y = concat(values = (a, b), axis = int32(1), "
                           "interleave = bool(false));\n"
       T16("[1, 2, 1, 6]") " z = concat(values = (a, a), axis = int32(-1));\n"
       T16("[1, 2, 1, 6]") " w = concat(values = (a, a), axis = int32(3), "
                           "interleave = bool(true));",
       "y, z, w"});
  CheckCase({"split", T16("[2, 10]") " x",
             T16("[2, 3]") " p, " T16("[2, 7]") " q = split(x = x, split_sizes = tensor<int32, "
                                                "[2]>([3, 7]), axis = int32(1));\n"
             T16("[2, 7]") " y = mul(x = q, y = fp16(2));",
             "p, y"});
  CheckCase({"split num_splits", T32("[6, 2]") " x",
             T32("[2, 2]") " a, " T32("[2, 2]") " b, " T32("[2, 2]") " c = split(x = x, "
                                                                     "num_splits = int32(3), "
                                                                     "axis = int32(0));",
             "a, b, c"});
  CheckCase({"gather", T16("[5, 4]") " x, tensor<int32, [2, 3]> i",
             T16("[5, 2, 3]") " y = gather(x = x, indices = i, axis = int32(1));\n"
             T16("[2, 3, 4]") " z = gather(x = x, indices = i);",
             "y, z"});
}

TEST(Conformance, Reductions) {
  for (const char* op : {"reduce_sum", "reduce_mean", "reduce_max"}) {
    const std::string o(op);
    CheckCase({o + " channels keep", T16("[1, 16, 1, 8]") " x",
               T16("[1, 1, 1, 8]") " y = " + o +
                   "(x = x, axes = tensor<int32, [1]>([1]), keep_dims = bool(true));",
               "y"});
    CheckCase({o + " last + first", T32("[3, 4, 5]") " x",
               T32("[4]") " y = " + o + "(x = x, axes = tensor<int32, [2]>([0, -1]));", "y"});
    CheckCase({o + " all", T32("[3, 4]") " x", "fp32 y = " + o + "(x = x);", "y"});
  }
  CheckCase({"softmax last", T16("[1, 2, 5, 7]") " x",
             T16("[1, 2, 5, 7]") " y = softmax(x = x, axis = int32(-1));", "y"});
  CheckCase({"softmax channels", T16("[1, 30, 1, 4]") " x",
             T16("[1, 30, 1, 4]") " y = softmax(x = x, axis = int32(1));", "y"});
  CheckCase({"layer_norm", T16("[2, 3, 8]") " x, " T16("[8]") " g, " T16("[8]") " b",
             T16("[2, 3, 8]") " y = layer_norm(x = x, axes = tensor<int32, [1]>([-1]), gamma = g, "
                              "beta = b, epsilon = fp16(0.00001));",
             "y", false, false, 2});
  CheckCase({"layer_norm two axes fp32", T32("[2, 3, 4]") " x",
             T32("[2, 3, 4]") " y = layer_norm(x = x, axes = tensor<int32, [2]>([1, 2]));", "y"});
}

TEST(Conformance, Attention) {
  const std::string sig =
      T16("[1, 2, 6, 8]") " q, " T16("[1, 2, 5, 8]") " k, " T16("[1, 2, 5, 4]") " v";
  CheckCase(
      {"sdpa no mask", sig,
       T16("[1, 2, 6, 4]") " y = scaled_dot_product_attention(query = q, key = k, value = v);", "y",
       true});
  CheckCase({"sdpa float mask", sig + ", " T16("[1, 1, 6, 5]") " m",
             T16("[1, 2, 6, 4]") " y = scaled_dot_product_attention(query = q, key = k, "
                                 "value = v, attn_mask = m);",
             "y", true});
  CheckCase({"sdpa bool mask", sig + ", tensor<bool, [6, 5]> m",
             T16("[1, 2, 6, 4]") " y = scaled_dot_product_attention(query = q, key = k, "
                                 "value = v, attn_mask = m);",
             "y", true});
  CheckCase(
      {"causal attention idiom",
       T16("[1, 2, 4, 8]") " q, " T16("[1, 2, 4, 8]") " k, " T16("[1, 2, 4, 8]") " v",
       "tensor<fp16, [1, 1, 4, 4]> mask = const()[val = tensor<fp16, [1, 1, 4, 4]>([0, -65504, "
       "-65504, -65504, 0, 0, -65504, -65504, 0, 0, 0, -65504, 0, 0, 0, 0])];\n"
       T16("[1, 2, 4, 4]") " s1 = matmul(x = q, y = k, transpose_y = bool(true));\n"
       T16("[1, 2, 4, 4]") " s2 = mul(x = s1, y = fp16(0.353553));\n"
       T16("[1, 2, 4, 4]") " ms = add(x = s2, y = mask);\n"
       T16("[1, 2, 4, 4]") " aw = softmax(x = ms, axis = int32(-1));\n"
       T16("[1, 2, 4, 8]") " y = matmul(x = aw, y = v);",
       "y", true, false, 2});
}

TEST(Conformance, IgnoreAttnMaskQuirk) {
  auto parsed = mil::ParseProgram(ProgramText(
      {"",
       T16("[1, 1, 3, 4]") " q, " T16("[1, 1, 3, 4]") " k, " T16("[1, 1, 3, 4]") " v, "
       T16("[1, 1, 3, 3]") " m",
       T16("[1, 1, 3, 4]") " y = scaled_dot_product_attention(query = q, key = k, value = v, "
                           "attn_mask = m);",
       "y"}));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  auto program = mil::VerifyProgram(*std::move(parsed));
  ASSERT_TRUE(program.ok()) << program.status();
  std::vector<NamedTensor> in = MakeInputs(program->main(), false, 7);
  std::vector<float> mask = {0, -65504, -65504, 0, 0, -65504, 0, 0, 0};
  in[3].tensor = Tensor::FromFloats(mil::DType::kFp16, {1, 1, 3, 3}, mask);
  for (const auto& backend : CreateBackends(RegistryOptions{})) {
    CompileOptions with, without;
    without.ignore_attn_mask = true;
    auto a = CompileAndRun(*backend, *program, with, in);
    auto b = CompileAndRun(*backend, *program, without, in);
    ASSERT_TRUE(a.ok() && b.ok());
    testing::RefOptions ro;
    ro.ignore_attn_mask = true;
    auto ref = testing::EvaluateReference(*program, ToRef(in), ro);
    ASSERT_TRUE(ref.ok());
    ExpectClose("ignore mask", b->outputs[0].tensor.ToDoubles(), ref->at("y").values, 2e-3, 1e-3);
    EXPECT_NE(a->outputs[0].tensor.bytes(), b->outputs[0].tensor.bytes());
  }
}

TEST(Conformance, Quantization) {
  CheckCase({"quantize/dequantize", T16("[1, 4, 3, 3]") " x",
             "tensor<int8, [1, 4, 3, 3]> q = quantize(input = x, scale = fp16(0.125), "
             "output_dtype = string(\"int8\"));\n"
             T16("[1, 4, 3, 3]") " y = dequantize(input = q, scale = fp16(0.125));",
             "q, y"});
  CheckCase({"quantize per-axis uint8", T32("[2, 3]") " x",
             "tensor<uint8, [2, 3]> q = quantize(input = x, scale = tensor<fp32, [3]>([0.01, "
             "0.02, 0.5]), zero_point = tensor<uint8, [3]>([128, 100, 3]), axis = int32(1), "
             "output_dtype = string(\"uint8\"));",
             "q"});
  CheckCase({"constexpr_affine_dequantize + conv", T16("[1, 3, 1, 4]") " x",
             T16("[2, 3, 1, 1]") " w = constexpr_affine_dequantize()[axis = int32(0), "
                                 "quantized_data = tensor<int8, [2, 3, 1, 1]>([-128, 5, 127, 0, "
                                 "-3, 64]), scale = fp16(0.125), zero_point = int8(0)];\n"
             T16("[1, 2, 1, 4]") " y = conv(x = x, weight = w);",
             "y", true});
}
// clang-format on

TEST(Conformance, MilCorpus) {
  // Every valid program of the MIL corpus that has a main function runs on every backend.
  const std::filesystem::path dir = std::filesystem::path(ANERD_SOURCE_DIR) / "tests/mil/valid";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no corpus at " << dir;
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".mil") continue;
    std::ifstream f(entry.path());
    std::stringstream ss;
    ss << f.rdbuf();
    auto parsed = mil::ParseProgram(ss.str());
    if (!parsed.ok()) continue;
    auto program = mil::VerifyProgram(*std::move(parsed));
    if (!program.ok()) continue;  // needs weight files the corpus does not ship
    SCOPED_TRACE(entry.path().string());
    CheckProgram(entry.path().filename().string(), *program, true, true, 4);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(Conformance, DynamicTrainingKernels) {
  training::ModelShape shape;
  shape.dim = 32;
  shape.hidden = 48;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 8;
  shape.seq = 8;
  shape.layers = 1;
  shape.vocab = 64;
  auto kernels = training::AllKernels(shape);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  auto weights = training::KernelConstants(shape);
  ASSERT_TRUE(weights.ok()) << weights.status();
  for (training::Kernel& k : *kernels) {
    SCOPED_TRACE(k.layout.kernel);
    mil::WeightFiles w;
    for (const auto& [path, bytes] : weights->files()) ASSERT_TRUE(w.Add(path, *bytes).ok());
    auto program = mil::VerifyProgram(k.program, std::move(w));
    ASSERT_TRUE(program.ok()) << program.status();
    // Inputs in [-1, 1): weights and activations alike.
    std::vector<NamedTensor> in = MakeInputs(program->main(), false, 99);
    for (NamedTensor& t : in) {
      std::vector<float> v = t.tensor.ToFloats();
      for (float& x : v) x *= 0.5f;
      t.tensor = Tensor::FromFloats(t.tensor.dtype(), t.tensor.shape(), v);
    }
    CheckProgram(k.layout.kernel, *program, true, false, 10, &in);
  }
}

}  // namespace
}  // namespace anerd::backend
