// CPU-backend specifics: input validation, unsupported programs, compile budget, registry, what
// the planner produces (views, fusion, folded transposes) and concurrent Run calls.
#include "server/backend/cpu/cpu_backend.h"

#include <cmath>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/cpu/program.h"
#include "server/backend/registry.h"

namespace anerd::backend {
namespace {

using ::testing::HasSubstr;

mil::VerifiedProgram Verified(const std::string& inputs, const std::string& body,
                              const std::string& outputs) {
  const std::string text = absl::StrCat("program(1.3)\n{\n    func main<ios18>(", inputs, ") {\n",
                                        body, "\n    } -> (", outputs, ");\n}\n");
  auto parsed = mil::ParseProgram(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  auto program = mil::VerifyProgram(*std::move(parsed));
  EXPECT_TRUE(program.ok()) << program.status();
  return *std::move(program);
}

mil::VerifiedProgram AddProgram() {
  return Verified("tensor<fp16, [2, 3]> a, tensor<fp32, [3]> b",
                  "        tensor<fp32, [2, 3]> a32 = cast(x = a, dtype = string(\"fp32\"));\n"
                  "        tensor<fp32, [2, 3]> y = add(x = a32, y = b);",
                  "y");
}

std::vector<NamedTensor> AddInputs() {
  return {NamedTensor{"a", Tensor::FromFloats(mil::DType::kFp16, {2, 3}, {1, 2, 3, 4, 5, 6})},
          NamedTensor{"b", Tensor::FromFloats(mil::DType::kFp32, {3}, {0.5, 0.25, -1})}};
}

TEST(CpuBackend, RunsAndReportsTiming) {
  cpu::CpuBackend backend({});
  auto compiled = backend.Compile(AddProgram(), {});
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  auto result = (*compiled)->Run(AddInputs());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->outputs.size(), 1u);
  EXPECT_EQ(result->outputs[0].name, "y");
  EXPECT_THAT(result->outputs[0].tensor.ToFloats(),
              ::testing::ElementsAre(1.5f, 2.25f, 2.0f, 4.5f, 5.25f, 5.0f));
  EXPECT_GT(result->timing.total_us, 0);
  EXPECT_GE(result->timing.total_us, result->timing.compute_us);
}

TEST(CpuBackend, BadInputsNameTheInputAndType) {
  cpu::CpuBackend backend({});
  auto compiled = backend.Compile(AddProgram(), {});
  ASSERT_TRUE(compiled.ok());
  CompiledProgram& p = **compiled;
  std::vector<NamedTensor> in = AddInputs();

  auto missing = p.Run({in[0]});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("'b'"));
  EXPECT_THAT(missing.status().message(), HasSubstr("tensor<fp32, [3]>"));

  std::vector<NamedTensor> extra = in;
  extra.push_back(NamedTensor{"c", in[1].tensor});
  auto e = p.Run(extra);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.status().message(), HasSubstr("'c'"));

  std::vector<NamedTensor> shaped = in;
  shaped[1].tensor = Tensor::FromFloats(mil::DType::kFp32, {4}, {1, 2, 3, 4});
  auto s = p.Run(shaped);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("'b' must be tensor<fp32, [3]>"));

  std::vector<NamedTensor> typed = in;
  typed[0].tensor = Tensor::FromFloats(mil::DType::kFp32, {2, 3}, {1, 2, 3, 4, 5, 6});
  auto t = p.Run(typed);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("'a' must be tensor<fp16, [2, 3]>"));

  std::vector<NamedTensor> twice = in;
  twice.push_back(in[0]);
  EXPECT_EQ(p.Run(twice).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(p.Run(in).ok());  // still usable after errors
}

