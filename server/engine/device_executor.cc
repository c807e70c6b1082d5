#include "server/engine/device_executor.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/blocking_io_guard.h"
#include "spdlog/spdlog.h"

namespace anerd::engine {
namespace {

// The last line of defence: an exception escaping a task would terminate the daemon. Owners of
// tasks catch their own (and turn them into errors); this only logs what slipped through.
template <typename Fn>
void RunGuarded(const std::string& what, Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    spdlog::error("executor task '{}' threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("executor task '{}' threw an unknown exception", what);
  }
}

void Notify(const std::shared_ptr<const DeviceExecutor::Observer>& observer,
            ExecutorEvent::Kind kind, TaskClass c, const std::string& what, bool inline_run) {
  if (observer == nullptr) return;
  RunGuarded("observer", [&] { (*observer)(ExecutorEvent{kind, c, what, inline_run}); });
}

}  // namespace

absl::Status RequestControl::Check(const std::string& what) const {
  if (cancelled != nullptr && cancelled->load()) {
    return absl::CancelledError(
        absl::StrCat(what, " was cancelled (by the client, or the daemon is stopping)"));
  }
  if (absl::Now() > deadline) {
    return absl::DeadlineExceededError(absl::StrCat(what, " missed the client's deadline"));
  }
  return absl::OkStatus();
}

DeviceExecutor::DeviceExecutor(std::string name, int max_bypass)
    : name_(std::move(name)), queue_(max_bypass) {
  thread_ = std::thread([this] { Loop(); });
}

DeviceExecutor::~DeviceExecutor() { Shutdown(); }

void DeviceExecutor::Submit(TaskClass task_class, RequestControl control, std::string what,
                            Work work) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.Push(task_class,
                  {task_class, std::move(control), std::move(what), std::move(work), absl::Now()});
      return;
    }
  }
  RunGuarded(what, [&] {
    work(absl::UnavailableError(absl::StrCat("the ", name_, " executor is shutting down; retry")),
         absl::ZeroDuration());
  });
}

void DeviceExecutor::RecordWait(TaskClass c, absl::Duration waited) {
  QueueClassStats& s = stats_[static_cast<int>(c)];
  const double seconds = absl::ToDoubleSeconds(waited);
  ++s.started;
  s.wait_seconds_sum += seconds;
  s.wait_seconds_max = std::max(s.wait_seconds_max, seconds);
  const auto bound = std::lower_bound(kWaitBucketBounds.begin(), kWaitBucketBounds.end(), seconds);
  ++s.wait_buckets[bound - kWaitBucketBounds.begin()];
}

void DeviceExecutor::RunTask(Task& task, absl::Duration waited, bool inline_run,
                             const std::shared_ptr<const Observer>& observer) {
  Notify(observer, ExecutorEvent::Kind::kStart, task.task_class, task.what, inline_run);
  absl::Status admission = task.control.Check(task.what);
  RunGuarded(task.what, [&] { task.work(admission, waited); });
  Notify(observer, ExecutorEvent::Kind::kEnd, task.task_class, task.what, inline_run);
}

void DeviceExecutor::Loop() {
  thread_id_.store(std::this_thread::get_id());
  const ScopedDeviceThread device_thread;  // file I/O here is a violation (blocking_io_guard.h)
  while (true) {
    Task task;
    absl::Duration waited;
    std::shared_ptr<const Observer> observer;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](DeviceExecutor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return e->lent_cancel_ == nullptr && (e->stopping_ || !e->queue_.empty());
          },
          this));
      auto next = queue_.Pop();
      if (!next.has_value()) return;  // stopping and drained
      task = std::move(next->second);
      running_ = true;
      running_cancel_ = task.control.cancelled;
      running_class_ = task.task_class;
      observer = observer_;
      waited = absl::Now() - task.enqueued;
      RecordWait(task.task_class, waited);
    }
    RunTask(task, waited, /*inline_run=*/false, observer);
    absl::MutexLock lock(&mu_);
    running_cancel_.reset();
    running_ = false;
  }
}

