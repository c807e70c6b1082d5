// The engine's kernel path: compile cache hits and misses, persistence across restarts, eviction,
// corrupt blobs, limits, bad input, cancellation, and concurrent clients.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/engine/conv_kernel_requests.h"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/process_harness.h"

namespace anerd::engine {
namespace {

using kernel_test::ConvInput;
using kernel_test::ConvInputs;
using kernel_test::ConvRequest;
using kernel_test::ScaleRequest;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

class KernelManagerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> MakeEngine(EngineOptions options = {}) {
    options.state_dir = dir_.path() + "/state";
    fs::create_directories(options.state_dir);
    absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  static absl::StatusOr<KernelCompileResult> Compile(Engine& e, KernelCompileRequest r,
                                                     RequestControl c = {}) {
    std::promise<absl::StatusOr<KernelCompileResult>> p;
    e.kernels().Compile(std::move(r), c, [&](auto result) { p.set_value(std::move(result)); });
    return p.get_future().get();
  }

  static absl::StatusOr<KernelEvalResult> Eval(Engine& e, const std::string& id,
                                               std::vector<backend::NamedTensor> inputs,
                                               RequestControl c = {}) {
    std::promise<absl::StatusOr<KernelEvalResult>> p;
    e.kernels().Eval(id, std::move(inputs), c,
                     [&](auto result) { p.set_value(std::move(result)); });
    return p.get_future().get();
  }

  static void ExpectConvCorrect(const KernelEvalResult& result, const std::vector<float>& x) {
    ASSERT_EQ(result.outputs.size(), 1u);
    EXPECT_EQ(result.outputs[0].name, "y");
    kernel_test::ExpectConvOutputMatches(result, x);
  }

  testing::TempDir dir_;
};

TEST_F(KernelManagerTest, CompileIsCachedByContent) {
  auto engine = MakeEngine();
  absl::StatusOr<KernelCompileResult> first = Compile(*engine, ConvRequest());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->cache_hit);
  EXPECT_EQ(first->info.record.id.size(), 64u);
  EXPECT_EQ(first->info.inputs[0].type.shape, (std::vector<int64_t>{1, 64, 1, 256}));
  EXPECT_EQ(first->info.outputs[0].name, "y");
  absl::StatusOr<KernelCompileResult> second = Compile(*engine, ConvRequest());
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->cache_hit);
  EXPECT_EQ(second->info.record.id, first->info.record.id);
  EXPECT_EQ(engine->Info().backends[0].compiles_used, 1u);
  // Different options or weights give a different id.
  KernelCompileRequest fp32 = ConvRequest();
  fp32.options.numerics = backend::NumericsMode::kFp32;
  absl::StatusOr<KernelCompileResult> third = Compile(*engine, fp32);
  ASSERT_TRUE(third.ok());
  EXPECT_NE(third->info.record.id, first->info.record.id);
  KernelCompileRequest other_weights = ConvRequest();
  other_weights.weight_files[0].second[200] ^= 0x10;
  absl::StatusOr<KernelCompileResult> fourth = Compile(*engine, other_weights);
  ASSERT_TRUE(fourth.ok());
  EXPECT_NE(fourth->info.record.id, first->info.record.id);
  EXPECT_EQ(engine->Info().cache.kernels_stored, 3);
}

TEST_F(KernelManagerTest, EvaluatesCorrectly) {
  auto engine = MakeEngine();
  absl::StatusOr<KernelCompileResult> compiled = Compile(*engine, ConvRequest());
  ASSERT_TRUE(compiled.ok());
  const std::vector<float> x = ConvInput(1);
  absl::StatusOr<KernelEvalResult> result = Eval(*engine, compiled->info.record.id, ConvInputs(x));
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectConvCorrect(*result, x);
  EXPECT_FALSE(result->timing.recompiled);
  EXPECT_GT(result->timing.execute_us, 0);
}

TEST_F(KernelManagerTest, IdsSurviveRestartAndRecompileLazily) {
  std::string id;
  {
    auto engine = MakeEngine();
    absl::StatusOr<KernelCompileResult> compiled = Compile(*engine, ConvRequest());
    ASSERT_TRUE(compiled.ok());
    id = compiled->info.record.id;
    ASSERT_TRUE(Eval(*engine, id, ConvInputs(ConvInput(2))).ok());
  }
  auto engine = MakeEngine();
  absl::StatusOr<KernelInfo> info = engine->kernels().Get(id);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->loaded);
  EXPECT_EQ(info->record.name, "conv");
  EXPECT_GE(info->record.hits, 1u) << "usage counters are flushed at shutdown";
  const std::vector<float> x = ConvInput(3);
  absl::StatusOr<KernelEvalResult> result = Eval(*engine, id, ConvInputs(x));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->timing.recompiled);
  ExpectConvCorrect(*result, x);
  EXPECT_TRUE(engine->kernels().Get(id)->loaded);
}

