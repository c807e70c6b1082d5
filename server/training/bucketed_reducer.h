// Overlapped gradient reduction (issue 24 item 2): a GradientReducer that reduces the step's
// gradients in buckets on one communication thread while the backward pass still runs, through
// another reducer's ReduceRange/ReduceLoss (the MPI one; a fake in tests).
//
// Buckets. grads[0, n) is cut into fixed buckets [k·B, min((k+1)·B, n)) of B = bucket_floats
// elements (the last one partial). Ready(offset, count) counts the range's elements into every
// bucket it overlaps (a range may straddle bucket boundaries); a bucket whose elements are all
// counted is queued, and the communication thread reduces the queued buckets in queue order. As
// the ranges arrive in the same order on every rank (backward order, a function of the model),
// every rank queues the buckets in the same order, so the collectives match. Each element is
// reduced once, with the same elementwise sum as one ReduceRange over [0, n): overlap changes no
// bit of the result.
//
// Times. FinishStep waits for the outstanding buckets and the loss (also reduced on the
// communication thread, last): that wait is `exposed_ms`; `total_ms` is the communication
// thread's time in the step's ReduceRange/ReduceLoss calls; `hidden_ms` = total - exposed (>= 0).
//
// Errors. A range outside [0, n) or an element counted twice is INTERNAL (returned by
// FinishStep); so is a bucket still incomplete at FinishStep (a range never reported). The first
// error of the inner reducer ends the step: later buckets are skipped and FinishStep returns it.
//
// Threads. BeginStep, FinishStep, AbortStep, Reduce: the trainer's thread. Ready: the dW worker or
// the trainer's thread, never concurrently. The inner reducer is called only from the
// communication thread during a step and from the trainer's thread in Reduce (no two calls at
// once: MPI_THREAD_SERIALIZED suffices). The inner reducer is not owned and must outlive this.
#ifndef ANERD_SERVER_TRAINING_BUCKETED_REDUCER_H_
#define ANERD_SERVER_TRAINING_BUCKETED_REDUCER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/training/gradient_reducer.h"

namespace anerd::training {

// Default bucket size: 4 MiB of fp32 gradients (TrainSpec::allreduce_bucket_kb = 0).
inline constexpr int64_t kDefaultBucketFloats = (int64_t{4} << 20) / 4;

class BucketedReducer : public GradientReducer {
 public:
  // `bucket_floats` >= 1.
  BucketedReducer(GradientReducer* inner, int64_t bucket_floats);
  ~BucketedReducer() override;
  BucketedReducer(const BucketedReducer&) = delete;
  BucketedReducer& operator=(const BucketedReducer&) = delete;

  int rank() const override { return inner_->rank(); }
  int ranks() const override { return inner_->ranks(); }
  // Not overlapped: the inner reducer's Reduce, on the caller's thread.
  absl::Status Reduce(float* grads, int64_t n, double* loss_sum, ReduceStats* stats) override {
    return inner_->Reduce(grads, n, loss_sum, stats);
  }
  bool overlapped() const override { return true; }
  absl::Status BeginStep(float* grads, int64_t n) override;
  void Ready(int64_t offset, int64_t count) override;
  absl::Status FinishStep(double* loss_sum, ReduceStats* stats) override;
  // Drops the queued buckets and waits for the one being reduced; later Ready calls (reports of
  // the failed pass still queued on the dW worker) are ignored until the next BeginStep.
  void AbortStep() override;

 private:
  struct Job {
    int64_t bucket = -1;  // -1: the loss
  };
  void Loop();
  void RunJob(const Job& job);
  void Fail(absl::Status s);  // mu_ held

  GradientReducer* const inner_;
  const int64_t bucket_floats_;

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  float* grads_ = nullptr;  // the step's gradients (BeginStep..FinishStep)
  int64_t n_ = 0;
  std::vector<int64_t> counted_;  // per bucket: elements reported ready
  std::deque<Job> queue_;
  bool busy_ = false;  // the thread is running a job
  bool stop_ = false;
  bool armed_ = false;      // BeginStep..FinishStep/AbortStep: Ready counts
  double* loss_ = nullptr;  // FinishStep's loss, while its job is queued
  double total_ms_ = 0;     // the step's time in inner calls
  int64_t buckets_done_ = 0;
  absl::Status error_;  // the step's first error
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_BUCKETED_REDUCER_H_
