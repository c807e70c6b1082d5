#include "server/distributed/mpi_reducer.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace anerd::distributed {
namespace {

// MPI counts are int: large buffers go in pieces.
constexpr int64_t kMaxCount = int64_t{1} << 28;

absl::Status MpiError(int code, absl::string_view what) {
  if (code == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(code, text, &len);
  return absl::UnavailableError(absl::StrCat(what, ": ", std::string(text, len)));
}

}  // namespace

absl::StatusOr<MpiReducer::Mode> MpiReducer::ParseMode(absl::string_view mode) {
  if (mode == "sum") return Mode::kSum;
  if (mode == "ordered") return Mode::kOrdered;
  return absl::InvalidArgumentError(
      absl::StrCat("reduce: must be 'sum' or 'ordered', not '", mode, "'"));
}

MpiReducer::MpiReducer(Mode mode) : mode_(mode) {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
}

absl::Status MpiReducer::Reduce(float* grads, int64_t n, double* loss_sum,
                                training::ReduceStats* stats) {
  const auto start = std::chrono::steady_clock::now();
  if (mode_ == Mode::kOrdered) {  // the loss first, as before buckets existed
    ANERD_RETURN_IF_ERROR(ReduceLoss(loss_sum));
    ANERD_RETURN_IF_ERROR(ReduceRange(grads, n));
  } else {
    ANERD_RETURN_IF_ERROR(ReduceRange(grads, n));
    ANERD_RETURN_IF_ERROR(ReduceLoss(loss_sum));
  }
  if (stats != nullptr) {
    stats->exposed_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    stats->bytes = n * static_cast<int64_t>(sizeof(float)) + static_cast<int64_t>(sizeof(double));
  }
  return absl::OkStatus();
}

absl::Status MpiReducer::ReduceRange(float* grads, int64_t n) {
  if (mode_ == Mode::kOrdered) return ReduceOrdered(grads, n);
  for (int64_t at = 0; at < n; at += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - at));
    ANERD_RETURN_IF_ERROR(
        MpiError(MPI_Allreduce(MPI_IN_PLACE, grads + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                 "gradient all-reduce"));
  }
  return absl::OkStatus();
}

absl::Status MpiReducer::ReduceLoss(double* loss_sum) {
  if (mode_ == Mode::kSum) {
    return MpiError(MPI_Allreduce(MPI_IN_PLACE, loss_sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
                    "loss all-reduce");
  }
  std::vector<double> losses(ranks_);
  ANERD_RETURN_IF_ERROR(
      MpiError(MPI_Allgather(loss_sum, 1, MPI_DOUBLE, losses.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD),
               "loss gather"));
  double total = 0;
  for (double l : losses) total += l;  // rank order, from 0 as one rank's accumulation starts
  *loss_sum = total;
  return absl::OkStatus();
}

absl::Status MpiReducer::ReduceOrdered(float* grads, int64_t n) {
  if (rank_ == 0) gathered_.resize(static_cast<size_t>(ranks_) * std::min(n, kOrderedChunk));
  for (int64_t at = 0; at < n; at += kOrderedChunk) {
    const int count = static_cast<int>(std::min(kOrderedChunk, n - at));
    ANERD_RETURN_IF_ERROR(MpiError(MPI_Gather(grads + at, count, MPI_FLOAT, gathered_.data(), count,
                                              MPI_FLOAT, 0, MPI_COMM_WORLD),
                                   "gradient gather"));
    if (rank_ == 0) {
      float* out = grads + at;
      for (int r = 1; r < ranks_; ++r) {
        const float* in = gathered_.data() + static_cast<int64_t>(r) * count;
        for (int i = 0; i < count; ++i) out[i] += in[i];
      }
    }
    ANERD_RETURN_IF_ERROR(
        MpiError(MPI_Bcast(grads + at, count, MPI_FLOAT, 0, MPI_COMM_WORLD), "gradient broadcast"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RankTimes> GatherStepTimes(double step_ms) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  std::vector<double> all(rank == 0 ? ranks : 1);
  ANERD_RETURN_IF_ERROR(
      MpiError(MPI_Gather(&step_ms, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD),
               "step time gather"));
  RankTimes t;
  if (rank != 0) return t;
  const auto slowest = std::max_element(all.begin(), all.end());
  t.slowest_rank = static_cast<int>(slowest - all.begin());
  t.slowest_ms = *slowest;
  t.fastest_ms = *std::min_element(all.begin(), all.end());
  return t;
}

uint64_t WeightDigest(const float* w, int64_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &w[i], sizeof(bits));
    h = (h ^ bits) * 0x100000001b3ULL;
  }
  return h ^ static_cast<uint64_t>(n);
}

absl::Status CheckSameWeights(const float* w, int64_t n, int64_t step) {
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const unsigned long long mine = WeightDigest(w, n);  // NOLINT(runtime/int): MPI's type
  std::vector<unsigned long long> all(ranks);          // NOLINT(runtime/int)
  ANERD_RETURN_IF_ERROR(MpiError(MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1,
                                               MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD),
                                 "weight digest gather"));
  for (int r = 1; r < ranks; ++r) {
    if (all[r] != all[0]) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "weights diverged: rank %d's digest %016x differs from rank 0's %016x after step %d", r,
          all[r], all[0], step));
    }
  }
  return absl::OkStatus();
}

}  // namespace anerd::distributed