TEST_F(KernelManagerTest, CorruptBlobIsReportedNotCrashedOn) {
  std::string id;
  {
    auto engine = MakeEngine();
    absl::StatusOr<KernelCompileResult> compiled = Compile(*engine, ConvRequest());
    ASSERT_TRUE(compiled.ok());
    id = compiled->info.record.id;
  }
  int corrupted = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_.path() + "/state/blobs")) {
    if (!e.is_regular_file() || fs::file_size(e.path()) < 1000) continue;  // the weight file
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(300);
    f.put('\x7f');
    ++corrupted;
  }
  ASSERT_EQ(corrupted, 1);
  auto engine = MakeEngine();
  absl::StatusOr<KernelEvalResult> result = Eval(*engine, id, ConvInputs(ConvInput(4)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  EXPECT_TRUE(engine->kernels().Get(id).ok()) << "the record itself is still listed";
}

TEST_F(KernelManagerTest, EvictsUnderTheByteBoundAndReloads) {
  uint64_t one = 0;  // what the cache counts for one scale program (its planned memory)
  {
    auto sizing = MakeEngine();
    ASSERT_TRUE(Compile(*sizing, ScaleRequest(9.0)).ok());
    one = sizing->Info().cache.bytes;
  }
  EngineOptions options;
  options.cache_bytes = 2 * one + one / 2;  // room for two
  auto engine = MakeEngine(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<KernelCompileResult> c = Compile(*engine, ScaleRequest(1.0 + i));
    ASSERT_TRUE(c.ok()) << c.status();
    ids.push_back(c->info.record.id);
  }
  DaemonInfo info = engine->Info();
  EXPECT_GT(info.cache.evictions, 0u);
  EXPECT_LE(info.cache.bytes, options.cache_bytes);
  EXPECT_FALSE(engine->kernels().Get(ids[0])->loaded) << "least recently used went first";
  std::vector<backend::NamedTensor> in = {
      {"x",
       backend::Tensor::FromFloats(mil::DType::kFp32, {1, 4, 1, 8}, std::vector<float>(32, 2.0f))}};
  absl::StatusOr<KernelEvalResult> r = Eval(*engine, ids[0], in);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timing.recompiled);
  EXPECT_FLOAT_EQ(r->outputs[0].tensor.ToFloats()[5], 2.0f * 1.0f + 2.0f);
}