size_t DeviceExecutor::Yield() {
  if (in_yield_ || std::this_thread::get_id() != thread_id_.load()) return 0;
  size_t budget = 0;
  std::shared_ptr<const Observer> observer;
  TaskClass running = TaskClass::kTraining;
  {
    absl::MutexLock lock(&mu_);
    running = running_class_;
    budget = queue_.size(TaskClass::kInteractive);
    observer = observer_;
  }
  if (running != TaskClass::kTraining) return 0;  // probes keep the device to themselves
  Notify(observer, ExecutorEvent::Kind::kYield, running, "", false);
  in_yield_ = true;
  size_t ran = 0;
  for (; ran < budget; ++ran) {
    Task task;
    absl::Duration waited;
    {
      absl::MutexLock lock(&mu_);
      std::optional<Task> next = queue_.PopClass(TaskClass::kInteractive);
      if (!next.has_value()) break;  // taken by Shutdown
      task = std::move(*next);
      inline_cancel_ = task.control.cancelled;
      waited = absl::Now() - task.enqueued;
      RecordWait(task.task_class, waited);
    }
    RunTask(task, waited, /*inline_run=*/true, observer);
    absl::MutexLock lock(&mu_);
    inline_cancel_.reset();
  }
  in_yield_ = false;
  return ran;
}

bool DeviceExecutor::TryRunHere(TaskClass task_class, const RequestControl& control,
                                const std::string& what, const Work& work) {
  std::shared_ptr<const Observer> observer;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || running_ || lent_cancel_ != nullptr || !queue_.empty()) return false;
    lent_cancel_ = control.cancelled != nullptr ? control.cancelled
                                                : std::make_shared<std::atomic<bool>>(false);
    RecordWait(task_class, absl::ZeroDuration());
    observer = observer_;
  }
  Notify(observer, ExecutorEvent::Kind::kStart, task_class, what, /*inline_run=*/false);
  const absl::Status admission = control.Check(what);
  {
    const ScopedDeviceThread device_thread;  // the lent device: the executor's rules apply
    RunGuarded(what, [&] { work(admission, absl::ZeroDuration()); });
  }
  Notify(observer, ExecutorEvent::Kind::kEnd, task_class, what, /*inline_run=*/false);
  absl::MutexLock lock(&mu_);
  lent_cancel_.reset();  // the executor thread may start the next task
  return true;
}

void DeviceExecutor::Shutdown() {
  std::vector<Task> dropped;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    dropped = queue_.TakeAll();
    // The running tasks check their flags between chunks of work and stop early.
    if (running_cancel_ != nullptr) running_cancel_->store(true);
    if (inline_cancel_ != nullptr) inline_cancel_->store(true);
    if (lent_cancel_ != nullptr) lent_cancel_->store(true);
  }
  for (Task& task : dropped) {
    RunGuarded(task.what, [&] {
      task.work(
          absl::UnavailableError(absl::StrCat("the ", name_, " executor is shutting down; retry")),
          absl::Now() - task.enqueued);
    });
  }
  if (thread_.joinable()) thread_.join();
  // Work the idle executor lent the device to stops early too; the device outlives it.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](DeviceExecutor* e)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) { return e->lent_cancel_ == nullptr; },
      this));
}

size_t DeviceExecutor::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

QueueStats DeviceExecutor::Stats() const {
  absl::MutexLock lock(&mu_);
  QueueStats out = stats_;
  for (int c = 0; c < kNumTaskClasses; ++c) {
    out[c].queued = queue_.size(static_cast<TaskClass>(c));
  }
  return out;
}

void DeviceExecutor::SetObserver(Observer observer) {
  auto shared = observer ? std::make_shared<const Observer>(std::move(observer)) : nullptr;
  absl::MutexLock lock(&mu_);
  observer_ = std::move(shared);
}

}  // namespace anerd::engine
