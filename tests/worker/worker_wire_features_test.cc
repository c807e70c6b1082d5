// What crosses the worker wire besides compile and run (issue 17 item 5 and the pass dumps of item
// 6): Backend::Supports with operand types and shapes, answered through a worker exactly as the
// in-process backend answers it, and CompileOptions::pass_dumps collected in the worker and
// returned to the front, bounded in size.
#include <memory>
#include <string>
#include <vector>

#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/worker/wire.h"
#include "server/worker/worker_backend.h"

namespace anerd::worker {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<WorkerBackend> StartWorker(const std::string& backend) {
  WorkerOptions o;
  o.backend = backend;
  o.binary = ANERD_BIN;
  o.log_level = "warn";
  absl::StatusOr<std::unique_ptr<WorkerBackend>> b = WorkerBackend::Start(o);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

// A conv over `channels` input channels: the seed's classifier limit refuses 32,000 on the ANE.
backend::OpQuery Conv(int64_t channels) {
  backend::OpQuery q;
  q.op = "conv";
  q.inputs.push_back({"weight", mil::TensorType{mil::DType::kFp16, {8, channels, 1, 1}}});
  q.inputs.push_back({"x", mil::TensorType{mil::DType::kFp16, {1, channels, 1, 16}}});
  q.outputs.push_back(mil::TensorType{mil::DType::kFp16, {1, 8, 1, 16}});
  return q;
}

// A 3-D conv: the CPU backend (and so ane-sim) runs only 1-D and 2-D ones.
backend::OpQuery Conv3d() {
  backend::OpQuery q;
  q.op = "conv";
  q.inputs.push_back({"x", mil::TensorType{mil::DType::kFp32, {1, 2, 4, 4, 4}}});
  return q;
}

void ExpectSameAnswer(const backend::Backend& in_process, const backend::Backend& worker,
                      const backend::OpQuery& query, const std::string& what) {
  const absl::Status want = in_process.Supports(query);
  const absl::Status got = worker.Supports(query);
  EXPECT_EQ(got.code(), want.code()) << what << ": " << got << " vs " << want;
  EXPECT_EQ(got.message(), want.message()) << what;
  // Asked again: the cached answer is the same.
  EXPECT_EQ(worker.Supports(query), got) << what;
}

class SupportsThroughWorkerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SupportsThroughWorkerTest, AnswersAsTheInProcessBackend) {
  backend::BackendRegistry registry(backend::RegistryOptions{});
  const backend::Backend* in_process = registry.Find(GetParam());
  ASSERT_NE(in_process, nullptr);
  std::unique_ptr<WorkerBackend> worker = StartWorker(GetParam());
  ASSERT_NE(worker, nullptr);
  ExpectSameAnswer(*in_process, *worker, Conv(31999), "conv over 31,999 channels");
  ExpectSameAnswer(*in_process, *worker, Conv(32000), "conv over 32,000 channels");
  ExpectSameAnswer(*in_process, *worker, Conv3d(), "3-D conv");
  ExpectSameAnswer(*in_process, *worker, backend::OpQuery::Named("conv"), "conv by name");
  ExpectSameAnswer(*in_process, *worker, backend::OpQuery::Named("lstm"), "lstm by name");
}

INSTANTIATE_TEST_SUITE_P(Backends, SupportsThroughWorkerTest, ::testing::Values("cpu", "ane-sim"));

TEST(WorkerSupportsTest, TheShapeRefusalCarriesTheBackendsReason) {
  std::unique_ptr<WorkerBackend> worker = StartWorker("ane-sim");
  ASSERT_NE(worker, nullptr);
  EXPECT_TRUE(worker->Supports(Conv(31999)).ok());
  const absl::Status refused = worker->Supports(Conv(32000));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(refused.message(), HasSubstr("conv_input_channels_limit"));
  EXPECT_THAT(refused.message(), HasSubstr("ane-sim"));
}

TEST(WorkerSupportsTest, AQueryOutsideTheWiresBoundsIsRefusedNamingTheBound) {
  std::unique_ptr<WorkerBackend> worker = StartWorker("cpu");
  ASSERT_NE(worker, nullptr);
  backend::OpQuery q;
  q.op = "add";
  q.inputs.push_back({"x", mil::TensorType{mil::DType::kFp32, std::vector<int64_t>(17, 1)}});
  const absl::Status refused = worker->Supports(q);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(refused.message(), HasSubstr("rank 17, above the worker wire's limit of 16"));
  EXPECT_TRUE(worker->Supports(backend::OpQuery::Named("add")).ok());  // the worker still serves
}

mil::VerifiedProgram Verify(const std::string& text) {
  absl::StatusOr<mil::Program> program = mil::ParseProgram(text);
  EXPECT_TRUE(program.ok()) << program.status();
  absl::StatusOr<mil::VerifiedProgram> verified = mil::VerifyProgram(*std::move(program));
  EXPECT_TRUE(verified.ok()) << verified.status();
  return *std::move(verified);
}

constexpr char kFusable[] = R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [4, 5]> c) {
        tensor<fp32, [4, 5]> s = add(x = c, y = c)[name = string("s")];
        tensor<fp32, [4, 5]> t = relu(x = s)[name = string("t")];
    } -> (t);
}
)";

