// The kernel store's I/O stays off the device threads (common/blocking_io_guard.h): a compile
// reads, checks and commits the kernel's record and blobs (anerd.db, blob files) on the kernel
// manager's store thread, and an evaluation of a kernel not in the compile cache reads its record
// and blobs there before the program is rebuilt on the executor. Until then all of it ran on the
// executor, where the compile's fsynced blob writes and record commit held the device (and the
// training step queued behind it). The guard counts every kernel-store call on a device thread;
// the tests assert the count stays zero, and that moving the I/O kept compiles of one kernel
// single, a delete during a compile consistent and a shutdown with a commit queued clean. They
// assert outcomes and orders, never times.
#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/blocking_io_guard.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/cache/compile_cache.h"
#include "server/cache/kernel_store.h"
#include "server/engine/kernel_manager.h"
#include "server/store/store.h"
#include "tests/engine/conv_kernel_requests.h"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/temp_dir.h"

namespace anerd::engine {
namespace {

using kernel_test::ConvInput;
using kernel_test::ConvInputs;
using kernel_test::ConvRequest;
using kernel_test::ScaleRequest;
using CompileResult = absl::StatusOr<KernelCompileResult>;
using EvalResult = absl::StatusOr<KernelEvalResult>;

class KernelStoreIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> state =
        store::Store::Open(dir_.path() + "/state");
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = *std::move(state);
    absl::StatusOr<std::unique_ptr<cache::KernelStore>> kernels =
        cache::KernelStore::Open(state_.get());
    ASSERT_TRUE(kernels.ok()) << kernels.status();
    kernels_ = *std::move(kernels);
    absl::StatusOr<std::unique_ptr<backend::Backend>> cpu =
        backend::CreateBackend("cpu", backend::RegistryOptions{});
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    std::vector<std::unique_ptr<backend::Backend>> backends;
    backends.push_back(*std::move(cpu));
    registry_ = std::make_unique<backend::BackendRegistry>(
        std::move(backends), std::vector<backend::UnavailableBackend>{});
    executor_ = std::make_unique<DeviceExecutor>("cpu");
    cache_ = std::make_unique<cache::CompileCache>(64 << 20);
    MakeManager(KernelLimits{});
    ResetBlockingIoViolations();
  }

  // A new manager (nothing may be queued for the old one).
  void MakeManager(KernelLimits limits) {
    manager_.reset();
    manager_ = std::make_unique<KernelManager>(
        registry_.get(), std::map<std::string, DeviceExecutor*>{{"cpu", executor_.get()}},
        kernels_.get(), cache_.get(), "cpu", limits);
    KernelObserver observer;
    observer.compiled = [this](const std::string&, double) {
      ++compiles_;
      std::function<void()> hook;
      {
        absl::MutexLock lock(&hook_mu_);
        hook = on_compiled_;
      }
      if (hook) hook();
    };
    manager_->SetObserver(std::move(observer));
  }

  void TearDown() override {
    if (executor_ != nullptr) executor_->Shutdown();  // first: no manager task runs after
    manager_.reset();
  }

  static std::string Violations() { return absl::StrJoin(BlockingIoViolationNames(), "; "); }

  std::future<CompileResult> StartCompile(KernelCompileRequest request) {
    auto p = std::make_shared<std::promise<CompileResult>>();
    std::future<CompileResult> f = p->get_future();
    manager_->Compile(std::move(request), {}, [p](CompileResult r) { p->set_value(std::move(r)); });
    return f;
  }
  CompileResult Compile(KernelCompileRequest request) {
    return StartCompile(std::move(request)).get();
  }
  std::future<EvalResult> StartEval(const std::string& id, std::vector<backend::NamedTensor> in) {
    auto p = std::make_shared<std::promise<EvalResult>>();
    std::future<EvalResult> f = p->get_future();
    manager_->Eval(id, std::move(in), {}, [p](EvalResult r) { p->set_value(std::move(r)); });
    return f;
  }
  EvalResult Eval(const std::string& id, std::vector<backend::NamedTensor> in) {
    return StartEval(id, std::move(in)).get();
  }

  // Holds the executor from when BlockExecutor returns until Release (or destruction, so that a
  // failed assertion does not leave the executor held).
  class Blocker {
   public:
    ~Blocker() { Release(); }
    void Release() {
      if (!released_) release_.set_value();
      released_ = true;
    }

   private:
    friend class KernelStoreIoTest;
    std::promise<void> release_;
    bool released_ = false;
  };
  std::unique_ptr<Blocker> BlockExecutor() {
    auto blocker = std::make_unique<Blocker>();
    std::shared_future<void> released = blocker->release_.get_future().share();
    auto started = std::make_shared<std::promise<void>>();
    std::future<void> running = started->get_future();
    executor_->Submit({}, "blocker", [released, started](absl::Status, absl::Duration) {
      started->set_value();
      released.wait();
    });
    running.wait();
    return blocker;
  }

