// ParallelRows (parallel_rows.h): one process-wide pool of polling-then-sleeping helpers.
#include "server/generation/parallel_rows.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace anerd::generation {
namespace {

std::atomic<int> g_threads{0};

// On a loaded machine a helper may lose its core in the middle of a chunk, and the caller then
// waits a scheduler time slice for it: after kStallsBeforeBackoff such calls in a row, the next
// kBackoffCalls calls run inline (a token of stories110m makes ~60 calls).
constexpr auto kStall = std::chrono::microseconds(500);
constexpr int kStallsBeforeBackoff = 2;
constexpr int kBackoffCalls = 64;
std::atomic<int> g_stalls{0}, g_skip{0};

bool BackingOff() {
  int left = g_skip.load(std::memory_order_relaxed);
  while (left > 0) {
    if (g_skip.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

void NoteStall(bool stalled) {
  if (!stalled) {
    g_stalls.store(0, std::memory_order_relaxed);
  } else if (g_stalls.fetch_add(1, std::memory_order_relaxed) + 1 >= kStallsBeforeBackoff) {
    g_stalls.store(0, std::memory_order_relaxed);
    g_skip.store(kBackoffCalls, std::memory_order_relaxed);
  }
}

// One call: chunks of [0, n) handed out in order; `seats` helpers may join.
struct Job {
  RowFn* fn;
  int64_t n, chunk, chunks;
  std::atomic<int64_t> next;
  int seats;  // guarded by the pool's mutex
};

void RunChunks(Job* job) {
  for (;;) {
    const int64_t c = job->next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job->chunks) return;
    (*job->fn)(c * job->chunk, std::min(job->n, (c + 1) * job->chunk));
  }
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class Pool {
 public:
  explicit Pool(int helpers) : helpers_(helpers) {
    for (int i = 0; i < helpers; ++i) std::thread([this] { Loop(); }).detach();
  }
  int helpers() const { return helpers_; }

  // Runs `job` with the caller and up to job->seats helpers; false (nothing run) when another
  // call holds the pool. *stalled: whether the caller waited kStall or more for a helper to finish
  // its chunk after every chunk was taken (the helper lost its core mid-chunk).
  bool TryRun(Job* job, bool* stalled) {
    bool idle = false;
    if (!busy_.compare_exchange_strong(idle, true, std::memory_order_acquire)) return false;
    {
      absl::MutexLock lock(&mu_);
      job_ = job;
      epoch_.fetch_add(1, std::memory_order_release);
      if (sleepers_ > 0) cv_.SignalAll();
    }
    RunChunks(job);
    {
      absl::MutexLock lock(&mu_);
      job_ = nullptr;  // a helper that has not joined yet never will
    }
    // Every chunk is taken; wait for the helpers still running theirs.
    const auto start = std::chrono::steady_clock::now();
    for (int spins = 0; inside_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4096) {
        CpuRelax();
      } else {
        std::this_thread::yield();  // a helper without a core: let it have this one
      }
    }
    *stalled = std::chrono::steady_clock::now() - start >= kStall;
    busy_.store(false, std::memory_order_release);
    return true;
  }

 private:
  void Loop() {
    uint64_t seen = 0;
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + kRowSpin;
      while (epoch_.load(std::memory_order_relaxed) == seen &&
             std::chrono::steady_clock::now() < until) {
        CpuRelax();
      }
      Job* job = nullptr;
      {
        absl::MutexLock lock(&mu_);
        while (epoch_.load(std::memory_order_relaxed) == seen) {
          ++sleepers_;
          cv_.Wait(&mu_);
          --sleepers_;
        }
        seen = epoch_.load(std::memory_order_relaxed);
        if (job_ == nullptr || job_->seats == 0) continue;
        job = job_;
        --job->seats;
        inside_.fetch_add(1, std::memory_order_relaxed);  // under mu_, before the caller's reset
      }
      RunChunks(job);
      inside_.fetch_sub(1, std::memory_order_release);
    }
  }

  const int helpers_;
  std::atomic<bool> busy_{false};
  std::atomic<int> inside_{0};
  std::atomic<uint64_t> epoch_{0};  // written under mu_
  absl::Mutex mu_;
  absl::CondVar cv_;
  Job* job_ ABSL_GUARDED_BY(mu_) = nullptr;
  int sleepers_ ABSL_GUARDED_BY(mu_) = 0;
};

Pool& ThePool() {
  static Pool* const pool = [] {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    return new Pool(std::clamp(cores - 1, 0, kMaxRowHelpers));
  }();
  return *pool;
}

}  // namespace

int SetRowThreads(int threads) { return g_threads.exchange(std::max(threads, 0)); }

void ParallelRows(int64_t n, int64_t grain, RowFn fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int setting = g_threads.load(std::memory_order_relaxed);
  if (setting == 1 || n < 2 * grain) return fn(0, n);
  Pool& pool = ThePool();
  const int helpers = setting == 0 ? pool.helpers() : std::min(pool.helpers(), setting - 1);
  if (helpers == 0 || (setting == 0 && BackingOff())) return fn(0, n);
  const int64_t threads = helpers + 1;
  // About four chunks per thread, so a late helper still gets a fair share.
  const int64_t chunk = std::max(grain, (n + 4 * threads - 1) / (4 * threads));
  Job job{&fn, n, chunk, (n + chunk - 1) / chunk, {0}, helpers};
  bool stalled = false;
  if (!pool.TryRun(&job, &stalled)) return fn(0, n);
  if (setting == 0) NoteStall(stalled);
}

}  // namespace anerd::generation
