#include "server/engine/device_executor.h"

#include <utility>

#include "absl/strings/str_cat.h"
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

DeviceExecutor::DeviceExecutor(std::string name) : name_(std::move(name)) {
  thread_ = std::thread([this] { Loop(); });
}

DeviceExecutor::~DeviceExecutor() { Shutdown(); }

void DeviceExecutor::Submit(RequestControl control, std::string what, Work work) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back({std::move(control), std::move(what), std::move(work), absl::Now()});
      return;
    }
  }
  RunGuarded(what, [&] {
    work(absl::UnavailableError(absl::StrCat("the ", name_, " executor is shutting down; retry")),
         absl::ZeroDuration());
  });
}

void DeviceExecutor::Loop() {
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](DeviceExecutor* e)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) { return e->stopping_ || !e->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      running_cancel_ = task.control.cancelled;
    }
    absl::Status admission = task.control.Check(task.what);
    RunGuarded(task.what, [&] { task.work(admission, absl::Now() - task.enqueued); });
    absl::MutexLock lock(&mu_);
    running_cancel_.reset();
  }
}

void DeviceExecutor::Shutdown() {
  std::deque<Task> dropped;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    dropped.swap(queue_);
    // The running task checks its flag between chunks of work and stops early.
    if (running_cancel_ != nullptr) running_cancel_->store(true);
  }
  for (Task& task : dropped) {
    RunGuarded(task.what, [&] {
      task.work(
          absl::UnavailableError(absl::StrCat("the ", name_, " executor is shutting down; retry")),
          absl::Now() - task.enqueued);
    });
  }
  if (thread_.joinable()) thread_.join();
}

size_t DeviceExecutor::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace anerd::engine
