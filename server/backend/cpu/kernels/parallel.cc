#include "server/backend/cpu/kernels/parallel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::backend::cpu {
namespace {

std::atomic<int> g_threads{0};

// The helper thread: takes one job at a time; sleeps (no spinning) while idle. Never destroyed.
class Helper {
 public:
  Helper() : pid_(getpid()), thread_([this] { Loop(); }) { thread_.detach(); }

  pid_t pid() const { return pid_; }
  // Reserves the helper for one Start/Finish pair; false if another caller holds it.
  bool TryClaim() {
    bool expected = false;
    return claimed_.compare_exchange_strong(expected, true, std::memory_order_acquire);
  }
  void Start(RangeFn* fn, int64_t begin, int64_t end) {
    absl::MutexLock lock(&mu_);
    job_ = Job{fn, begin, end};
    has_job_ = true;
  }
  void Finish() {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&done_));
      done_ = false;
    }
    claimed_.store(false, std::memory_order_release);
  }

 private:
  struct Job {
    RangeFn* fn = nullptr;
    int64_t begin = 0, end = 0;
  };

  void Loop() {
    for (;;) {
      Job job;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(&has_job_));
        job = job_;
        has_job_ = false;
      }
      (*job.fn)(1, job.begin, job.end);
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
  }

  const pid_t pid_;
  std::atomic<bool> claimed_{false};
  absl::Mutex mu_;
  Job job_ ABSL_GUARDED_BY(mu_);
  bool has_job_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The process's helper (a forked child gets a new one: threads do not survive fork).
Helper* GetHelper() {
  static auto* mu = new absl::Mutex;
  static Helper* helper = nullptr;
  absl::MutexLock lock(mu);
  if (helper == nullptr || helper->pid() != getpid()) helper = new Helper;  // old one leaks
  return helper;
}

int AllowedParts() {
  const int set = g_threads.load(std::memory_order_relaxed);
  if (set != 0) return set >= 2 ? 2 : 1;
  static const bool multi_core = std::thread::hardware_concurrency() > 1;
#if defined(ANERD_BLAS_ACCELERATE)
  return multi_core ? 2 : 1;
#else
  return multi_core && openblas_get_num_threads() > 1 ? 2 : 1;
#endif
}

}  // namespace

int SetParallelForThreads(int threads) { return g_threads.exchange(threads); }

void ParallelFor(int64_t n, int64_t min_part, RangeFn fn) {
  if (n <= 0) return;
  if (n < 2 * std::max<int64_t>(min_part, 1) || AllowedParts() < 2) {
    fn(0, 0, n);
    return;
  }
  Helper* helper = GetHelper();
  if (!helper->TryClaim()) {
    fn(0, 0, n);
    return;
  }
  const int64_t mid = n / 2;
  helper->Start(&fn, mid, n);
  fn(0, 0, mid);
  helper->Finish();
}

}  // namespace anerd::backend::cpu
