#include "server/cache/compile_cache.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace anerd::cache {
namespace {

// A CompiledProgram that only records its destruction.
class FakeProgram : public backend::CompiledProgram {
 public:
  explicit FakeProgram(std::atomic<int>* destroyed) : destroyed_(destroyed) {}
  ~FakeProgram() override { destroyed_->fetch_add(1); }
  const std::vector<backend::TensorSignature>& inputs() const override { return signatures_; }
  const std::vector<backend::TensorSignature>& outputs() const override { return signatures_; }
  absl::StatusOr<backend::RunResult> Run(const std::vector<backend::NamedTensor>&) override {
    return absl::UnimplementedError("fake");
  }

 private:
  std::atomic<int>* destroyed_;
  std::vector<backend::TensorSignature> signatures_;
};

class CompileCacheTest : public ::testing::Test {
 protected:
  std::shared_ptr<backend::CompiledProgram> NewProgram() {
    return std::make_shared<FakeProgram>(&destroyed_);
  }
  std::atomic<int> destroyed_{0};
};

TEST_F(CompileCacheTest, CountsHitsAndMisses) {
  CompileCache cache(1000);
  EXPECT_EQ(cache.Lookup("a"), nullptr);
  auto program = NewProgram();
  cache.Insert("a", program, 10);
  EXPECT_EQ(cache.Lookup("a"), program);
  EXPECT_EQ(cache.Lookup("a"), program);
  EXPECT_EQ(cache.Lookup("b"), nullptr);
  const CacheStats stats = cache.Stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.bytes, 10u);
  EXPECT_EQ(stats.capacity_bytes, 1000u);
  EXPECT_EQ(stats.evictions, 0u);
}

TEST_F(CompileCacheTest, EvictsLeastRecentlyUsedUnderTheByteBound) {
  CompileCache cache(100);
  cache.Insert("a", NewProgram(), 40);
  cache.Insert("b", NewProgram(), 40);
  ASSERT_NE(cache.Lookup("a"), nullptr);  // b is now least recently used
  cache.Insert("c", NewProgram(), 40);
  EXPECT_TRUE(cache.Contains("a"));
  EXPECT_FALSE(cache.Contains("b"));
  EXPECT_TRUE(cache.Contains("c"));
  EXPECT_EQ(destroyed_.load(), 1);
  CacheStats stats = cache.Stats();
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.bytes, 80u);
  EXPECT_EQ(stats.evictions, 1u);

  // A large entry pushes out as many old ones as needed, oldest first.
  cache.Insert("d", NewProgram(), 90);
  EXPECT_FALSE(cache.Contains("a"));
  EXPECT_FALSE(cache.Contains("c"));
  EXPECT_TRUE(cache.Contains("d"));
  stats = cache.Stats();
  EXPECT_EQ(stats.bytes, 90u);
  EXPECT_EQ(stats.evictions, 3u);
  EXPECT_EQ(destroyed_.load(), 3);
}

TEST_F(CompileCacheTest, AnEvictedEntryHeldByACallerStaysAlive) {
  CompileCache cache(50);
  cache.Insert("a", NewProgram(), 50);
  std::shared_ptr<backend::CompiledProgram> held = cache.Lookup("a");
  ASSERT_NE(held, nullptr);
  cache.Insert("b", NewProgram(), 50);  // evicts a
  EXPECT_FALSE(cache.Contains("a"));
  EXPECT_EQ(destroyed_.load(), 0);
  EXPECT_EQ(held->Run({}).status().code(), absl::StatusCode::kUnimplemented);  // still usable
  held.reset();
  EXPECT_EQ(destroyed_.load(), 1);
}

TEST_F(CompileCacheTest, OversizeEntryIsReturnedButNotKept) {
  CompileCache cache(100);
  cache.Insert("big", NewProgram(), 10);
  auto program = NewProgram();
  cache.Insert("big", program, 101);  // replaces the old entry, then declines to keep it
  EXPECT_FALSE(cache.Contains("big"));
  EXPECT_EQ(destroyed_.load(), 1);  // only the replaced one
  EXPECT_EQ(program.use_count(), 1);
  const CacheStats stats = cache.Stats();
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.evictions, 0u);
}

TEST_F(CompileCacheTest, ReplaceAndErase) {
  CompileCache cache(100);
  cache.Insert("a", NewProgram(), 30);
  auto replacement = NewProgram();
  cache.Insert("a", replacement, 20);
  EXPECT_EQ(cache.Stats().entries, 1u);
  EXPECT_EQ(cache.Stats().bytes, 20u);
  EXPECT_EQ(cache.Lookup("a"), replacement);
  cache.Erase("a");
  cache.Erase("never there");
  EXPECT_FALSE(cache.Contains("a"));
  EXPECT_EQ(cache.Stats().bytes, 0u);
  EXPECT_EQ(cache.Stats().evictions, 0u);
}

TEST_F(CompileCacheTest, ConcurrentUseKeepsCountsConsistent) {
  CompileCache cache(1000);
  constexpr int kThreads = 4, kOps = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        const std::string key = absl::StrCat("k", (i * 7 + t) % 40);
        if (cache.Lookup(key) == nullptr) cache.Insert(key, NewProgram(), 100);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const CacheStats stats = cache.Stats();
  EXPECT_EQ(stats.hits + stats.misses, uint64_t{kThreads * kOps});
  EXPECT_LE(stats.bytes, 1000u);
  EXPECT_EQ(stats.bytes, stats.entries * 100);
  EXPECT_GT(stats.evictions, 0u);
}

}  // namespace
}  // namespace anerd::cache
