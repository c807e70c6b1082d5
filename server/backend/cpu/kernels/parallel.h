// ParallelFor: the CPU backend's only use of a second core outside GEMMs. One persistent helper
// thread per process sleeps on a mutex/condition variable between jobs (it never spins), so it does
// not compete with OpenBLAS's own pool; kernels call ParallelFor only between GEMMs, never inside
// one, so the two never run at the same time within a program.
//
// A range [0, n) is cut into up to 16 contiguous chunks of at least `min_part` items, handed out
// in order to the calling thread (part 0) and the helper (part 1) as each asks for more, so a
// helper that wakes late (a loaded machine) simply takes fewer chunks, and none if the caller
// finished first. Splitting happens only when n >= 2 * min_part, two threads are allowed
// (SetParallelForThreads; automatic mode follows OpenBLAS: more than one BLAS thread means the
// process gives the backend more than one core) and the helper is idle; otherwise fn(0, 0, n) runs
// inline. Nested calls (from inside fn) and concurrent callers that find the helper busy run
// inline. Results are therefore identical to the serial loop whenever fn's ranges are independent
// (fn must be safe to run concurrently on disjoint ranges; a part's ranges never overlap in time).
// Thread-safety: ParallelFor and SetParallelForThreads may be called from any thread.
#ifndef ANERD_SERVER_BACKEND_CPU_KERNELS_PARALLEL_H_
#define ANERD_SERVER_BACKEND_CPU_KERNELS_PARALLEL_H_

#include <cstdint>

#include "absl/functional/function_ref.h"

namespace anerd::backend::cpu {

// fn(part, begin, end), maybe several times per part: part is 0 (calling thread) or 1 (helper),
// so per-thread scratch can go by part.
using RangeFn = absl::FunctionRef<void(int part, int64_t begin, int64_t end)>;
void ParallelFor(int64_t n, int64_t min_part, RangeFn fn);

// Number of parts ParallelFor may use: 0 = automatic (2 when OpenBLAS runs more than one thread
// and the machine has more than one core, else 1; and when the helper ran under a quarter of the
// chunks on two calls in a row, i.e. it did not get a core in time on a loaded machine, the next
// 32 calls run inline before it is offered work again), 1 = always serial, 2 = always offer work
// to the helper. Returns the previous setting. Meant for tests and benchmarks.
int SetParallelForThreads(int threads);

// Items per part below which splitting costs more than it saves (~0.03 ms of streaming work).
inline constexpr int64_t kParallelMinElements = 32 * 1024;

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_KERNELS_PARALLEL_H_
