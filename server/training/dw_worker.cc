#include "server/training/dw_worker.h"

#include <utility>

#include "server/backend/cpu_seats.h"

namespace anerd::training {

DwWorker::DwWorker() : thread_([this] { Loop(); }) {}

DwWorker::~DwWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DwWorker::Submit(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(fn));
    ++pending_;
  }
  cv_.notify_all();
}

void DwWorker::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
  if (error_ != nullptr) std::rethrow_exception(std::exchange(error_, nullptr));
}

bool DwWorker::WaitFor(std::chrono::microseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return done_cv_.wait_for(lock, timeout, [this] { return pending_ == 0; });
}

void DwWorker::Loop() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error;
    try {
      backend::ScopedCpuSeat seat;  // this task's core is not the backend pool's meanwhile
      fn();
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error != nullptr && error_ == nullptr) error_ = error;
      --pending_;
    }
    done_cv_.notify_all();
  }
}

}  // namespace anerd::training
