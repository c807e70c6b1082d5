// The gradient reduction of data-parallel training over MPI (issue 24): a
// training::GradientReducer on MPI_COMM_WORLD. Only anerd-rank (rank_main.cc) links MPI; the daemon
// never does.
//
// Modes (TrainSpec::reduce):
//   "sum"     MPI_Allreduce(MPI_SUM) of the gradients in place, and of the loss. With 2 ranks the
//             result is g0 + g1 on both (IEEE addition is commutative), so a 2-rank step equals
//             accum 2 on one rank bit for bit. With more ranks MPI picks the association order.
//   "ordered" gather-then-sum in rank order: the gradients are gathered to rank 0 in chunks of
//             kOrderedChunk floats per rank, summed ((g0 + g1) + g2) + ..., and broadcast; the
//             losses are gathered everywhere and summed in rank order. Equal to accum N on one
//             rank for any N, at the cost of rank 0's extra traffic.
// Bytes reported per step are this rank's payload (gradients and one loss), whatever MPI's
// algorithm sends on the wire.
// Thread-safety: one thread at a time (the trainer's, or a BucketedReducer's communication thread
// during a step: MPI_THREAD_SERIALIZED); MPI must be initialised and stay so while it lives.
#ifndef ANERD_SERVER_DISTRIBUTED_MPI_REDUCER_H_
#define ANERD_SERVER_DISTRIBUTED_MPI_REDUCER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/training/gradient_reducer.h"

namespace anerd::distributed {

inline constexpr int64_t kOrderedChunk = int64_t{1} << 20;  // floats per rank per gather

class MpiReducer : public training::GradientReducer {
 public:
  enum class Mode { kSum, kOrdered };
  // INVALID_ARGUMENT for a mode other than "sum" or "ordered".
  static absl::StatusOr<Mode> ParseMode(absl::string_view mode);
  explicit MpiReducer(Mode mode);

  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }
  absl::Status Reduce(float* grads, int64_t n, double* loss_sum,
                      training::ReduceStats* stats) override;
  // The pieces (bucketed_reducer.h reduces bucket by bucket through them): the mode's sum of
  // grads[0, n) (elementwise: a range gives the same bits as the whole buffer) and of the loss.
  absl::Status ReduceRange(float* grads, int64_t n) override;
  absl::Status ReduceLoss(double* loss_sum) override;

 private:
  absl::Status ReduceOrdered(float* grads, int64_t n);
  Mode mode_;
  int rank_ = 0;
  int ranks_ = 1;
  std::vector<float> gathered_;  // rank 0, ordered mode: ranks × chunk
};

// Per-step facts every rank contributes to rank 0's step event.
struct RankTimes {
  int slowest_rank = 0;
  double slowest_ms = 0;
  double fastest_ms = 0;
};
// Gathers each rank's step time to rank 0 (collective). On other ranks the result is zeros.
absl::StatusOr<RankTimes> GatherStepTimes(double step_ms);

// A cheap 64-bit digest of `n` floats' bits (order-sensitive word hash; not cryptographic).
uint64_t WeightDigest(const float* w, int64_t n);
// Collective: every rank's digest of its weights after `step`; FAILED_PRECONDITION on every rank
// naming the first rank whose digest differs from rank 0's ("weights diverged: rank 1's digest
// ... differs from rank 0's ... after step 20").
absl::Status CheckSameWeights(const float* w, int64_t n, int64_t step);

}  // namespace anerd::distributed

#endif  // ANERD_SERVER_DISTRIBUTED_MPI_REDUCER_H_