TEST_F(KernelManagerTest, LimitsNameTheirFlag) {
  EngineOptions options;
  options.kernel_limits.max_mil_bytes = 100;
  options.kernel_limits.max_weight_bytes = 1000;
  options.kernel_limits.max_kernels = 1;
  auto engine = MakeEngine(options);
  absl::Status mil = Compile(*engine, ConvRequest()).status();
  EXPECT_EQ(mil.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mil.message(), HasSubstr("--max-mil-bytes"));

  EngineOptions weights_options;
  weights_options.kernel_limits.max_weight_bytes = 1000;
  weights_options.kernel_limits.max_kernels = 1;
  auto engine2 = MakeEngine(weights_options);
  absl::Status w = Compile(*engine2, ConvRequest()).status();
  EXPECT_EQ(w.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(w.message(), HasSubstr("--max-weight-bytes"));

  ASSERT_TRUE(Compile(*engine2, ScaleRequest(1.0)).ok());
  EXPECT_TRUE(Compile(*engine2, ScaleRequest(1.0)).ok()) << "recompiling a stored kernel is fine";
  absl::Status n = Compile(*engine2, ScaleRequest(2.0)).status();
  EXPECT_EQ(n.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(n.message(), HasSubstr("--max-kernels"));
}

TEST_F(KernelManagerTest, BadInputGetsClearErrors) {
  auto engine = MakeEngine();
  KernelCompileRequest bad = ScaleRequest(1.0);
  bad.mil_text.replace(bad.mil_text.find("mul("), 4, "mull(");
  absl::Status parse = Compile(*engine, bad).status();
  EXPECT_EQ(parse.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parse.message(), HasSubstr("mull"));
  EXPECT_THAT(parse.message(), HasSubstr("5:"));

  KernelCompileRequest backend = ScaleRequest(1.0);
  backend.backend = "tpu";
  EXPECT_THAT(Compile(*engine, backend).status().message(), HasSubstr("unknown backend 'tpu'"));

  KernelCompileRequest missing = ConvRequest();
  missing.weight_files.clear();
  absl::Status blob = Compile(*engine, missing).status();
  EXPECT_EQ(blob.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(blob.message(), HasSubstr("w.bin"));

  KernelCompileRequest escape = ConvRequest();
  escape.weight_files[0].first = "../etc/passwd";
  EXPECT_EQ(Compile(*engine, escape).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(Eval(*engine, std::string(64, 'a'), {}).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<KernelCompileResult> ok = Compile(*engine, ConvRequest());
  ASSERT_TRUE(ok.ok());
  std::vector<backend::NamedTensor> wrong = {
      {"x", backend::Tensor::FromFloats(mil::DType::kFp32, {1, 64, 1, 256},
                                        std::vector<float>(64 * 256))}};
  absl::Status type = Eval(*engine, ok->info.record.id, wrong).status();
  EXPECT_EQ(type.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.message(), HasSubstr("x"));
  EXPECT_THAT(type.message(), HasSubstr("fp16"));
  EXPECT_EQ(Eval(*engine, ok->info.record.id, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(KernelManagerTest, DeleteRemovesTheKernel) {
  auto engine = MakeEngine();
  absl::StatusOr<KernelCompileResult> c = Compile(*engine, ConvRequest());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(engine->kernels().Delete(c->info.record.id).ok());
  EXPECT_EQ(engine->kernels().Get(c->info.record.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine->kernels().Delete(c->info.record.id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Eval(*engine, c->info.record.id, ConvInputs(ConvInput(5))).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(engine->kernels().List()->empty());
}

// The evaluation reads the kernel's record when it runs, not when it is queued: a kernel deleted
// while the evaluation waited is reported as the missing kernel. (When the record was read on the
// caller's thread, the queued evaluation went on to rebuild from blobs the delete had removed and
// failed naming a missing blob.) The record is read on the manager's store thread, never on the
// executor: the evaluation that finds its program gone goes back there for it.
TEST_F(KernelManagerTest, EvalReadsTheRecordWhenItRuns) {
  auto engine = MakeEngine();
  absl::StatusOr<KernelCompileResult> c = Compile(*engine, ConvRequest());
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string id = c->info.record.id;
  DeviceExecutor* executor = engine->executor(c->info.record.backend);
  ASSERT_NE(executor, nullptr);
  // Occupies the executor until released, so the evaluation waits in its queue. It must be running
  // first: a queued evaluation (interactive class) would go before a queued blocker (training).
  std::promise<void> release, busy;
  std::shared_future<void> released = release.get_future().share();
  executor->Submit({}, "blocker", [&busy, released](absl::Status, absl::Duration) {
    busy.set_value();
    released.wait();
  });
  busy.get_future().wait();
  std::promise<absl::StatusOr<KernelEvalResult>> eval;
  engine->kernels().Eval(id, ConvInputs(ConvInput(1)), {},
                         [&](auto result) { eval.set_value(std::move(result)); });
  ASSERT_TRUE(engine->kernels().Delete(id).ok());
  release.set_value();
  absl::StatusOr<KernelEvalResult> result = eval.get_future().get();
  EXPECT_EQ(result.status(), cache::KernelNotFound(id));
}

TEST_F(KernelManagerTest, CancelledOrExpiredRequestsAreSkipped) {
  auto engine = MakeEngine();
  RequestControl cancelled;
  cancelled.cancelled->store(true);
  EXPECT_EQ(Compile(*engine, ConvRequest(), cancelled).status().code(),
            absl::StatusCode::kCancelled);
  RequestControl expired;
  expired.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_EQ(Compile(*engine, ConvRequest(), expired).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(engine->Info().backends[0].compiles_used, 0u) << "skipped work never ran";
}

TEST_F(KernelManagerTest, ConcurrentClientsCompileOncePerKey) {
  auto engine = MakeEngine();
  constexpr int kClients = 8;
  std::vector<std::thread> threads;
  std::vector<std::string> failures(kClients);
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int round = 0; round < 5; ++round) {
        // Half the clients share one program; the others each have their own.
        const double scale = c % 2 == 0 ? 0.5 : 1.0 + c;
        absl::StatusOr<KernelCompileResult> k = Compile(*engine, ScaleRequest(scale));
        if (!k.ok()) {
          failures[c] = k.status().ToString();
          return;
        }
        std::vector<float> x(32);
        for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(c * 100 + round * 10 + i);
        absl::StatusOr<KernelEvalResult> r =
            Eval(*engine, k->info.record.id,
                 {{"x", backend::Tensor::FromFloats(mil::DType::kFp32, {1, 4, 1, 8}, x)}});
        if (!r.ok()) {
          failures[c] = r.status().ToString();
          return;
        }
        const std::vector<float> y = r->outputs[0].tensor.ToFloats();
        for (int i = 0; i < 32; ++i) {
          if (y[i] != static_cast<float>(x[i] * scale + x[i])) {
            failures[c] = absl::StrCat("wrong value at ", i);
            return;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(failures[c], "") << "client " << c;
  // One shared program + four distinct ones, each compiled exactly once.
  EXPECT_EQ(engine->Info().backends[0].compiles_used, 5u);
  EXPECT_EQ(engine->kernels().List()->size(), 5u);
}

}  // namespace
}  // namespace anerd::engine
