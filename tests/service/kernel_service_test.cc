// The kernel RPCs over an in-process channel: streaming upload, protocol errors, tensor
// validation and the listing/deletion calls, each with the status code clients rely on.
#include <filesystem>

#include "anerd/v1/anerd.grpc.pb.h"
#include "common/fp16.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/service/anerd_service.h"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/process_harness.h"

namespace anerd::service {
namespace {

using ::testing::HasSubstr;

class KernelServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine::EngineOptions options;
    options.state_dir = dir_.path() + "/state";
    options.kernel_limits.max_tensor_bytes = 1 << 20;
    options.kernel_limits.max_weight_bytes = 1 << 20;
    std::filesystem::create_directories(options.state_dir);
    engine_ = *engine::Engine::Create(options);
    service_ = std::make_unique<AnerdService>(engine_.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1::Anerd::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    server_->Shutdown();
    engine_->Shutdown();
  }

  // Sends `messages` as one CompileKernel stream.
  grpc::Status Send(const std::vector<v1::CompileKernelRequest>& messages,
                    v1::CompileKernelResponse* response) {
    grpc::ClientContext context;
    auto writer = stub_->CompileKernel(&context, response);
    for (const auto& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  static v1::CompileKernelRequest Header(uint64_t declared_size) {
    v1::CompileKernelRequest m;
    m.mutable_header()->set_name("conv");
    m.mutable_header()->set_mil_text(testing::ConvMilText());
    v1::WeightFileHeader* f = m.mutable_header()->add_weight_files();
    f->set_path("w.bin");
    f->set_size(declared_size);
    return m;
  }

  static v1::CompileKernelRequest Chunk(const std::string& path, uint64_t offset,
                                        std::string data) {
    v1::CompileKernelRequest m;
    m.mutable_chunk()->set_path(path);
    m.mutable_chunk()->set_offset(offset);
    m.mutable_chunk()->set_data(std::move(data));
    return m;
  }

  // The conv kernel uploaded in 1000-byte chunks.
  std::vector<v1::CompileKernelRequest> ConvUpload() {
    const std::string blob = testing::ConvWeightBytes();
    std::vector<v1::CompileKernelRequest> m = {Header(blob.size())};
    for (size_t off = 0; off < blob.size(); off += 1000) {
      m.push_back(Chunk("weights/w.bin", off, blob.substr(off, 1000)));
    }
    return m;
  }

  std::string CompileConv() {
    v1::CompileKernelResponse response;
    grpc::Status s = Send(ConvUpload(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.kernel().id();
  }

  testing::TempDir dir_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<AnerdService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Anerd::Stub> stub_;
};

TEST_F(KernelServiceTest, ChunkedUploadCompilesThenHitsTheCache) {
  v1::CompileKernelResponse first, second;
  ASSERT_TRUE(Send(ConvUpload(), &first).ok());
  EXPECT_FALSE(first.cache_hit());
  EXPECT_EQ(first.kernel().inputs(0).dtype(), "fp16");
  EXPECT_EQ(first.kernel().outputs(0).shape(1), 32);
  EXPECT_EQ(first.kernel().weight_bytes(), testing::ConvWeightBytes().size());
  ASSERT_TRUE(Send(ConvUpload(), &second).ok());
  EXPECT_TRUE(second.cache_hit());
  EXPECT_EQ(second.kernel().id(), first.kernel().id());

  grpc::ClientContext ctx;
  v1::GetInfoResponse info;
  ASSERT_TRUE(stub_->GetInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.cache().kernels_stored(), 1u);
  EXPECT_EQ(info.cache().hits(), 1u);
  EXPECT_EQ(info.backends(0).compiles_used(), 1u);
}

TEST_F(KernelServiceTest, StreamProtocolErrorsAreInvalidArgument) {
  const std::string blob = testing::ConvWeightBytes();
  struct Case {
    const char* what;
    std::vector<v1::CompileKernelRequest> messages;
    const char* expect;
    grpc::StatusCode code;
  };
  std::vector<Case> cases = {
      {"no header", {}, "no header", grpc::INVALID_ARGUMENT},
      {"chunk first", {Chunk("w.bin", 0, "x")}, "before the header", grpc::INVALID_ARGUMENT},
      {"two headers",
       {Header(blob.size()), Header(blob.size())},
       "second header",
       grpc::INVALID_ARGUMENT},
      {"undeclared file",
       {Header(blob.size()), Chunk("other.bin", 0, "x")},
       "did not declare",
       grpc::INVALID_ARGUMENT},
      {"bad offset",
       {Header(blob.size()), Chunk("w.bin", 5, "x")},
       "expected offset 0",
       grpc::INVALID_ARGUMENT},
      {"too long",
       {Header(3), Chunk("w.bin", 0, "abcd")},
       "longer than its declared",
       grpc::INVALID_ARGUMENT},
      {"short",
       {Header(blob.size()), Chunk("w.bin", 0, blob.substr(0, 10))},
       "received 10 of",
       grpc::INVALID_ARGUMENT},
      {"path escape", {Header(0)}, "", grpc::INVALID_ARGUMENT},
      {"over the weight limit", {Header(2 << 20)}, "--max-weight-bytes", grpc::RESOURCE_EXHAUSTED},
  };
  cases[7].messages[0].mutable_header()->mutable_weight_files(0)->set_path("/etc/passwd");
  for (const Case& c : cases) {
    v1::CompileKernelResponse response;
    grpc::Status s = Send(c.messages, &response);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.expect)) << c.what;
  }
  grpc::ClientContext ctx;
  v1::ListKernelsResponse list;
  ASSERT_TRUE(stub_->ListKernels(&ctx, {}, &list).ok());
  EXPECT_EQ(list.kernels_size(), 0) << "nothing half-uploaded is stored";
}

TEST_F(KernelServiceTest, EvalValidatesTensors) {
  const std::string id = CompileConv();
  auto eval = [&](v1::Tensor t) {
    v1::EvalKernelRequest request;
    request.set_kernel_id(id);
    *request.add_inputs() = std::move(t);
    v1::EvalKernelResponse response;
    grpc::ClientContext ctx;
    return stub_->EvalKernel(&ctx, request, &response);
  };
  v1::Tensor good;
  good.set_name("x");
  good.set_dtype("fp16");
  for (int d : {1, 64, 1, 256}) good.add_shape(d);
  good.set_data(std::string(64 * 256 * 2, '\0'));
  EXPECT_TRUE(eval(good).ok());

  v1::Tensor bad_dtype = good;
  bad_dtype.set_dtype("float");
  EXPECT_THAT(eval(bad_dtype).error_message(), HasSubstr("unknown dtype 'float'"));
  v1::Tensor short_data = good;
  short_data.mutable_data()->resize(10);
  grpc::Status s = eval(short_data);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("needs 32768 bytes of data, got 10"));
  v1::Tensor huge = good;
  huge.clear_shape();
  for (int64_t d : {int64_t{1} << 40, int64_t{1} << 40}) huge.add_shape(d);
  EXPECT_THAT(eval(huge).error_message(), HasSubstr("too large"));
  v1::Tensor negative = good;
  negative.set_shape(1, -64);
  EXPECT_EQ(eval(negative).error_code(), grpc::INVALID_ARGUMENT);
  v1::Tensor wrong_shape = good;
  wrong_shape.set_shape(3, 128);
  wrong_shape.mutable_data()->resize(64 * 128 * 2);
  s = eval(wrong_shape);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("x"));
  v1::Tensor over_limit = good;
  over_limit.set_shape(3, 8200);  // 1,049,600 bytes > the 1 MiB limit set in SetUp
  over_limit.mutable_data()->resize(64 * 8200 * 2);
  EXPECT_THAT(eval(over_limit).error_message(), HasSubstr("--max-tensor-bytes"));
}

TEST_F(KernelServiceTest, EvalReturnsOutputsAndTiming) {
  const std::string id = CompileConv();
  std::vector<float> x(64 * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = RoundToHalf(static_cast<float>(i % 17) / 16 - 0.5f);
  std::string bytes(x.size() * 2, '\0');
  for (size_t i = 0; i < x.size(); ++i) {
    const uint16_t h = FloatToHalf(x[i]);
    std::memcpy(&bytes[2 * i], &h, 2);
  }
  v1::EvalKernelRequest request;
  request.set_kernel_id(id);
  v1::Tensor* t = request.add_inputs();
  t->set_name("x");
  t->set_dtype("fp16");
  for (int d : {1, 64, 1, 256}) t->add_shape(d);
  t->set_data(bytes);
  v1::EvalKernelResponse response;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->EvalKernel(&ctx, request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  const v1::Tensor& y = response.outputs(0);
  EXPECT_EQ(y.dtype(), "fp16");
  ASSERT_EQ(y.data().size(), 32u * 256 * 2);
  const std::vector<double> ref = testing::ReferenceConv(x);
  for (size_t i = 0; i < ref.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, y.data().data() + 2 * i, 2);
    ASSERT_NEAR(HalfToFloat(h), ref[i], 2e-3 + 2e-3 * std::fabs(ref[i])) << i;
  }
  EXPECT_GT(response.timing().execute_us(), 0);
  EXPECT_GE(response.timing().total_us(), response.timing().execute_us());
}

// Issue 18 item 6 over gRPC: QoS is a compile option of the ANE backends (part of the kernel's
// identity), and every evaluation reports the device's own time, labelled, on ane-sim; on cpu the
// time is absent and a QoS is refused.
v1::EvalKernelResponse EvalConv(v1::Anerd::Stub* stub, const std::string& id) {
  v1::EvalKernelRequest request;
  request.set_kernel_id(id);
  v1::Tensor* t = request.add_inputs();
  t->set_name("x");
  t->set_dtype("fp16");
  for (int d : {1, 64, 1, 256}) t->add_shape(d);
  t->set_data(std::string(64 * 256 * 2, '\0'));
  v1::EvalKernelResponse response;
  grpc::ClientContext ctx;
  grpc::Status s = stub->EvalKernel(&ctx, request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response;
}

TEST_F(KernelServiceTest, QosAndDeviceTimeOnTheSimulatorAndTheCpu) {
  std::vector<v1::CompileKernelRequest> upload = ConvUpload();
  upload[0].mutable_header()->mutable_options()->set_backend("ane-sim");
  upload[0].mutable_header()->mutable_options()->set_qos(9);
  v1::CompileKernelResponse sim;
  grpc::Status s = Send(upload, &sim);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(sim.kernel().backend(), "ane-sim");
  EXPECT_THAT(sim.kernel().options(), HasSubstr("qos=9"));
  v1::EvalKernelResponse r = EvalConv(stub_.get(), sim.kernel().id());
  ASSERT_TRUE(r.timing().has_hw_execution_us());
  EXPECT_GT(r.timing().hw_execution_us(), 0);
  EXPECT_EQ(r.timing().hw_time_source(), "simulated");

  // Another QoS is another kernel; no QoS is the seed's 21, not shown in the options.
  upload[0].mutable_header()->mutable_options()->clear_qos();
  v1::CompileKernelResponse plain;
  ASSERT_TRUE(Send(upload, &plain).ok());
  EXPECT_NE(plain.kernel().id(), sim.kernel().id());
  EXPECT_THAT(plain.kernel().options(), ::testing::Not(HasSubstr("qos")));

  v1::CompileKernelResponse cpu;
  upload[0].mutable_header()->mutable_options()->set_backend("cpu");
  ASSERT_TRUE(Send(upload, &cpu).ok());
  v1::EvalKernelResponse rc = EvalConv(stub_.get(), cpu.kernel().id());
  EXPECT_FALSE(rc.timing().has_hw_execution_us());  // absent, never a made-up 0
  EXPECT_EQ(rc.timing().hw_time_source(), "");

  upload[0].mutable_header()->mutable_options()->set_qos(21);
  v1::CompileKernelResponse refused;
  s = Send(upload, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("options.qos"));
  upload[0].mutable_header()->mutable_options()->set_backend("ane-sim");
  upload[0].mutable_header()->mutable_options()->set_qos(64);
  s = Send(upload, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("options.qos: 64 is outside 0..63"));
}

// `probe qos` sweeps the seed's QoS values on ane-sim: one row per value with its latency and
// the simulated device time; on cpu there is nothing to sweep and no row.
TEST_F(KernelServiceTest, QosProbeSweepsOnTheSimulator) {
  for (const std::string backend : {"ane-sim", "cpu"}) {
    v1::RunProbeRequest request;
    request.set_probe("qos");
    request.set_backend(backend);
    request.set_repeat(2);
    request.set_warmup(0);
    grpc::ClientContext ctx;
    auto reader = stub_->RunProbe(&ctx, request);
    std::vector<v1::ProbeRow> rows;
    v1::ProbeSummary summary;
    v1::RunProbeResponse m;
    while (reader->Read(&m)) {
      if (m.has_row()) rows.push_back(m.row());
      if (m.has_summary()) summary = m.summary();
    }
    grpc::Status s = reader->Finish();
    ASSERT_TRUE(s.ok()) << backend << ": " << s.error_message();
    ASSERT_EQ(summary.findings_size(), 1) << backend;
    if (backend == "cpu") {
      EXPECT_TRUE(rows.empty());
      EXPECT_EQ(summary.findings(0).kind(), "not_applicable");
      continue;
    }
    EXPECT_EQ(summary.findings(0).kind(), "qos");
    ASSERT_EQ(rows.size(), 17u);
    EXPECT_EQ(rows.front().qos(), 0u);
    EXPECT_EQ(rows.back().qos(), 63u);
    for (const v1::ProbeRow& row : rows) {
      EXPECT_EQ(row.probe(), "qos");
      EXPECT_TRUE(row.has_qos());
      EXPECT_EQ(row.iterations(), 2);
      EXPECT_GT(row.p50_us(), 0);
      ASSERT_TRUE(row.has_hw_us_per_eval());
      // The model: the same kernel costs the same at every QoS (m5result.md: no difference).
      EXPECT_DOUBLE_EQ(row.hw_us_per_eval(), rows.front().hw_us_per_eval());
      EXPECT_EQ(row.hw_time_source(), "simulated");
    }
  }
}

TEST_F(KernelServiceTest, GetListDeleteUseNotFoundForUnknownIds) {
  const std::string id = CompileConv();
  grpc::ClientContext c1;
  v1::GetKernelRequest get;
  get.set_kernel_id(id);
  v1::KernelInfo info;
  ASSERT_TRUE(stub_->GetKernel(&c1, get, &info).ok());
  EXPECT_EQ(info.name(), "conv");
  EXPECT_TRUE(info.loaded());

  grpc::ClientContext c2;
  v1::DeleteKernelRequest del;
  del.set_kernel_id(id);
  v1::DeleteKernelResponse deleted;
  ASSERT_TRUE(stub_->DeleteKernel(&c2, del, &deleted).ok());
  grpc::ClientContext c3, c4, c5;
  EXPECT_EQ(stub_->GetKernel(&c3, get, &info).error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(stub_->DeleteKernel(&c4, del, &deleted).error_code(), grpc::NOT_FOUND);
  v1::EvalKernelRequest eval;
  eval.set_kernel_id(id);
  v1::EvalKernelResponse out;
  EXPECT_EQ(stub_->EvalKernel(&c5, eval, &out).error_code(), grpc::NOT_FOUND);
}

}  // namespace
}  // namespace anerd::service