  // Waits until `n` tasks are queued on the executor. The bound only turns a hang into a failure.
  bool QueuedOnExecutor(size_t n) {
    for (int i = 0; i < 60000; ++i) {
      if (executor_->queued() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> state_;
  std::unique_ptr<cache::KernelStore> kernels_;
  std::unique_ptr<backend::BackendRegistry> registry_;
  std::unique_ptr<DeviceExecutor> executor_;
  std::unique_ptr<cache::CompileCache> cache_;
  std::unique_ptr<KernelManager> manager_;
  std::atomic<int> compiles_{0};  // backend compiles (fresh and rebuilds)
  absl::Mutex hook_mu_;
  std::function<void()> on_compiled_ ABSL_GUARDED_BY(hook_mu_);  // on the executor, after one
};

// A kernel with weights compiled (a miss, then a hit with an owner's quota and pass dumps),
// evaluated from the cache, then evicted and evaluated again (rebuilt from the stored record and
// blobs), and evicted once more while its evaluation waits in the executor's queue: not one
// kernel-store call on a device thread. Before the fix the compile committed its blobs and record
// on the executor and the rebuild read them there.
TEST_F(KernelStoreIoTest, CompileAndRebuildDoNoStoreIoOnADeviceThread) {
  KernelCompileRequest first = ConvRequest();
  first.owner = "token:alice";
  first.max_owned = 4;
  CompileResult compiled = Compile(std::move(first));
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_FALSE(compiled->cache_hit);
  const std::string id = compiled->info.record.id;

  // The same kernel again, its weights a deferred (spooled) file, from another owner.
  KernelCompileRequest again = ConvRequest();
  const std::string weights = again.weight_files[0].second;
  again.weight_files.clear();
  again.deferred_weight_files.push_back({"weights/w.bin", weights.size(), [weights] {
                                           return absl::StatusOr<std::string>(weights);
                                         }});
  again.owner = "token:bob";
  again.max_owned = 4;
  again.dump_passes = true;
  CompileResult hit = Compile(std::move(again));
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(hit->info.record.id, id);
  EXPECT_FALSE(hit->cache_hit) << "another client's kernel is reported as its recorded compile";

  const std::vector<float> x = ConvInput(1);
  EvalResult cached = Eval(id, ConvInputs(x));
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_FALSE(cached->timing.recompiled);
  kernel_test::ExpectConvOutputMatches(*cached, x);

  cache_->Erase(id);
  EvalResult rebuilt = Eval(id, ConvInputs(x));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_TRUE(rebuilt->timing.recompiled) << "rebuilt from the stored record and blobs";
  kernel_test::ExpectConvOutputMatches(*rebuilt, x);

  // Evicted after the evaluation was queued with the program in memory.
  std::unique_ptr<Blocker> blocker = BlockExecutor();
  std::future<EvalResult> queued = StartEval(id, ConvInputs(x));
  cache_->Erase(id);
  blocker->Release();
  EvalResult requeued = queued.get();
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_TRUE(requeued->timing.recompiled);
  kernel_test::ExpectConvOutputMatches(*requeued, x);

  executor_->Shutdown();
  manager_.reset();  // drains the store thread (the rebuilds' RecordUse, the hit counters)
  EXPECT_EQ(BlockingIoViolations(), 0u) << "kernel store I/O on a device thread: " << Violations();
  absl::StatusOr<std::vector<std::string>> owners = kernels_->Owners(id);
  ASSERT_TRUE(owners.ok()) << owners.status();
  EXPECT_EQ(*owners, (std::vector<std::string>{"token:alice", "token:bob"}));
  absl::StatusOr<cache::KernelRecord> record = kernels_->Get(id);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_GE(record->hits, 4u) << "a hit and three evaluations";
}

// Two compiles of one kernel at a time: the second waits for the first (in flight while the
// executor is busy) and takes its result as a cache hit; the backend compiles once.
TEST_F(KernelStoreIoTest, TwoCompilesOfOneKernelCompileOnce) {
  std::unique_ptr<Blocker> blocker = BlockExecutor();
  std::future<CompileResult> a = StartCompile(ScaleRequest(0.5));
  std::future<CompileResult> b = StartCompile(ScaleRequest(0.5));
  blocker->Release();
  CompileResult ra = a.get();
  CompileResult rb = b.get();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(ra->info.record.id, rb->info.record.id);
  EXPECT_FALSE(ra->cache_hit);
  EXPECT_TRUE(rb->cache_hit);
  EXPECT_EQ(compiles_.load(), 1);
  EXPECT_EQ(kernels_->Count(), 1);
  EXPECT_EQ(BlockingIoViolations(), 0u) << Violations();
}

// The quota and --max-kernels checks run before the executor compiles and the commit after it:
// compiles in flight count against them as if committed, so concurrent compiles together stay
// within the limits (as when each compile checked and committed in one executor task).
TEST_F(KernelStoreIoTest, ConcurrentCompilesStayWithinTheLimits) {
  KernelLimits limits;
  limits.max_kernels = 2;
  MakeManager(limits);
  auto owned_by = [](double scale, const std::string& owner) {
    KernelCompileRequest r = ScaleRequest(scale);
    r.owner = owner;
    r.max_owned = 1;
    return r;
  };
  std::unique_ptr<Blocker> blocker = BlockExecutor();
  std::future<CompileResult> a = StartCompile(owned_by(1.0, "token:alice"));
  std::future<CompileResult> b = StartCompile(owned_by(2.0, "token:alice"));
  std::future<CompileResult> c = StartCompile(owned_by(3.0, "token:bob"));
  std::future<CompileResult> d = StartCompile(owned_by(4.0, "token:carol"));
  blocker->Release();
  CompileResult ra = a.get(), rb = b.get(), rc = c.get(), rd = d.get();
  EXPECT_TRUE(ra.ok()) << ra.status();
  EXPECT_EQ(rb.status().code(), absl::StatusCode::kResourceExhausted) << rb.status();
  EXPECT_THAT(std::string(rb.status().message()), ::testing::HasSubstr("--quota-kernels=1"));
  EXPECT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(rd.status().code(), absl::StatusCode::kResourceExhausted) << rd.status();
  EXPECT_THAT(std::string(rd.status().message()), ::testing::HasSubstr("--max-kernels"));
  EXPECT_EQ(kernels_->Count(), 2);
  // Refused compiles left no claim behind: once a kernel is gone, its place is free again.
  ASSERT_TRUE(ra.ok());
  ASSERT_TRUE(manager_->Delete(ra->info.record.id).ok());
  EXPECT_TRUE(Compile(owned_by(2.0, "token:alice")).ok());
}

// A kernel deleted while its compile waits for the executor: the compile still lands whole (record,
// blobs, cache), so the id it returns works, also once rebuilt from the store.
TEST_F(KernelStoreIoTest, DeleteDuringACompile) {
  CompileResult first = Compile(ConvRequest());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string id = first->info.record.id;
  cache_->Erase(id);  // so the next compile is a miss that reaches the executor
  std::unique_ptr<Blocker> blocker = BlockExecutor();
  std::future<CompileResult> pending = StartCompile(ConvRequest());
  EXPECT_TRUE(QueuedOnExecutor(1)) << "the compile never reached the executor";
  EXPECT_TRUE(manager_->Delete(id).ok());
  blocker->Release();
  CompileResult second = pending.get();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->info.record.id, id);
  EXPECT_FALSE(second->cache_hit);
  ASSERT_TRUE(manager_->Get(id).ok());
  const std::vector<float> x = ConvInput(2);
  EvalResult cached = Eval(id, ConvInputs(x));
  ASSERT_TRUE(cached.ok()) << cached.status();
  kernel_test::ExpectConvOutputMatches(*cached, x);
  cache_->Erase(id);
  EvalResult rebuilt = Eval(id, ConvInputs(x));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_TRUE(rebuilt->timing.recompiled);
  kernel_test::ExpectConvOutputMatches(*rebuilt, x);
  EXPECT_EQ(BlockingIoViolations(), 0u) << Violations();
}

// The manager destroyed (after its executor's shutdown) while a compile's commit waits on the store
// thread behind another compile's read: the commit still lands and its `done` gets OK; the compile
// that had not reached the executor gets UNAVAILABLE; the destructor returns.
TEST_F(KernelStoreIoTest, ShutdownWithAStoreWriteQueued) {
  std::unique_ptr<Blocker> blocker = BlockExecutor();
  // Y reaches the executor's queue; then X's deferred read holds the store thread.
  std::future<CompileResult> y = StartCompile(ScaleRequest(3.0));
  std::promise<void> reading, release_read;
  std::shared_future<void> read_released = release_read.get_future().share();
  KernelCompileRequest x = ConvRequest();
  const std::string weights = x.weight_files[0].second;
  x.weight_files.clear();
  x.deferred_weight_files.push_back(
      {"weights/w.bin", weights.size(), [&reading, read_released, weights] {
         reading.set_value();
         read_released.wait();
         return absl::StatusOr<std::string>(weights);
       }});
  std::future<CompileResult> xf = StartCompile(std::move(x));
  reading.get_future().wait();
  // Y compiles; its commit queues behind X's read.
  std::promise<void> y_compiled;
  {
    absl::MutexLock lock(&hook_mu_);
    on_compiled_ = [&y_compiled] { y_compiled.set_value(); };
  }
  blocker->Release();
  y_compiled.get_future().wait();
  executor_->Shutdown();  // joins the executor thread: Y's commit is queued by now
  std::thread destroy([this] { manager_.reset(); });
  release_read.set_value();
  destroy.join();
  CompileResult ry = y.get();
  ASSERT_TRUE(ry.ok()) << ry.status();
  EXPECT_EQ(xf.get().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(kernels_->Get(ry->info.record.id).ok()) << "the queued commit landed";
  EXPECT_EQ(kernels_->Count(), 1);
  EXPECT_EQ(BlockingIoViolations(), 0u) << Violations();
}

}  // namespace
}  // namespace anerd::engine
