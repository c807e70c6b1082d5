// DeviceQueue: the pending tasks of one device executor, in three priority classes
// (sessions::TaskClass: interactive > training > probe).
//
// Order: Pop takes the oldest task of the highest non-empty class. Within a class it is FIFO in
// submission order, which is the per-client fairness the executor always had: a session keeps at
// most one step queued and re-queues after it ran, so sessions take turns, and calls of different
// clients run in the order they arrived.
//
// Starvation (the behaviour chosen): strict priority alone would let a steady stream of
// interactive calls, or a training session that always has its next step queued, hold a lower
// class off for ever. So every pop from a higher class while a lower class is waiting counts as
// one bypass of that class; once a class has been bypassed `max_bypass` times since it was last
// served, its oldest task is served next (the most-bypassed-first among several, higher class
// first on a tie). With the default of 8 a probe waits for at most 8 training steps or interactive
// calls ahead of it, and a training step for at most 8 interactive calls.
// PopClass (the training yield's inline pops of interactive tasks) counts the same way.
//
// Not thread-safe: the executor guards it with its own mutex.
#ifndef ANERD_SERVER_ENGINE_DEVICE_QUEUE_H_
#define ANERD_SERVER_ENGINE_DEVICE_QUEUE_H_

#include <array>
#include <cstddef>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "server/sessions/task_class.h"

namespace anerd::engine {

using sessions::kNumTaskClasses;
using sessions::TaskClass;
using sessions::TaskClassName;

template <typename T>
class DeviceQueue {
 public:
  static constexpr int kDefaultMaxBypass = 8;

  explicit DeviceQueue(int max_bypass = kDefaultMaxBypass)
      : max_bypass_(max_bypass < 1 ? 1 : max_bypass) {}

  void Push(TaskClass c, T item) { lanes_[Index(c)].push_back(std::move(item)); }

  bool empty() const { return size() == 0; }
  size_t size() const {
    size_t n = 0;
    for (const auto& lane : lanes_) n += lane.size();
    return n;
  }
  size_t size(TaskClass c) const { return lanes_[Index(c)].size(); }

  // The next task by the order above and its class; nullopt when empty.
  std::optional<std::pair<TaskClass, T>> Pop() {
    int pick = -1, starved = -1;
    for (int c = 0; c < kNumTaskClasses; ++c) {
      if (lanes_[c].empty()) continue;
      if (pick < 0) pick = c;  // the highest non-empty class
      if (bypassed_[c] >= max_bypass_ && (starved < 0 || bypassed_[c] > bypassed_[starved])) {
        starved = c;
      }
    }
    if (starved >= 0) pick = starved;
    if (pick < 0) return std::nullopt;
    return std::make_pair(static_cast<TaskClass>(pick), Take(pick));
  }

  // The oldest task of class `c` only; nullopt when that class is empty.
  std::optional<T> PopClass(TaskClass c) {
    if (lanes_[Index(c)].empty()) return std::nullopt;
    return Take(Index(c));
  }

  // Empties the queue (shutdown), highest class first, FIFO within a class.
  std::vector<T> TakeAll() {
    std::vector<T> all;
    for (auto& lane : lanes_) {
      for (T& item : lane) all.push_back(std::move(item));
      lane.clear();
    }
    bypassed_.fill(0);
    return all;
  }

 private:
  static int Index(TaskClass c) { return static_cast<int>(c); }

  T Take(int c) {
    T item = std::move(lanes_[c].front());
    lanes_[c].pop_front();
    bypassed_[c] = 0;
    for (int lower = c + 1; lower < kNumTaskClasses; ++lower) {
      if (!lanes_[lower].empty()) ++bypassed_[lower];
    }
    return item;
  }

  const int max_bypass_;
  std::array<std::deque<T>, kNumTaskClasses> lanes_;
  std::array<int, kNumTaskClasses> bypassed_{};
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_DEVICE_QUEUE_H_
