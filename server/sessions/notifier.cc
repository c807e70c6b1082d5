#include "server/sessions/notifier.h"

#include <utility>

namespace anerd::sessions {

Notifier::Notifier() : thread_([this] { Loop(); }) {}

Notifier::~Notifier() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void Notifier::Post(std::vector<std::function<void()>> wakes) {
  if (wakes.empty()) return;
  absl::MutexLock lock(&mu_);
  for (auto& w : wakes) queue_.push_back(std::move(w));
}

void Notifier::Loop() {
  while (true) {
    std::function<void()> wake;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Notifier* n)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(n->mu_) { return n->stop_ || !n->queue_.empty(); },
          this));
      if (queue_.empty()) return;
      wake = std::move(queue_.front());
      queue_.pop_front();
    }
    wake();
  }
}

}  // namespace anerd::sessions