TEST(CpuBackend, UnsupportedProgramIsUnimplementedWithOpAndLine) {
  cpu::CpuBackend backend({});
  auto program =
      Verified("tensor<fp16, [2, 5]> a, tensor<int32, [2, 3]> i",
               "        tensor<fp16, [2, 3]> y = gather(x = a, indices = i, axis = int32(1), "
               "batch_dims = int32(1));",
               "y");
  auto compiled = backend.Compile(program, {});
  EXPECT_EQ(compiled.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(compiled.status().message(), HasSubstr("'gather'"));
  EXPECT_THAT(compiled.status().message(), HasSubstr("line 4"));
  EXPECT_EQ(backend.compiles_used(), 0);  // failed compiles do not use budget
}

TEST(CpuBackend, CompileBudget) {
  cpu::CpuBackend backend(cpu::CpuBackendOptions{2});
  EXPECT_TRUE(backend.Compile(AddProgram(), {}).ok());
  EXPECT_TRUE(backend.Compile(AddProgram(), {}).ok());
  auto third = backend.Compile(AddProgram(), {});
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(backend.compiles_used(), 2);
  EXPECT_EQ(backend.Describe().capabilities.compile_budget, 2);
}

TEST(CpuBackend, RegistryListsCpu) {
  BackendRegistry registry(RegistryOptions{});
  ASSERT_NE(registry.Find("cpu"), nullptr);
  EXPECT_EQ(registry.Find("nope"), nullptr);
  EXPECT_EQ(registry.names().front(), "cpu");
  Backend* cpu = registry.Find("cpu");
  EXPECT_TRUE(cpu->Supports(OpQuery::Named("conv")).ok());
  EXPECT_TRUE(cpu->Supports(OpQuery::Named("scaled_dot_product_attention")).ok());
  EXPECT_EQ(cpu->Supports(OpQuery::Named("lstm")).code(), absl::StatusCode::kUnimplemented);
  EXPECT_FALSE(cpu->Describe().version.empty());
}

int StepsOf(const CompiledProgram& p) {
  return dynamic_cast<const cpu::CpuProgram&>(p).num_steps();
}

TEST(CpuPlanner, DynamicMatmulIsOneGemmOnViews) {
  auto program =
      Verified("tensor<fp16, [1, 8, 1, 11]> x",
               "        tensor<fp16, [1, 8, 1, 5]> act = slice_by_size(x = x, begin = "
               "tensor<int32, [4]>([0, 0, 0, 0]), size = tensor<int32, [4]>([1, 8, 1, 5]));\n"
               "        tensor<fp16, [1, 8, 1, 6]> wt = slice_by_size(x = x, begin = tensor<int32, "
               "[4]>([0, 0, 0, 5]), size = tensor<int32, [4]>([1, 8, 1, 6]));\n"
               "        tensor<fp16, [1, 1, 8, 5]> a2 = reshape(x = act, shape = tensor<int32, "
               "[4]>([1, 1, 8, 5]));\n"
               "        tensor<fp16, [1, 1, 5, 8]> a3 = transpose(x = a2, perm = tensor<int32, "
               "[4]>([0, 1, 3, 2]));\n"
               "        tensor<fp16, [1, 1, 8, 6]> W = reshape(x = wt, shape = tensor<int32, "
               "[4]>([1, 1, 8, 6]));\n"
               "        tensor<fp16, [1, 1, 5, 6]> yh = matmul(x = a3, y = W);\n"
               "        tensor<fp16, [1, 1, 6, 5]> yt = transpose(x = yh, perm = tensor<int32, "
               "[4]>([0, 1, 3, 2]));\n"
               "        tensor<fp16, [1, 6, 1, 5]> y = reshape(x = yt, shape = tensor<int32, "
               "[4]>([1, 6, 1, 5]));",
               "y");
  cpu::CpuBackend backend({});
  auto planned = backend.Compile(program, {});
  ASSERT_TRUE(planned.ok());
  EXPECT_EQ(StepsOf(**planned), 1);  // slices, reshapes and transposes are views
  CompileOptions ref;
  ref.reference_mode = true;
  auto unplanned = backend.Compile(program, ref);
  ASSERT_TRUE(unplanned.ok());
  EXPECT_EQ(StepsOf(**unplanned), 8);  // one per op
}

TEST(CpuPlanner, ElementwiseChainFusesAndBuffersAreReused) {
  std::string body;
  std::string prev = "x";
  for (int i = 0; i < 6; ++i) {
    absl::StrAppend(&body, "        tensor<fp16, [64, 64]> v", i, " = mul(x = ", prev,
                    ", y = fp16(1.5));\n");
    prev = absl::StrCat("v", i);
  }
  // A reduction ends the chain (and evaluates it itself); a second chain follows.
  absl::StrAppend(&body, "        tensor<fp16, [64, 1]> r = reduce_max(x = ", prev,
                  ", axes = tensor<int32, [1]>([1]), keep_dims = bool(true));\n");
  absl::StrAppend(&body, "        tensor<fp16, [64, 1]> s = exp(x = r);\n");
  absl::StrAppend(&body, "        tensor<fp16, [64, 1]> y = add(x = s, y = fp16(1));");
  auto program = Verified("tensor<fp16, [64, 64]> x", body, "y");
  cpu::CpuBackend backend({});
  auto planned = backend.Compile(program, {});
  ASSERT_TRUE(planned.ok());
  EXPECT_EQ(StepsOf(**planned), 2);  // the reduction absorbs the first chain
  CompileOptions ref;
  ref.reference_mode = true;
  auto unplanned = backend.Compile(program, ref);
  ASSERT_TRUE(unplanned.ok());
  EXPECT_EQ(StepsOf(**unplanned), 9);
  // Liveness: reference mode reuses buffers, so the arena holds far fewer than 9 intermediates.
  EXPECT_LE(dynamic_cast<const cpu::CpuProgram&>(**unplanned).arena_floats(), 3 * 64 * 64 + 3 * 64);
}

// Runs `program` planned and in reference mode; expects the same bytes; returns the planned run.
std::vector<NamedTensor> RunBothModes(const mil::VerifiedProgram& program,
                                      const std::vector<NamedTensor>& inputs, int planned_steps) {
  cpu::CpuBackend backend({});
  auto planned = backend.Compile(program, {});
  CompileOptions ref;
  ref.reference_mode = true;
  auto unplanned = backend.Compile(program, ref);
  EXPECT_TRUE(planned.ok() && unplanned.ok());
  if (!planned.ok() || !unplanned.ok()) return {};
  EXPECT_EQ(StepsOf(**planned), planned_steps);
  auto a = (*planned)->Run(inputs);
  auto b = (*unplanned)->Run(inputs);
  EXPECT_TRUE(a.ok() && b.ok());
  if (!a.ok() || !b.ok()) return {};
  for (size_t i = 0; i < a->outputs.size(); ++i) {
    EXPECT_EQ(a->outputs[i].tensor.bytes(), b->outputs[i].tensor.bytes()) << a->outputs[i].name;
  }
  return std::move(a->outputs);
}

TEST(CpuPlanner, ConcatPartsAreWrittenInPlaceByTheirProducers) {
  // a and b write their regions of y directly (no concat step); z reads a back out of y.
  auto program =
      Verified("tensor<fp16, [1, 2, 1, 2]> x",
               "        tensor<fp16, [1, 2, 1, 2]> a = mul(x = x, y = fp16(2));\n"
               "        tensor<fp16, [1, 2, 1, 2]> b = add(x = x, y = fp16(10));\n"
               "        tensor<fp16, [1, 4, 1, 2]> y = concat(values = (a, b), axis = int32(1), "
               "interleave = bool(false));\n"
               "        tensor<fp16, [1, 2, 1, 2]> z = add(x = a, y = fp16(0.5));",
               "y, z");
  const std::vector<NamedTensor> in = {
      NamedTensor{"x", Tensor::FromFloats(mil::DType::kFp16, {1, 2, 1, 2}, {1, 2, 3, 4})}};
  std::vector<NamedTensor> out = RunBothModes(program, in, 3);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_THAT(out[0].tensor.ToFloats(), ::testing::ElementsAre(2, 4, 6, 8, 11, 12, 13, 14));
  EXPECT_THAT(out[1].tensor.ToFloats(), ::testing::ElementsAre(2.5, 4.5, 6.5, 8.5));
}

TEST(CpuPlanner, ConcatCopiesInputsRepeatsAndNonLeadingAxes) {
  // x is an input (copied), a appears twice (written in place once, copied once), and the axis-3
  // concat w has parts that are not contiguous runs of its output (copied).
  auto program =
      Verified("tensor<fp16, [1, 2, 1, 2]> x",
               "        tensor<fp16, [1, 2, 1, 2]> a = mul(x = x, y = fp16(2));\n"
               "        tensor<fp16, [1, 6, 1, 2]> y = concat(values = (a, x, a), axis = int32(1), "
               "interleave = bool(false));\n"
               "        tensor<fp16, [1, 2, 1, 2]> b = add(x = x, y = fp16(1));\n"
               "        tensor<fp16, [1, 2, 1, 4]> w = concat(values = (b, x), axis = int32(3), "
               "interleave = bool(false));",
               "y, w");
  const std::vector<NamedTensor> in = {
      NamedTensor{"x", Tensor::FromFloats(mil::DType::kFp16, {1, 2, 1, 2}, {1, 2, 3, 4})}};
  std::vector<NamedTensor> out = RunBothModes(program, in, 4);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_THAT(out[0].tensor.ToFloats(), ::testing::ElementsAre(2, 4, 6, 8, 1, 2, 3, 4, 2, 4, 6, 8));
  EXPECT_THAT(out[1].tensor.ToFloats(), ::testing::ElementsAre(2, 3, 1, 2, 4, 5, 3, 4));
}

// scale, mask, softmax over the last axis, as in the attention kernels: the chain runs inside the
// softmax step (one step) with the same bytes as reference mode, split across threads or not.
TEST(CpuPlanner, SoftmaxAbsorbsItsElementwiseChain) {
  auto program =
      Verified("tensor<fp16, [4, 128, 256]> x, tensor<fp16, [128, 256]> mask",
               "        tensor<fp16, [4, 128, 256]> s = mul(x = x, y = fp16(0.125));\n"
               "        tensor<fp16, [4, 128, 256]> m = add(x = s, y = mask);\n"
               "        tensor<fp16, [4, 128, 256]> p = softmax(x = m, axis = int32(-1));",
               "p");
  std::vector<float> x(4 * 128 * 256), mask(128 * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.01f * static_cast<float>(i)) * 40.0f;
  for (int r = 0; r < 128; ++r) {
    for (int c = 0; c < 256; ++c) mask[r * 256 + c] = c > 2 * r ? -65504.0f : 0.0f;
  }
  const std::vector<NamedTensor> in = {
      NamedTensor{"x", Tensor::FromFloats(mil::DType::kFp16, {4, 128, 256}, x)},
      NamedTensor{"mask", Tensor::FromFloats(mil::DType::kFp16, {128, 256}, mask)}};
  for (int threads : {1, 2}) {
    const int previous = cpu::SetParallelForThreads(threads);
    std::vector<NamedTensor> out = RunBothModes(program, in, 1);
    cpu::SetParallelForThreads(previous);
    ASSERT_EQ(out.size(), 1u);
    const std::vector<float> p = out[0].tensor.ToFloats();
    EXPECT_EQ(p[5], 0.0f);  // row 0 attends to columns 0..0 only: masked entries are exact zeros
    EXPECT_EQ(p[0], 1.0f);
    double row = 0;
    for (int c = 0; c < 256; ++c) row += p[(3 * 128 + 100) * 256 + c];
    EXPECT_NEAR(row, 1.0, 0.02);
  }
}

// Last-axis reductions of single-use chains (sdpaBwd2's sum(probs * dp)) run the chain inside
// the reduce step: one step per reduction, same bytes as reference mode, split or not.
TEST(CpuPlanner, LastAxisReductionAbsorbsItsElementwiseChain) {
  auto program = Verified(
      "tensor<fp16, [4, 128, 256]> a, tensor<fp16, [4, 128, 256]> b",
      "        tensor<fp16, [4, 128, 256]> p = mul(x = a, y = b);\n"
      "        tensor<fp16, [4, 128, 1]> s = reduce_sum(x = p, axes = tensor<int32, [1]>([-1]), "
      "keep_dims = bool(true));\n"
      "        tensor<fp16, [4, 128, 256]> q = sub(x = a, y = b);\n"
      "        tensor<fp16, [4, 128]> m = reduce_mean(x = q, axes = tensor<int32, [1]>([2]), "
      "keep_dims = bool(false));\n"
      "        tensor<fp16, [4, 128, 256]> e = exp(x = a);\n"
      "        tensor<fp16, [4, 128, 1]> x = reduce_max(x = e, axes = tensor<int32, [1]>([-1]), "
      "keep_dims = bool(true));",
      "s, m, x");
  std::vector<float> a(4 * 128 * 256), b(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = std::sin(0.013f * static_cast<float>(i)) * 3.0f;
    b[i] = std::cos(0.007f * static_cast<float>(i));
  }
  const std::vector<NamedTensor> in = {
      NamedTensor{"a", Tensor::FromFloats(mil::DType::kFp16, {4, 128, 256}, a)},
      NamedTensor{"b", Tensor::FromFloats(mil::DType::kFp16, {4, 128, 256}, b)}};
  for (int threads : {1, 2}) {
    const int previous = cpu::SetParallelForThreads(threads);
    std::vector<NamedTensor> out = RunBothModes(program, in, 3);
    cpu::SetParallelForThreads(previous);
    ASSERT_EQ(out.size(), 3u);
    double sum = 0;  // row 7 of s, recomputed in double from the fp16 inputs
    for (int c = 0; c < 256; ++c) {
      sum += static_cast<double>(RoundToHalf(a[7 * 256 + c])) * RoundToHalf(b[7 * 256 + c]);
    }
    EXPECT_NEAR(out[0].tensor.ToFloats()[7], sum, 0.05 + std::abs(sum) * 0.01);
    EXPECT_EQ(out[1].tensor.shape(), (std::vector<int64_t>{4, 128}));
  }
}

TEST(CpuBackend, ConcurrentRunsAreSerialisedAndCorrect) {
  cpu::CpuBackend backend({});
  auto compiled = backend.Compile(AddProgram(), {});
  ASSERT_TRUE(compiled.ok());
  CompiledProgram* p = compiled->get();
  const std::string want = (*p->Run(AddInputs())).outputs[0].tensor.bytes();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto r = p->Run(AddInputs());
        if (!r.ok() || r->outputs[0].tensor.bytes() != want) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// Two chained n x n matmuls (two steps that never fuse): three n*n buffers live at once, plus the
// GEMM's operand scratch.
mil::VerifiedProgram MatmulChain(int n) {
  const std::string t = absl::StrCat("tensor<fp32, [", n, ", ", n, "]>");
  return Verified(
      absl::StrCat(t, " a"),
      absl::StrCat("        bool f = const()[name = string(\"f\"), val = bool(false)];\n",
                   "        ", t, " y1 = matmul(transpose_x = f, transpose_y = f, x = a, y = a);\n",
                   "        ", t, " y2 = matmul(transpose_x = f, transpose_y = f, x = y1, y = a);"),
      "y2");
}

TEST(CpuBackend, StopCheckEndsARunBetweenSteps) {
  cpu::CpuBackend backend({});
  auto compiled = backend.Compile(MatmulChain(8), {});
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  std::vector<NamedTensor> in = {
      {"a", Tensor::FromFloats(mil::DType::kFp32, {8, 8}, std::vector<float>(64, 1.0f))}};
  int calls = 0;
  auto stopped = (*compiled)->RunStoppable(in, [&calls]() -> absl::Status {
    return ++calls == 1 ? absl::OkStatus() : absl::CancelledError("client went away");
  });
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled) << stopped.status();
  EXPECT_EQ(calls, 2) << "asked before each step; the second step never ran";
  auto full = (*compiled)->RunStoppable(in, [] { return absl::OkStatus(); });
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_FLOAT_EQ(full->outputs[0].tensor.ToFloats()[0], 64.0f);
}

TEST(CpuBackend, PlannedMemoryIsReportedAndLimitedBeforeAllocation) {
  cpu::CpuBackend backend({});
  auto compiled = backend.Compile(MatmulChain(64), {});
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  const uint64_t bytes = (*compiled)->memory_bytes();
  EXPECT_GE(bytes, 3u * 64 * 64 * sizeof(float));
  EXPECT_LT(bytes, 9u * 64 * 64 * sizeof(float)) << "buffers plus the GEMM's operand scratch";
  CompileOptions limited;
  limited.max_memory_bytes = bytes - 1;
  auto refused = backend.Compile(MatmulChain(64), limited);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr(absl::StrCat("needs ", bytes, " bytes")));
  EXPECT_EQ(backend.compiles_used(), 1) << "a refused compile does not use the budget";
  limited.max_memory_bytes = bytes;
  EXPECT_TRUE(backend.Compile(MatmulChain(64), limited).ok());
}

TEST(CpuBackend, CompileStopsBetweenOps) {
  cpu::CpuBackend backend({});
  CompileOptions options;
  options.stop = [] { return absl::DeadlineExceededError("too late"); };
  auto compiled = backend.Compile(MatmulChain(8), options);
  EXPECT_EQ(compiled.status().code(), absl::StatusCode::kDeadlineExceeded) << compiled.status();
  EXPECT_EQ(backend.compiles_used(), 0);
}

}  // namespace
}  // namespace anerd::backend
