// The CPU planner's named passes (issue 17 item 6): the pipeline order, and each pass observable
// in the dump taken after it, through Backend::Compile with CompileOptions::pass_dumps.
#include "server/backend/cpu/passes.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/program.h"

namespace anerd::backend::cpu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// One op for each pass to act on: a reshape (views), a matmul whose only consumer swaps its last
// two axes (fold-transposes), an elementwise chain (fuse-elementwise) and a concat of two computed
// values (alias-concat).
constexpr char kProgram[] = R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [4, 6]> a, tensor<fp32, [6, 5]> b, tensor<fp32, [4, 5]> c) {
        tensor<fp32, [6, 4]> r = reshape(x = a, shape = tensor<int32, [2]>([6, 4]))[name = string("r")];
        tensor<fp32, [5, 6]> bt = transpose(x = b, perm = tensor<int32, [2]>([1, 0]))[name = string("bt")];
        tensor<fp32, [4, 5]> m = matmul(x = a, y = b)[name = string("m")];
        tensor<fp32, [5, 4]> mt = transpose(x = m, perm = tensor<int32, [2]>([1, 0]))[name = string("mt")];
        tensor<fp32, [4, 5]> s = add(x = c, y = c)[name = string("s")];
        tensor<fp32, [4, 5]> t = relu(x = s)[name = string("t")];
        tensor<fp32, [4, 5]> u = mul(x = t, y = c)[name = string("u")];
        tensor<fp32, [4, 5]> v = sub(x = c, y = c)[name = string("v")];
        tensor<fp32, [8, 5]> k = concat(values = (u, v), axis = int32(0))[name = string("k")];
    } -> (r, bt, mt, k);
}
)";

mil::VerifiedProgram Program() {
  auto parsed = mil::ParseProgram(kProgram);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  auto verified = mil::VerifyProgram(*std::move(parsed));
  EXPECT_TRUE(verified.ok()) << verified.status();
  return *std::move(verified);
}

std::vector<PassDump> Dumps(const CompileOptions& base, int* steps = nullptr) {
  CpuBackend cpu(CpuBackendOptions{});
  std::vector<PassDump> dumps;
  CompileOptions options = base;
  options.pass_dumps = &dumps;
  auto compiled = cpu.Compile(Program(), options);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  if (compiled.ok() && steps != nullptr) {
    *steps = dynamic_cast<const CpuProgram&>(**compiled).num_steps();
  }
  return dumps;
}

std::vector<std::string> Names(const std::vector<PassDump>& dumps) {
  std::vector<std::string> names;
  for (const PassDump& d : dumps) names.push_back(d.name);
  return names;
}

TEST(PlannerPasses, RunInPipelineOrderWithADumpAfterEach) {
  std::vector<std::string> pipeline;
  for (const PassInfo& p : PlannerPipeline()) pipeline.push_back(std::string(p.name));
  EXPECT_THAT(pipeline,
              ElementsAre("views", "fold-transposes", "fuse-elementwise", "alias-concat"));
  EXPECT_THAT(Names(Dumps({})),
              ElementsAre("00-input", "01-lower", "02-views", "03-fold-transposes",
                          "04-fuse-elementwise", "05-alias-concat"));
}

TEST(PlannerPasses, EachPassIsObservableInItsDump) {
  const std::vector<PassDump> d = Dumps({});
  ASSERT_EQ(d.size(), 6u);
  EXPECT_THAT(d[0].text, HasSubstr("matmul(x = a, y = b)"));  // the input program
  // views: the reshape and transposes stop being copies.
  EXPECT_THAT(d[1].text, HasSubstr("copy (no views)"));
  EXPECT_THAT(d[2].text, Not(HasSubstr("copy (no views)")));
  // fold-transposes: the matmul writes its output transposed for its consumer.
  EXPECT_THAT(d[2].text, Not(HasSubstr("output written transposed")));
  EXPECT_THAT(d[3].text, HasSubstr("matmul (line 6)"));
  EXPECT_THAT(d[3].text, HasSubstr("output written transposed"));
  // fuse-elementwise: add -> relu -> mul becomes one step.
  EXPECT_THAT(d[3].text, Not(HasSubstr("fused chain")));
  EXPECT_THAT(d[4].text, HasSubstr("fused chain of 3 ops"));
  // alias-concat: the parts are written into the concat output.
  EXPECT_THAT(d[4].text, Not(HasSubstr("aliases:")));
  EXPECT_THAT(d[5].text, HasSubstr("aliases:"));
  for (size_t i = 1; i < d.size(); ++i) {
    EXPECT_THAT(d[i].text, HasSubstr("inputs:\n  a: tensor<fp32, [4, 6]>")) << d[i].name;
    EXPECT_THAT(d[i].text, HasSubstr("outputs:\n  r: ")) << d[i].name;
  }
}

TEST(PlannerPasses, TheLastDumpIsTheProgramThatRunsAndDumpingChangesNothing) {
  int with_dumps = 0;
  const std::vector<PassDump> d = Dumps({}, &with_dumps);
  CpuBackend cpu(CpuBackendOptions{});
  auto plain = cpu.Compile(Program(), {});
  ASSERT_TRUE(plain.ok()) << plain.status();
  const int steps = dynamic_cast<const CpuProgram&>(**plain).num_steps();
  EXPECT_EQ(with_dumps, steps);
  EXPECT_THAT(d.back().text, HasSubstr(absl::StrCat("steps: ", steps, "\n")));
}

TEST(PlannerPasses, ReferenceModeRunsNoRewrites) {
  CompileOptions reference;
  reference.reference_mode = true;
  int steps = 0;
  const std::vector<PassDump> d = Dumps(reference, &steps);
  EXPECT_THAT(Names(d), ElementsAre("00-input", "01-lower"));
  EXPECT_THAT(d[1].text, HasSubstr(absl::StrCat("steps: ", steps, "\n")));
  EXPECT_TRUE(Dumps({}).size() > d.size());
}

TEST(PlannerPasses, TheCpuBackendSaysItDumps) {
  EXPECT_TRUE(CpuBackend(CpuBackendOptions{}).Describe().capabilities.pass_dumps);
}

TEST(PlannerPasses, PassSetFollowsReferenceMode) {
  CompileOptions reference;
  reference.reference_mode = true;
  for (const PassInfo& p : PlannerPipeline()) {
    EXPECT_TRUE(PassSet::For({}).on(p.pass)) << p.name;
    EXPECT_FALSE(PassSet::For(reference).on(p.pass)) << p.name;
  }
}

}  // namespace
}  // namespace anerd::backend::cpu
