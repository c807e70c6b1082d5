// Backend::Supports with operand shapes (issue 17 item 5): the CPU backend's op list is the
// planner's, and a shape rule refuses through the interface with a reason, as Compile does.
#include "server/backend/cpu/op_support.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/mil/op_registry.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/planner.h"
#include "server/backend/registry.h"

namespace anerd::backend {
namespace {

using ::testing::HasSubstr;

TEST(CpuOpSupport, SupportsExactlyThePlannersOps) {
  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  const std::vector<std::string> planned = cpu::Planner::PlannedOps();
  ASSERT_FALSE(planned.empty());
  EXPECT_EQ(cpu::CpuSupportedOps(), planned);
  std::vector<std::string> asked = mil::KnownOps();
  asked.insert(asked.end(), {"anerd_test_abort", "anerd_test_hang", "lstm"});
  asked.insert(asked.end(), planned.begin(), planned.end());
  for (const std::string& op : asked) {
    const bool in_planner = std::binary_search(planned.begin(), planned.end(), op);
    absl::Status s = cpu.Supports(OpQuery::Named(op));
    EXPECT_EQ(s.ok(), in_planner) << op << ": " << s;
    if (!s.ok()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
      EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("'", op, "'")));
    }
  }
  // The CPU backend runs every op the verifier knows (cpu_backend.h).
  for (const std::string& op : mil::KnownOps()) {
    EXPECT_TRUE(std::binary_search(planned.begin(), planned.end(), op)) << op;
  }
}

// A 2-D conv (x rank 4) and a 3-D conv (x rank 5) of one channel.
mil::VerifiedProgram ConvProgram(int spatial_dims) {
  std::string dims = "1, 1", ones = "1, 1", strides;
  for (int i = 0; i < spatial_dims; ++i) {
    absl::StrAppend(&dims, ", 4");
    absl::StrAppend(&ones, ", 1");
    absl::StrAppend(&strides, i ? ", " : "", "1");
  }
  const std::string text = absl::StrCat(
      "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [", dims, "]> x) {\n",
      "        tensor<fp32, [", ones, "]> w = const()[name = string(\"w\"), val = tensor<fp32, [",
      ones, "]>([2])];\n", "        tensor<fp32, [", dims,
      "]> y = conv(x = x, weight = w)[name = string(\"y\")];\n    } -> (y);\n}\n");
  auto parsed = mil::ParseProgram(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  auto program = mil::VerifyProgram(*std::move(parsed));
  EXPECT_TRUE(program.ok()) << program.status() << "\n" << text;
  return *std::move(program);
}

const OpQuery& ConvQuery(const std::vector<OpQuery>& queries) {
  auto it =
      std::find_if(queries.begin(), queries.end(), [](const OpQuery& q) { return q.op == "conv"; });
  EXPECT_NE(it, queries.end());
  return *it;
}

TEST(OpQueries, CarryOperandTypesFromTheFunction) {
  const mil::VerifiedProgram p = ConvProgram(2);
  const std::vector<OpQuery> queries = OpQueriesFor(p.main());
  ASSERT_EQ(queries.size(), 2u);
  const OpQuery& conv = ConvQuery(queries);
  ASSERT_NE(conv.Input("x"), nullptr);
  EXPECT_EQ(conv.Input("x")->shape, (std::vector<int64_t>{1, 1, 4, 4}));
  ASSERT_NE(conv.Input("weight"), nullptr);
  EXPECT_EQ(conv.Input("weight")->shape, (std::vector<int64_t>{1, 1, 1, 1}));
  ASSERT_EQ(conv.outputs.size(), 1u);
  EXPECT_EQ(conv.outputs[0].shape, (std::vector<int64_t>{1, 1, 4, 4}));
  EXPECT_EQ(conv.operation, &p.main().ops[1]);
}

// The same op name is accepted or refused by operand shape, through Backend& for every in-process
// backend, and the refusal's reason is the one Compile gives.
TEST(OpQueries, ShapeDependentRefusalThroughTheInterface) {
  BackendRegistry registry(RegistryOptions{});
  const mil::VerifiedProgram ok2d = ConvProgram(2), bad3d = ConvProgram(3);
  for (const char* name : {"cpu", "ane-sim"}) {
    Backend* backend = registry.Find(name);
    ASSERT_NE(backend, nullptr) << name;
    EXPECT_TRUE(backend->Supports(OpQuery::Named("conv")).ok()) << name;
    EXPECT_TRUE(backend->Supports(ConvQuery(OpQueriesFor(ok2d.main()))).ok()) << name;
    absl::Status refused = backend->Supports(ConvQuery(OpQueriesFor(bad3d.main())));
    EXPECT_EQ(refused.code(), absl::StatusCode::kUnimplemented) << name;
    EXPECT_THAT(refused.message(), HasSubstr("op 'conv'")) << name;
    EXPECT_THAT(refused.message(), HasSubstr("only 1-D and 2-D convolutions")) << name;
  }
  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  auto compiled = cpu.Compile(bad3d, {});
  EXPECT_EQ(compiled.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(compiled.status().message(), HasSubstr("only 1-D and 2-D convolutions"));
}

// The ANE backends consult the rules table per operand shape: a conv over 32,000 input channels
// (the seed's classifier limit) is refused by ane-sim and run by cpu; 31,999 channels pass.
TEST(OpQueries, TheAneRulesRefuseByShape) {
  BackendRegistry registry(RegistryOptions{});
  auto conv = [](int64_t channels) {
    OpQuery q;
    q.op = "conv";
    q.inputs.push_back({"weight", mil::TensorType{mil::DType::kFp16, {8, channels, 1, 1}}});
    q.inputs.push_back({"x", mil::TensorType{mil::DType::kFp16, {1, channels, 1, 16}}});
    return q;
  };
  Backend* sim = registry.Find("ane-sim");
  Backend* cpu = registry.Find("cpu");
  ASSERT_NE(sim, nullptr);
  ASSERT_NE(cpu, nullptr);
  EXPECT_TRUE(sim->Supports(conv(31999)).ok());
  absl::Status refused = sim->Supports(conv(32000));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(refused.message(), HasSubstr("conv_input_channels_limit"));
  EXPECT_THAT(refused.message(), HasSubstr("ane-sim"));
  EXPECT_TRUE(cpu->Supports(conv(32000)).ok());
}

}  // namespace
}  // namespace anerd::backend
