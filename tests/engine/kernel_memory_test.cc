// Kernel memory is counted (issue 16 item 6): the compile cache counts what the CPU backend
// planned for a program (buffers, scratch, decoded constants) instead of an estimate from its
// text, evicts by it, and a program needing more than --max-kernel-memory-bytes or the whole
// --cache-bytes is refused with RESOURCE_EXHAUSTED before its buffers are allocated. Before the
// fix a 300-byte program with a 20000^2 matmul compiled (allocating gigabytes) and the cache
// reported a few kilobytes. The same limit holds on ane-sim, in-process and in its worker (before
// that fix ane-sim compiled with no limit at all).
#include <filesystem>
#include <future>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/testing/process_harness.h"

namespace anerd::engine {
namespace {

using ::testing::HasSubstr;

// y = a @ b with a, b fp32 [1, 1, n, n]: three n*n fp32 buffers once planned, plus the GEMM's
// operand scratch (kernels.h, MatmulScratchFloats).
std::string MatmulMil(int n) {
  const std::string t = absl::StrCat("tensor<fp32, [1, 1, ", n, ", ", n, "]>");
  return absl::StrCat("program(1.3)\n{\n    func main<ios18>(", t, " a, ", t, " b) {\n",
                      "        bool f = const()[name = string(\"f\"), val = bool(false)];\n",
                      "        ", t,
                      " y = matmul(transpose_x = f, transpose_y = f, x = a, y = b)"
                      "[name = string(\"y\")];\n",
                      "    } -> (y);\n}\n");
}

// The three n*n buffers alone: a lower bound of what the program holds.
uint64_t MatmulBytes(int n) { return uint64_t{3} * n * n * sizeof(float); }

class KernelMemoryTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> MakeEngine(EngineOptions options = {}) {
    options.state_dir = dir_.path() + "/state";
    absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }
  static absl::StatusOr<KernelCompileResult> Compile(Engine& e, int n) {
    KernelCompileRequest r;
    r.mil_text = MatmulMil(n);
    std::promise<absl::StatusOr<KernelCompileResult>> p;
    e.kernels().Compile(std::move(r), {}, [&](auto result) { p.set_value(std::move(result)); });
    return p.get_future().get();
  }
  testing::TempDir dir_;
};

TEST_F(KernelMemoryTest, TheCacheCountsPlannedBytes) {
  auto engine = MakeEngine({});
  ASSERT_TRUE(Compile(*engine, 256).ok());
  const CacheSummary cache = engine->Info().cache;
  EXPECT_EQ(cache.entries, 1u);
  EXPECT_GE(cache.bytes, MatmulBytes(256));
  EXPECT_LT(cache.bytes, 3 * MatmulBytes(256)) << "buffers and the GEMM's scratch, no more";
}

TEST_F(KernelMemoryTest, EvictsLeastRecentlyUsedByPlannedBytes) {
  uint64_t one = 0;  // what the cache counts for the largest of the three programs
  {
    auto sizing = MakeEngine({});
    ASSERT_TRUE(Compile(*sizing, 256).ok());
    one = sizing->Info().cache.bytes;
  }
  EngineOptions options;
  options.cache_bytes = 2 * one + one / 2;  // room for two
  auto engine = MakeEngine(options);
  for (int n : {256, 255, 254}) ASSERT_TRUE(Compile(*engine, n).ok()) << n;
  const CacheSummary cache = engine->Info().cache;
  EXPECT_EQ(cache.evictions, 1u);
  EXPECT_EQ(cache.entries, 2u);
  EXPECT_LE(cache.bytes, options.cache_bytes);
}

TEST_F(KernelMemoryTest, AKernelLargerThanTheCacheIsRefused) {
  EngineOptions options;
  options.cache_bytes = MatmulBytes(512) / 2;
  auto engine = MakeEngine(options);
  absl::StatusOr<KernelCompileResult> r = Compile(*engine, 512);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("needs "));
  EXPECT_THAT(r.status().message(), HasSubstr("--cache-bytes"));
  EXPECT_EQ(engine->Info().cache.entries, 0u);
}

TEST_F(KernelMemoryTest, APerKernelLimitRefusesBeforeAllocating) {
  EngineOptions options;
  options.kernel_limits.max_kernel_memory_bytes = MatmulBytes(512) / 2;
  auto engine = MakeEngine(options);
  absl::StatusOr<KernelCompileResult> r = Compile(*engine, 512);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("--max-kernel-memory-bytes"));
  engine.reset();
  // A 20000^2 matmul (4.8 GB planned, from a ~300-byte program) under the default limits: refused
  // before anything that large is allocated.
  auto defaults = MakeEngine({});
  absl::StatusOr<KernelCompileResult> huge = Compile(*defaults, 20000);
  ASSERT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted) << huge.status();
  EXPECT_THAT(huge.status().message(), HasSubstr("bytes of memory"));
}

// ane-sim plans through the CPU backend: the planner's bytes are checked against the same limit
// before its buffers are allocated, whether the device runs in-process or in a worker process.
TEST_F(KernelMemoryTest, AneSimRefusesAKernelOverTheLimitInProcessAndInAWorker) {
  for (const bool worker : {false, true}) {
    SCOPED_TRACE(worker ? "in a worker" : "in-process");
    EngineOptions options;
    options.backend = "ane-sim";
    if (worker) options.workers.binary = testing::AnerdBinary();
    options.kernel_limits.max_kernel_memory_bytes = MatmulBytes(512) / 8;
    auto engine = MakeEngine(options);
    ASSERT_NE(engine, nullptr);
    absl::StatusOr<KernelCompileResult> small = Compile(*engine, 64);
    ASSERT_TRUE(small.ok()) << small.status();
    // Counted as planned (fp16 at least), not estimated from the text (a few KB).
    EXPECT_GE(engine->Info().cache.bytes, MatmulBytes(64) / 2);
    absl::StatusOr<KernelCompileResult> r = Compile(*engine, 512);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("bytes of memory"));
    EXPECT_THAT(r.status().message(),
                HasSubstr(absl::StrCat("--max-kernel-memory-bytes=", MatmulBytes(512) / 8)));
    EXPECT_EQ(engine->Info().cache.entries, 1u);
    engine.reset();
    // Fresh state per round.
    std::filesystem::remove_all(dir_.path() + "/state");
  }
}

}  // namespace
}  // namespace anerd::engine