TEST(PassDumpsThroughWorkerTest, TheWorkersDumpsEqualTheInProcessOnes) {
  backend::BackendRegistry registry(backend::RegistryOptions{});
  backend::Backend* cpu = registry.Find("cpu");
  ASSERT_NE(cpu, nullptr);
  std::unique_ptr<WorkerBackend> worker = StartWorker("cpu");
  ASSERT_NE(worker, nullptr);
  EXPECT_TRUE(worker->Describe().capabilities.pass_dumps);
  std::vector<backend::PassDump> want, got;
  backend::CompileOptions options;
  options.pass_dumps = &want;
  ASSERT_TRUE(cpu->Compile(Verify(kFusable), options).ok());
  options.pass_dumps = &got;
  auto program = worker->Compile(Verify(kFusable), options);
  ASSERT_TRUE(program.ok()) << program.status();
  ASSERT_GE(want.size(), 3u);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].text, want[i].text) << want[i].name;
  }
  // Without the pointer nothing is collected (and the program still runs).
  auto plain = worker->Compile(Verify(kFusable), {});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(got.size(), want.size());
}

TEST(WireBoundsTest, PassDumpsAreCutAtTheLimitSayingSo) {
  std::vector<backend::PassDump> dumps = {{"00-input", "small"},
                                          {"01-lower", std::string(wire::kMaxPassDumpBytes, 'a')},
                                          {"02-views", "dropped"}};
  wire::BoundPassDumps(&dumps);
  ASSERT_EQ(dumps.size(), 3u);
  EXPECT_EQ(dumps[0].text, "small");
  EXPECT_EQ(dumps[1].text.substr(0, 8), "aaaaaaaa");
  EXPECT_THAT(dumps[1].text, HasSubstr("[5 bytes cut: the worker wire carries at most"));
  EXPECT_EQ(dumps[2].name, "02-views");
  EXPECT_THAT(dumps[2].text, HasSubstr("[7 bytes cut"));
  size_t total = 0;
  for (const backend::PassDump& d : dumps) total += d.text.size();
  EXPECT_LT(total, wire::kMaxPassDumpBytes + 1024);
}

TEST(WireBoundsTest, ACutNeverSplitsAUtf8Sequence) {
  // "é" is two bytes; the limit falls between them.
  std::vector<backend::PassDump> dumps = {
      {"00-input", std::string(wire::kMaxPassDumpBytes - 1, 'a') + "\xC3\xA9"}};
  wire::BoundPassDumps(&dumps);
  EXPECT_EQ(dumps[0].text.substr(wire::kMaxPassDumpBytes - 2, 3), "a\n[");
  EXPECT_THAT(dumps[0].text, HasSubstr("[2 bytes cut"));
}

TEST(WireBoundsTest, QueriesOutsideTheBoundsAreNamed) {
  backend::OpQuery q = backend::OpQuery::Named("concat");
  EXPECT_EQ(wire::QueryOutOfBounds(q), "");
  for (size_t i = 0; i < wire::kMaxQueryOperands; ++i) {
    q.inputs.push_back({"values", mil::TensorType{mil::DType::kFp16, {1}}});
  }
  EXPECT_EQ(wire::QueryOutOfBounds(q), "");
  q.outputs.push_back(mil::TensorType{mil::DType::kFp16, {1}});
  EXPECT_THAT(wire::QueryOutOfBounds(q), HasSubstr("65537 operands"));
  backend::OpQuery long_name = backend::OpQuery::Named(std::string(300, 'x'));
  EXPECT_THAT(wire::QueryOutOfBounds(long_name), HasSubstr("300 bytes"));
}

}  // namespace
}  // namespace anerd::worker
