#include "server/training/bucketed_reducer.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace anerd::training {
namespace {

double MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

BucketedReducer::BucketedReducer(GradientReducer* inner, int64_t bucket_floats)
    : inner_(inner),
      bucket_floats_(std::max<int64_t>(1, bucket_floats)),
      thread_([this] { Loop(); }) {}

BucketedReducer::~BucketedReducer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

absl::Status BucketedReducer::BeginStep(float* grads, int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (busy_ || !queue_.empty()) return absl::InternalError("BeginStep: a step is still reducing");
  grads_ = grads;
  n_ = std::max<int64_t>(0, n);
  counted_.assign((n_ + bucket_floats_ - 1) / bucket_floats_, 0);
  total_ms_ = 0;
  buckets_done_ = 0;
  loss_ = nullptr;
  error_ = absl::OkStatus();
  armed_ = true;
  return absl::OkStatus();
}

void BucketedReducer::Fail(absl::Status s) {
  if (error_.ok()) error_ = std::move(s);
}

void BucketedReducer::Ready(int64_t offset, int64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!armed_) return;  // no step (a report of an aborted pass, left on the dW worker)
  if (offset < 0 || count < 0 || offset > n_ - count) {
    Fail(absl::InternalError(absl::StrCat("gradient range [", offset, ", +", count,
                                          ") outside the ", n_, " gradients")));
    return;
  }
  bool queued = false;
  for (int64_t b = offset / bucket_floats_; count > 0 && b * bucket_floats_ < offset + count; ++b) {
    const int64_t lo = std::max(offset, b * bucket_floats_);
    const int64_t hi = std::min({offset + count, (b + 1) * bucket_floats_, n_});
    const int64_t size = std::min(n_, (b + 1) * bucket_floats_) - b * bucket_floats_;
    counted_[b] += hi - lo;
    if (counted_[b] > size) {
      Fail(absl::InternalError(absl::StrCat("gradient bucket ", b, " reported ready twice")));
    } else if (counted_[b] == size) {
      queue_.push_back(Job{b});
      queued = true;
    }
  }
  if (queued) cv_.notify_all();
}

void BucketedReducer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const Job job = queue_.front();
    queue_.pop_front();
    busy_ = true;
    const bool skip = !error_.ok() || !armed_;
    lock.unlock();
    if (!skip) RunJob(job);
    lock.lock();
    busy_ = false;
    idle_cv_.notify_all();
  }
}

// On the communication thread, mu_ not held (grads_/loss_ are stable while a job is queued).
void BucketedReducer::RunJob(const Job& job) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status s;
  if (job.bucket < 0) {
    s = inner_->ReduceLoss(loss_);
  } else {
    const int64_t lo = job.bucket * bucket_floats_;
    s = inner_->ReduceRange(grads_ + lo, std::min(n_, lo + bucket_floats_) - lo);
  }
  const double ms = MsSince(start);
  std::lock_guard<std::mutex> lock(mu_);
  total_ms_ += ms;
  if (job.bucket >= 0) ++buckets_done_;
  if (!s.ok()) Fail(std::move(s));
}

absl::Status BucketedReducer::FinishStep(double* loss_sum, ReduceStats* stats) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  for (size_t b = 0; b < counted_.size() && error_.ok(); ++b) {
    const int64_t size = std::min(n_, static_cast<int64_t>(b + 1) * bucket_floats_) -
                         static_cast<int64_t>(b) * bucket_floats_;
    if (counted_[b] != size) {
      Fail(absl::InternalError(absl::StrCat("gradient bucket ", b, " has ", counted_[b], " of ",
                                            size, " elements reported ready at the step's end")));
    }
  }
  if (error_.ok()) {
    loss_ = loss_sum;
    queue_.push_back(Job{-1});
    cv_.notify_all();
  }
  idle_cv_.wait(lock, [this] { return !busy_ && queue_.empty(); });
  const double exposed = MsSince(start);
  loss_ = nullptr;
  armed_ = false;
  if (!error_.ok()) return error_;
  if (stats != nullptr) {
    stats->exposed_ms = exposed;
    stats->bytes = n_ * static_cast<int64_t>(sizeof(float)) + static_cast<int64_t>(sizeof(double));
    stats->total_ms = total_ms_;
    stats->hidden_ms = std::max(0.0, total_ms_ - exposed);
    stats->buckets = buckets_done_;
  }
  return absl::OkStatus();
}

void BucketedReducer::AbortStep() {
  std::unique_lock<std::mutex> lock(mu_);
  armed_ = false;
  queue_.clear();
  idle_cv_.wait(lock, [this] { return !busy_; });
}

}  // namespace anerd::training
