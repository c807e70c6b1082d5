// DeviceExecutor: one thread that owns every compile and run call on one backend, fed by a
// priority queue (device_queue.h: interactive > training > probe, FIFO within a class, a class
// passed over 8 times is served next). gRPC threads only enqueue; the work runs here and reports
// through its callback.
//
// Yield (training gives way between kernels): a running task may call Yield() on the executor
// thread; a training step does so before each kernel evaluation and between the slices of its long
// CPU passes (Trainer::SetKernelYield, wired by the SessionManager). It runs the interactive tasks queued at that moment, inline on the executor
// thread (those arriving meanwhile wait for the next yield), so an interactive call waits for at
// most one training kernel plus the interactive calls ahead of it, and the step still advances by
// one kernel per yield. Probes never yield, so a probe keeps the device to itself while it runs.
// Yield does nothing on any other thread, inside an inline task, or inside a task that is not of
// the training class.
//
// The device-owner rule: one thread at a time touches the device, and that thread is the
// executor's, except while the executor lends the device. TryRunHere lends it to the caller only
// when the executor is idle (nothing running, nothing queued, not lent, not stopping); until the
// caller's work returns the executor thread starts nothing and Shutdown waits. This spares a tiny
// evaluation the two thread hand-offs of a queued task (issue 22: the RPC path). Inline tasks of
// Yield run on the executor thread itself.
//
// A task whose deadline has passed or whose cancel flag is set when it reaches the front is not
// run: its callback receives DEADLINE_EXCEEDED / CANCELLED instead. After Shutdown() new tasks and
// queued ones receive UNAVAILABLE, and the running tasks' cancel flags (the task and an inline one)
// are set so that work which checks its RequestControl between chunks (compiles, evaluations,
// probes) stops early. A task should not throw (owners turn exceptions into errors at their task
// boundary); one that does is caught and logged, so the executor thread survives.
//
// The executor's thread, and a caller while the device is lent to it, is marked a device thread
// (common/blocking_io_guard.h): the daemon's file helpers count any I/O they do there.
//
// Stats() gives per class the tasks queued now, the tasks started and their queue waits (sum, max
// and counts per bucket of kWaitBucketBounds), for `anectl status` and the metrics.
// Thread-safety: Submit, Stats, SetObserver and Shutdown may be called from any thread.
#ifndef ANERD_SERVER_ENGINE_DEVICE_EXECUTOR_H_
#define ANERD_SERVER_ENGINE_DEVICE_EXECUTOR_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/device_queue.h"

namespace anerd::engine {

// Deadline and cancellation of one request, shared between the RPC and the queued task.
struct RequestControl {
  absl::Time deadline = absl::InfiniteFuture();
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);

  // OK, or CANCELLED / DEADLINE_EXCEEDED naming `what`.
  absl::Status Check(const std::string& what) const;
};

// Upper bounds (seconds) of the queue-wait buckets; a last bucket holds longer waits.
inline constexpr std::array<double, 12> kWaitBucketBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10};

struct QueueClassStats {
  uint64_t queued = 0;   // waiting now
  uint64_t started = 0;  // tasks taken from the queue since start (run or refused)
  double wait_seconds_sum = 0;
  double wait_seconds_max = 0;
  // wait_buckets[i]: started tasks that waited <= kWaitBucketBounds[i] (and more than the bound
  // before); the last entry counts the longer ones. Not cumulative.
  std::array<uint64_t, kWaitBucketBounds.size() + 1> wait_buckets{};
};
using QueueStats = std::array<QueueClassStats, kNumTaskClasses>;  // by TaskClass

// What the executor does, in order, for a test observer (SetObserver).
struct ExecutorEvent {
  enum class Kind { kStart, kEnd, kYield };
  Kind kind = Kind::kStart;
  TaskClass task_class = TaskClass::kTraining;  // of the task (kYield: of the yielding one)
  std::string what;
  bool inline_run = false;  // started by Yield inside another task
};

class DeviceExecutor {
 public:
  // `run` is called exactly once on the executor thread: with OK to do the work, or with the
  // reason it was skipped. `queued_for` is how long the task waited.
  using Work = std::function<void(absl::Status admission, absl::Duration queued_for)>;
  using Observer = std::function<void(const ExecutorEvent&)>;

  explicit DeviceExecutor(std::string name, int max_bypass = DeviceQueue<int>::kDefaultMaxBypass);
  ~DeviceExecutor();  // Shutdown()

  DeviceExecutor(const DeviceExecutor&) = delete;
  DeviceExecutor& operator=(const DeviceExecutor&) = delete;

  void Submit(TaskClass task_class, RequestControl control, std::string what, Work work);
  // Bulk work: the training class.
  void Submit(RequestControl control, std::string what, Work work) {
    Submit(TaskClass::kTraining, std::move(control), std::move(what), std::move(work));
  }
  // See the file comment. Returns how many interactive tasks ran.
  size_t Yield();
  // When the executor is idle, runs `work` on the calling thread with the device lent to it
  // (admission checked as for a queued task, queue wait zero) and returns true; otherwise
  // returns false without calling `work` (then Submit it). Never call it on the executor thread.
  bool TryRunHere(TaskClass task_class, const RequestControl& control, const std::string& what,
                  const Work& work);
  // Rejects new work, fails queued work with UNAVAILABLE, waits for the running task, joins.
  void Shutdown();
  size_t queued() const;
  QueueStats Stats() const;
  // A test hook: `observer` is called on the executor thread at every task start and end and
  // every Yield, with no lock held. Empty = none.
  void SetObserver(Observer observer);

 private:
  struct Task {
    TaskClass task_class = TaskClass::kTraining;
    RequestControl control;
    std::string what;
    Work work;
    absl::Time enqueued;
  };
  void Loop();
  // Runs `task` on the executor thread (admission check, observer, work).
  void RunTask(Task& task, absl::Duration waited, bool inline_run,
               const std::shared_ptr<const Observer>& observer);
  void RecordWait(TaskClass c, absl::Duration waited) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string name_;
  mutable absl::Mutex mu_;
  DeviceQueue<Task> queue_ ABSL_GUARDED_BY(mu_);
  QueueStats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<std::atomic<bool>> running_cancel_ ABSL_GUARDED_BY(mu_);  // of the running task
  std::shared_ptr<std::atomic<bool>> inline_cancel_ ABSL_GUARDED_BY(mu_);   // of an inline one
  std::shared_ptr<const Observer> observer_ ABSL_GUARDED_BY(mu_);
  TaskClass running_class_ ABSL_GUARDED_BY(mu_) = TaskClass::kTraining;
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // a task runs on the executor thread
  std::shared_ptr<std::atomic<bool>> lent_cancel_ ABSL_GUARDED_BY(mu_);  // set while lent
  std::atomic<std::thread::id> thread_id_{};
  bool in_yield_ = false;  // executor thread only
  std::thread thread_;
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_DEVICE_EXECUTOR_H_
