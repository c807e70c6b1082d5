#include "server/backend/cpu/kernels/parallel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/cpu_seats.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::backend::cpu {
namespace {

std::atomic<int> g_threads{0};

// Chunks per call: enough that a helper joining late still takes a fair share.
constexpr int64_t kMaxChunks = 16;

// One ParallelFor call: chunks of [0, n) handed out in order by an atomic counter.
struct Job {
  RangeFn* fn;
  int64_t n, chunk, chunks;
  std::atomic<int64_t> next{0};
  int64_t helper_chunks = 0;    // written by the helper before it reports done
  bool helper_yielded = false;  // likewise: it stopped early for a CPU seat (cpu_seats.h)
};

// Runs chunks of `job` as `part` until none is left; returns how many it ran. With `yielded` (the
// helper) it stops before its next chunk once a CPU seat is held, and sets *yielded: the caller
// runs the rest, so a seat holder never makes a third compute thread for longer than one chunk.
int64_t RunChunks(Job* job, int part, bool* yielded = nullptr) {
  for (int64_t ran = 0;; ++ran) {
    if (yielded != nullptr && CpuSeatsHeld() > 0) {
      *yielded = true;
      return ran;
    }
    const int64_t c = job->next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job->chunks) return ran;
    (*job->fn)(part, c * job->chunk, std::min(job->n, (c + 1) * job->chunk));
  }
}

// Automatic mode backs off when the helper keeps missing its share: on a loaded machine a woken
// thread may wait for a core longer than the whole pass takes, and waking it only adds switches.
// Only jobs that kept the caller busy for at least kJudgedJob count: on a short job (an fp16
// conversion of 64K values takes ~20 µs) a helper that wakes in a normal 10–40 µs misses its
// share without the machine being loaded, and backing off on that would also keep the long
// jobs (GEMMs) that follow on one core.
constexpr int kMissesBeforeBackoff = 2;
constexpr int kBackoffCalls = 32;
constexpr auto kJudgedJob = std::chrono::microseconds(500);
std::atomic<int> g_misses{0}, g_skip{0};

// Records whether the helper ran at least a quarter of the chunks of a call that took the caller
// `elapsed`.
void NoteHelperShare(const Job& job, std::chrono::steady_clock::duration elapsed) {
  if (job.helper_chunks * 4 >= job.chunks) {
    g_misses.store(0, std::memory_order_relaxed);
  } else if (elapsed < kJudgedJob) {
    return;
  } else if (g_misses.fetch_add(1, std::memory_order_relaxed) + 1 >= kMissesBeforeBackoff) {
    g_misses.store(0, std::memory_order_relaxed);
    g_skip.store(kBackoffCalls, std::memory_order_relaxed);
  }
}

// True when this call should skip the helper because of a back-off.
bool BackingOff() {
  int left = g_skip.load(std::memory_order_relaxed);
  while (left > 0) {
    if (g_skip.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

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
  void Start(Job* job) {
    absl::MutexLock lock(&mu_);
    job_ = job;
    joined_ = done_ = false;
  }
  // Called once the caller found no chunk left: waits for the helper's last chunk if it joined,
  // else withdraws the job (a helper that was slow to wake costs nothing).
  void Finish() {
    {
      absl::MutexLock lock(&mu_);
      if (joined_) {
        mu_.Await(absl::Condition(&done_));
      } else {
        job_ = nullptr;
      }
    }
    claimed_.store(false, std::memory_order_release);
  }

 private:
  bool HasJob() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return job_ != nullptr; }

  void Loop() {
    for (;;) {
      Job* job;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Helper::HasJob));
        job = job_;
        job_ = nullptr;
        joined_ = true;
      }
      bool yielded = false;
      const int64_t ran = RunChunks(job, 1, &yielded);
      absl::MutexLock lock(&mu_);
      job->helper_chunks = ran;
      job->helper_yielded = yielded;
      done_ = true;
    }
  }

  const pid_t pid_;
  std::atomic<bool> claimed_{false};
  absl::Mutex mu_;
  Job* job_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
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

// The pool width: 1 or 2 (a second helper would need a second helper thread).
int DetectWidth() {
  static const bool multi_core = std::thread::hardware_concurrency() > 1;
#if defined(ANERD_BLAS_ACCELERATE)
  return multi_core ? 2 : 1;
#else
  return multi_core && openblas_get_num_threads() > 1 ? 2 : 1;
#endif
}

std::atomic<int> g_width{0};  // set once by ConfigureBlasThreading

int AllowedParts() {
  const int set = g_threads.load(std::memory_order_relaxed);
  if (set != 0) return set >= 2 ? 2 : 1;
  const int width = g_width.load(std::memory_order_relaxed);
  return width != 0 ? width : DetectWidth();
}

}  // namespace

int ConfigureBlasThreading() {
  static const int width = [] {
    const int w = DetectWidth();
#if !defined(ANERD_BLAS_ACCELERATE)
    openblas_set_num_threads(1);
#endif
    g_width.store(w, std::memory_order_relaxed);
    return w;
  }();
  return width;
}

int SetParallelForThreads(int threads) {
  g_skip.store(0, std::memory_order_relaxed);
  g_misses.store(0, std::memory_order_relaxed);
  return g_threads.exchange(threads);
}

void ParallelFor(int64_t n, int64_t min_part, RangeFn fn) {
  if (n <= 0) return;
  min_part = std::max<int64_t>(min_part, 1);
  const int mode = g_threads.load(std::memory_order_relaxed);
  // A held CPU seat (cpu_seats.h) takes the helper's core: run inline (checked before BackingOff,
  // which would use up a back-off call).
  if (n < 2 * min_part || AllowedParts() < 2 || CpuSeatsHeld() > 0 || (mode == 0 && BackingOff())) {
    fn(0, 0, n);
    return;
  }
  Helper* helper = GetHelper();
  if (!helper->TryClaim()) {
    fn(0, 0, n);
    return;
  }
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunks = std::min<int64_t>(n / min_part, kMaxChunks);
  job.chunk = (n + job.chunks - 1) / job.chunks;
  job.chunks = (n + job.chunk - 1) / job.chunk;
  const auto t0 = std::chrono::steady_clock::now();
  helper->Start(&job);
  RunChunks(&job, 0);
  helper->Finish();
  // A helper kept out by a seat did not miss its share for want of a core: do not judge the call.
  if (mode == 0 && !job.helper_yielded && CpuSeatsHeld() == 0) {
    NoteHelperShare(job, std::chrono::steady_clock::now() - t0);
  }
}

}  // namespace anerd::backend::cpu
