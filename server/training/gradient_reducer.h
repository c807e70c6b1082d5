// The trainer's gradient-reduction seam (issue 24, data-parallel training): one call per optimizer
// step, after the backward passes of this rank's micro-steps have produced its host gradients and
// before clipping and AdamW. A trainer without a reducer is one rank; nothing is reduced.
//
// Exactness contract. A step of R ranks with `accum` micro-steps each trains on R·accum sequences:
// rank r takes the global micro-steps micro_step + r·accum + m (m < accum; training/data.h), so the
// shards are disjoint and a pure function of (rank, step). Each rank's `grads` is the loss-scaled
// sum of its own sequences' gradients, each sequence's computed into a zeroed buffer and added in
// order (the same expression the one-rank accumulation path computes: trainer.h). `Reduce` must
// leave the same bits on every rank: the sum over ranks. The trainer then divides by R·accum (the
// unscale factor 1/(scale·R·accum) it already folds into AdamW's gradient multiplier; for 2 ranks
// that is `(g0 + g1) · 0.5 / scale`, exact as both factors are powers of two). So 2 ranks × 1
// sequence equals accum 2 on one rank bit for bit (g0 + g1 = g1 + g0 in IEEE arithmetic), and N
// ranks equal accum N when the reducer sums in rank order ((g0 + g1) + g2) + ...
//
// Overlap (issue 24 item 2): a reducer whose overlapped() is true is driven per step as
//   BeginStep(grads, n)       before the backward pass of the step's last micro-step;
//   Ready(offset, count)      for every range of grads[0, n) whose gradients are final (the model's
//                             Model::SetGradientsFinalHook), each element exactly once, in an
//                             order that is the same on every rank (backward order);
//   FinishStep(loss_sum, ...) after the pass: waits for the outstanding buckets, reduces the loss;
//   AbortStep()               instead of FinishStep when the pass failed.
// instead of one Reduce call; the result is the same elementwise sum (bucketed_reducer.h).
//
// Thread-safety: called on the trainer's thread only, except Ready (overlapped reducers), which is
// called from the dW worker or the trainer's thread, never concurrently.
#ifndef ANERD_SERVER_TRAINING_GRADIENT_REDUCER_H_
#define ANERD_SERVER_TRAINING_GRADIENT_REDUCER_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace anerd::training {

struct ReduceStats {
  double exposed_ms = 0;  // wall time the trainer waited for the reduction
  int64_t bytes = 0;      // payload bytes this rank contributed (gradients and the loss)
  // Overlapped reducers only (unset otherwise): the reduction's whole time on the communication
  // thread, the part of it hidden behind the backward pass (total - exposed, >= 0), and the
  // number of buckets it was cut into.
  std::optional<double> total_ms;
  std::optional<double> hidden_ms;
  std::optional<int64_t> buckets;
};

class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual int rank() const = 0;   // 0-based
  virtual int ranks() const = 0;  // >= 1
  // Replaces grads[0, n) and *loss_sum (this rank's sum of its micro-steps' losses) by their sums
  // over all ranks, identical on every rank. An error (a peer gone, a transport failure) ends the
  // step; the trainer's state is then undefined for this step and the run must stop.
  virtual absl::Status Reduce(float* grads, int64_t n, double* loss_sum, ReduceStats* stats) = 0;

  // The pieces of Reduce, elementwise the same sums: grads[0, n) in place, and *loss_sum. What a
  // bucketed reducer calls per bucket on its communication thread. Default: UNIMPLEMENTED.
  virtual absl::Status ReduceRange(float* grads, int64_t n) {
    return absl::UnimplementedError("this gradient reducer has no range reduction");
  }
  virtual absl::Status ReduceLoss(double* loss_sum) {
    return absl::UnimplementedError("this gradient reducer has no loss reduction");
  }

  // Overlap (see the top of this file). Defaults: not overlapped; FinishStep UNIMPLEMENTED.
  virtual bool overlapped() const { return false; }
  virtual absl::Status BeginStep(float* grads, int64_t n) {
    return absl::UnimplementedError("this gradient reducer does not overlap");
  }
  virtual void Ready(int64_t offset, int64_t count) {}
  virtual absl::Status FinishStep(double* loss_sum, ReduceStats* stats) {
    return absl::UnimplementedError("this gradient reducer does not overlap");
  }
  virtual void AbortStep() {}
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_GRADIENT_REDUCER_H_
