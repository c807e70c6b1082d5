// SpanLog: measured spans of a training session — each kernel evaluation by name, staging/IO, the
// CPU ops, the dW GEMMs on their own thread, the optimizer, checkpoint writes and queue waits —
// kept in a bounded ring so `anectl train trace` can lay out what really happened.
//
// A span is [start, start + duration) in steady-clock nanoseconds (converted to Unix time with the
// log's anchor taken at construction), on a small per-log thread index (0 = the first thread that
// recorded, usually the trainer's; ThreadNames() says which is which), tagged with the step being
// run when it began. Spans on one thread nest or are disjoint, because they come from scoped
// objects (ScopedSpan).
//
// Bounds: at most `capacity` spans; the oldest are dropped first (dropped() counts them). Span
// names are static strings (no allocation per span); `layer` is -1 when not per layer.
//
// Thread-safety: every method may be called from any thread (one mutex; a record is a few stores).
// A null SpanLog* everywhere means "not tracing".
#ifndef ANERD_SERVER_TRAINING_SPAN_LOG_H_
#define ANERD_SERVER_TRAINING_SPAN_LOG_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace anerd::training {

struct TraceSpan {
  const char* name = "";  // static storage
  int32_t layer = -1;
  int32_t thread = 0;  // index of the recording thread within this log
  int64_t step = 0;    // the step running when the span began (1-based; 0 before the first)
  int64_t start_unix_ns = 0;
  int64_t duration_ns = 0;
};

class SpanLog {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kDefaultCapacity = size_t{1} << 16;

  explicit SpanLog(size_t capacity = kDefaultCapacity);

  // The step that spans beginning from now on belong to.
  void SetStep(int64_t step);
  void Record(const char* name, int32_t layer, Clock::time_point start, Clock::time_point end);

  // Spans whose step is in [first_step, last_step] by start time (an enclosing span before its
  // children), at most `max_spans` (the latest recorded when more match).
  std::vector<TraceSpan> Spans(int64_t first_step, int64_t last_step, size_t max_spans) const;
  int64_t dropped() const;
  int64_t current_step() const;
  // Names of the recording threads by index: "dW worker" for a thread whose first span was a dW
  // task ("dW …"), "checkpoint writer" for one whose first span was a checkpoint (the session
  // manager writes periodic checkpoints off the executor), else "trainer".
  std::vector<std::string> ThreadNames() const;

 private:
  int32_t ThreadIndex(const char* first_span) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  const Clock::time_point anchor_steady_;
  const int64_t anchor_unix_ns_;
  mutable absl::Mutex mu_;
  std::deque<TraceSpan> spans_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> thread_names_ ABSL_GUARDED_BY(mu_);
  int64_t step_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records [construction, destruction) into `log` (nothing when log is null).
class ScopedSpan {
 public:
  ScopedSpan(SpanLog* log, const char* name, int32_t layer = -1)
      : log_(log), name_(name), layer_(layer), start_(SpanLog::Clock::now()) {}
  ~ScopedSpan() {
    if (log_ != nullptr) log_->Record(name_, layer_, start_, SpanLog::Clock::now());
  }
  ScopedSpan(const ScopedSpan&) = delete;
  ScopedSpan& operator=(const ScopedSpan&) = delete;

 private:
  SpanLog* log_;
  const char* name_;
  int32_t layer_;
  SpanLog::Clock::time_point start_;
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_SPAN_LOG_H_
