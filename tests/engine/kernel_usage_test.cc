// Kernel hit counters reach the store off the device threads (issue 22: the interactive_wait
// bench's open-loop stall). Every 256th evaluation used to write them itself, on the executor
// thread (or on the caller's thread while the idle device was lent to it), so that evaluation's
// reply, and the training step queued behind it, waited for the database's lock and an fsync
// (~0.5 s while stories110m trained). The test watches the store's connection for the counter
// UPDATEs and asserts on which kind of thread they ran: no timing.
#include <sqlite3.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/blocking_io_guard.h"
#include "gtest/gtest.h"
#include "server/backend/registry.h"
#include "server/cache/compile_cache.h"
#include "server/cache/kernel_store.h"
#include "server/engine/kernel_manager.h"
#include "server/store/store.h"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/temp_dir.h"

namespace anerd::engine {
namespace {

// UPDATEs of the kernels table, by whether they ran on a device thread.
struct CounterWrites {
  std::atomic<int> on_device{0};
  std::atomic<int> elsewhere{0};
};

void OnUpdate(void* arg, int op, const char* /*db*/, const char* table, sqlite3_int64 /*row*/) {
  if (op != SQLITE_UPDATE || std::string(table) != "kernels") return;
  auto* writes = static_cast<CounterWrites*>(arg);
  (OnDeviceThread() ? writes->on_device : writes->elsewhere).fetch_add(1);
}

std::vector<backend::NamedTensor> ScaleInput() {
  return {{"x", backend::Tensor::FromFloats(mil::DType::kFp32, {1, 4, 1, 8},
                                            std::vector<float>(32, 1.0f))}};
}

TEST(KernelUsageTest, HitCountersAreWrittenOffTheDeviceThreads) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<store::Store>> state = store::Store::Open(dir.path() + "/state");
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<std::unique_ptr<cache::KernelStore>> kernels =
      cache::KernelStore::Open(state->get());
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  absl::StatusOr<std::unique_ptr<backend::Backend>> cpu =
      backend::CreateBackend("cpu", backend::RegistryOptions{});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(cpu));
  backend::BackendRegistry registry(std::move(backends), {});
  DeviceExecutor executor("cpu");
  cache::CompileCache cache(64 << 20);
  auto manager = std::make_unique<KernelManager>(
      &registry, std::map<std::string, DeviceExecutor*>{{"cpu", &executor}}, kernels->get(), &cache,
      "cpu", KernelLimits{});

  KernelCompileRequest request;
  request.mil_text = testing::ScaleMilText(4, 0.5);
  std::promise<absl::StatusOr<KernelCompileResult>> compiled;
  manager->Compile(std::move(request), {}, [&](auto r) { compiled.set_value(std::move(r)); });
  absl::StatusOr<KernelCompileResult> kernel = compiled.get_future().get();
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  const std::string id = kernel->info.record.id;

  CounterWrites writes;  // from here on: only the evaluations' counters update the kernels table
  {
    absl::MutexLock lock(&(*state)->mu());
    sqlite3_update_hook((*state)->db().get(), &OnUpdate, &writes);
  }
  // 256 evaluations queued behind a task that holds the executor, so they run on its thread.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  executor.Submit({}, "blocker", [released](absl::Status, absl::Duration) { released.wait(); });
  constexpr int kQueued = 256;
  std::vector<std::promise<absl::StatusOr<KernelEvalResult>>> queued(kQueued);
  for (int i = 0; i < kQueued; ++i) {
    manager->Eval(id, ScaleInput(), {},
                  [&queued, i](auto r) { queued[i].set_value(std::move(r)); });
  }
  release.set_value();
  for (auto& p : queued) ASSERT_TRUE(p.get_future().get().ok());
  // 256 more on the idle executor: the device is lent to this thread (or, while the executor
  // still finishes the last queued one, they run on its thread).
  for (int i = 0; i < 256; ++i) {
    std::promise<absl::StatusOr<KernelEvalResult>> p;
    manager->Eval(id, ScaleInput(), {}, [&p](auto r) { p.set_value(std::move(r)); });
    ASSERT_TRUE(p.get_future().get().ok());
  }
  executor.Shutdown();
  manager.reset();  // the usage writer is joined and what is pending is written
  {
    absl::MutexLock lock(&(*state)->mu());
    sqlite3_update_hook((*state)->db().get(), nullptr, nullptr);
  }
  EXPECT_EQ(writes.on_device.load(), 0) << "a hit-counter write ran on a device thread";
  EXPECT_GE(writes.elsewhere.load(), 1);
  absl::StatusOr<cache::KernelRecord> record = (*kernels)->Get(id);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_GE(record->hits, 512u) << "every evaluation is counted";
}

}  // namespace
}  // namespace anerd::engine
