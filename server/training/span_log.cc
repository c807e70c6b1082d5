#include "server/training/span_log.h"

#include <algorithm>
#include <cstring>

namespace anerd::training {
namespace {

int64_t UnixNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SpanLog::SpanLog(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)),
      anchor_steady_(Clock::now()),
      anchor_unix_ns_(UnixNowNs()) {}

void SpanLog::SetStep(int64_t step) {
  absl::MutexLock lock(&mu_);
  step_ = step;
}

int32_t SpanLog::ThreadIndex(const char* first_span) {
  const std::thread::id self = std::this_thread::get_id();
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (threads_[i] == self) return static_cast<int32_t>(i);
  }
  threads_.push_back(self);
  const char* name = "trainer";
  if (std::strncmp(first_span, "dW", 2) == 0) name = "dW worker";
  if (std::strcmp(first_span, "checkpoint") == 0) name = "checkpoint writer";
  thread_names_.push_back(name);
  return static_cast<int32_t>(threads_.size() - 1);
}

std::vector<std::string> SpanLog::ThreadNames() const {
  absl::MutexLock lock(&mu_);
  return thread_names_;
}

void SpanLog::Record(const char* name, int32_t layer, Clock::time_point start,
                     Clock::time_point end) {
  TraceSpan span;
  span.name = name;
  span.layer = layer;
  span.start_unix_ns =
      anchor_unix_ns_ +
      std::chrono::duration_cast<std::chrono::nanoseconds>(start - anchor_steady_).count();
  span.duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
  absl::MutexLock lock(&mu_);
  span.thread = ThreadIndex(name);
  span.step = step_;
  if (spans_.size() == capacity_) {
    spans_.pop_front();
    ++dropped_;
  }
  spans_.push_back(span);
}

std::vector<TraceSpan> SpanLog::Spans(int64_t first_step, int64_t last_step,
                                      size_t max_spans) const {
  absl::MutexLock lock(&mu_);
  std::vector<TraceSpan> out;
  for (const TraceSpan& s : spans_) {
    if (s.step >= first_step && s.step <= last_step) out.push_back(s);
  }
  if (out.size() > max_spans) out.erase(out.begin(), out.end() - max_spans);
  // Completion order is not start order (an enclosing span ends after its children): order by
  // start, and an enclosing span before a child that starts at the same time.
  std::stable_sort(out.begin(), out.end(), [](const TraceSpan& a, const TraceSpan& b) {
    if (a.start_unix_ns != b.start_unix_ns) return a.start_unix_ns < b.start_unix_ns;
    return a.duration_ns > b.duration_ns;
  });
  return out;
}

int64_t SpanLog::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

int64_t SpanLog::current_step() const {
  absl::MutexLock lock(&mu_);
  return step_;
}

}  // namespace anerd::training
