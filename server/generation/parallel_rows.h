// ParallelRows: the generation decoder's thread pool for its matrix-vector products (decode is
// memory bound: one token of stories110m reads ~440 MB of fp32 weights, and one core does not
// saturate the memory bus). server/generation may not use the CPU backend's pool
// (server/backend/cpu/kernels/parallel.h: layering, docs/ARCHITECTURE.md), so it has its own.
//
// Process-wide: the calling thread plus up to kMaxRowHelpers persistent helper threads (the core
// count minus one by default), started on first use and never destroyed. A range [0, n) is cut
// into contiguous chunks of at least `grain` items handed out in order by an atomic counter, so a
// helper that wakes late on a loaded machine simply takes fewer chunks (none if the caller already
// took them all). A helper that finished a job polls for the next one for up to kRowSpin before
// sleeping on a condition variable: a decoded token makes ~5 calls per layer a fraction of a
// millisecond apart, and a futex wake-up per call would cost more than the polling.
//
// Automatic mode backs off on a loaded machine: when the caller had to wait 0.5 ms or more for a
// helper that lost its core mid-chunk in two calls in a row, the next 64 calls run inline.
//
// fn(begin, end) must be safe to run concurrently on disjoint ranges; each item is computed by
// exactly one thread, so results do not depend on the thread count. Calls from several threads at
// once, and nested calls, run inline on the caller when the pool is busy.
// Thread-safety: every function here may be called from any thread.
#ifndef ANERD_SERVER_GENERATION_PARALLEL_ROWS_H_
#define ANERD_SERVER_GENERATION_PARALLEL_ROWS_H_

#include <chrono>
#include <cstdint>

#include "absl/functional/function_ref.h"

namespace anerd::generation {

inline constexpr int kMaxRowHelpers = 7;
inline constexpr auto kRowSpin = std::chrono::microseconds(200);

using RowFn = absl::FunctionRef<void(int64_t begin, int64_t end)>;

// Runs fn over [0, n) (nothing when n <= 0), split when n >= 2 * grain and threads are allowed.
void ParallelRows(int64_t n, int64_t grain, RowFn fn);

// Threads ParallelRows may use, the caller included: 0 = automatic (the core count, at most
// kMaxRowHelpers + 1, with the back-off above), 1 = always inline, k = at most k (no back-off).
// Returns the previous setting. For the decoder's options, tests and benchmarks.
int SetRowThreads(int threads);

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_PARALLEL_ROWS_H_
