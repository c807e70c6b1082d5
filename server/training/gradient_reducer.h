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
// Thread-safety: called on the trainer's thread only.
#ifndef ANERD_SERVER_TRAINING_GRADIENT_REDUCER_H_
#define ANERD_SERVER_TRAINING_GRADIENT_REDUCER_H_

#include <cstdint>

#include "absl/status/status.h"

namespace anerd::training {

struct ReduceStats {
  double exposed_ms = 0;  // wall time the trainer waited for the reduction
  int64_t bytes = 0;      // payload bytes this rank contributed (gradients and the loss)
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
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_GRADIENT_REDUCER_H_
