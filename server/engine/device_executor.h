// DeviceExecutor: one thread that owns every compile and run call on one backend, fed by a FIFO
// queue. gRPC threads only enqueue; the work runs here and reports through its callback.
//
// A task whose deadline has passed or whose cancel flag is set when it reaches the front is not
// run: its callback receives DEADLINE_EXCEEDED / CANCELLED instead. After Shutdown() new tasks and
// queued ones receive UNAVAILABLE, and the running task's cancel flag is set so that work which
// checks its RequestControl between chunks (compiles, evaluations, probes) stops early. A task
// should not throw (owners turn exceptions into errors at their task boundary); one that does is
// caught and logged, so the executor thread survives.
// Thread-safety: Submit may be called from any thread.
#ifndef ANERD_SERVER_ENGINE_DEVICE_EXECUTOR_H_
#define ANERD_SERVER_ENGINE_DEVICE_EXECUTOR_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace anerd::engine {

// Deadline and cancellation of one request, shared between the RPC and the queued task.
struct RequestControl {
  absl::Time deadline = absl::InfiniteFuture();
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);

  // OK, or CANCELLED / DEADLINE_EXCEEDED naming `what`.
  absl::Status Check(const std::string& what) const;
};

class DeviceExecutor {
 public:
  // `run` is called exactly once on the executor thread: with OK to do the work, or with the
  // reason it was skipped. `queued_for` is how long the task waited.
  using Work = std::function<void(absl::Status admission, absl::Duration queued_for)>;

  explicit DeviceExecutor(std::string name);
  ~DeviceExecutor();  // Shutdown()

  DeviceExecutor(const DeviceExecutor&) = delete;
  DeviceExecutor& operator=(const DeviceExecutor&) = delete;

  void Submit(RequestControl control, std::string what, Work work);
  // Rejects new work, fails queued work with UNAVAILABLE, waits for the running task, joins.
  void Shutdown();
  size_t queued() const;

 private:
  struct Task {
    RequestControl control;
    std::string what;
    Work work;
    absl::Time enqueued;
  };
  void Loop();

  const std::string name_;
  mutable absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<std::atomic<bool>> running_cancel_ ABSL_GUARDED_BY(mu_);  // of the running task
  std::thread thread_;
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_DEVICE_EXECUTOR_H_
