// ParallelFor: the CPU backend's one thread pool (the calling thread plus one persistent helper
// that sleeps on a mutex/condition variable between jobs; it never spins). It runs the backend's
// GEMMs (split into fixed blocks or across batch entries, each block a single-threaded cblas call)
// and its streaming passes (softmax, reductions, elementwise chains, conversions).
//
// One pool, not two: OpenBLAS's own workers busy-wait (sched_yield) for ~0.1 s after every
// threaded call, so a second pool running between GEMMs got half a core at best (measured: every
// non-GEMM pass of sdpaBwd2 took twice as long as with passive OpenBLAS workers). On OpenBLAS,
// ConfigureBlasThreading therefore makes BLAS single-threaded for the whole process and gives its
// thread count to this pool instead (the first GEMM does so in a process that has not). This
// assumes OpenBLAS's pthreads build (Debian's default; an OpenMP build keeps thread counts per
// calling thread). Accelerate (macOS) is left alone and keeps running its GEMMs on its own
// threads; there the pool runs only the other passes.
//
// A range [0, n) is cut into up to 16 contiguous chunks of at least `min_part` items, handed out
// in order to the calling thread (part 0) and the helper (part 1) as each asks for more, so a
// helper that wakes late (a loaded machine) simply takes fewer chunks, and none if the caller
// finished first. Splitting happens only when n >= 2 * min_part, two threads are allowed
// (SetParallelForThreads; automatic mode: the pool width ConfigureBlasThreading found) and the
// helper is idle and no CPU seat is held (server/backend/cpu_seats.h: a compute thread outside the
// pool, such as the trainer's dW worker, is using the helper's core); otherwise fn(0, 0, n) runs
// inline. A helper inside a job takes no further chunk once a seat is held (the caller runs them).
// Nested calls (from inside fn) and concurrent callers that find the helper busy run inline.
// Results are therefore identical to the serial loop whenever fn's ranges are independent (fn must
// be safe to run concurrently on disjoint ranges; a part's ranges never overlap in time).
// Thread-safety: every function here may be called from any thread.
#ifndef ANERD_SERVER_BACKEND_CPU_KERNELS_PARALLEL_H_
#define ANERD_SERVER_BACKEND_CPU_KERNELS_PARALLEL_H_

#include <cstdint>

#include "absl/functional/function_ref.h"

namespace anerd::backend::cpu {

// fn(part, begin, end), maybe several times per part: part is 0 (calling thread) or 1 (helper),
// so per-thread scratch can go by part.
using RangeFn = absl::FunctionRef<void(int part, int64_t begin, int64_t end)>;
void ParallelFor(int64_t n, int64_t min_part, RangeFn fn);

// Makes this process's BLAS single-threaded (OpenBLAS; no-op on Accelerate) and sizes the pool
// from the thread count BLAS had (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, else the core count),
// so the process keeps using as many cores as before, through one pool. Idempotent: the first call
// decides; later calls return the same width. Call it before any other thread uses BLAS (the CPU
// backend's constructor and anerd's main do). Returns the pool width (1 or 2).
int ConfigureBlasThreading();

// Number of parts ParallelFor may use: 0 = automatic (the pool width from ConfigureBlasThreading,
// or before that call 2 when BLAS runs more than one thread on a multi-core machine; and when the
// helper ran under a quarter of the chunks of two judged calls in a row — calls that kept the
// caller busy for 0.5 ms or more; shorter ones count neither way — i.e. it did not get a core in
// time on a loaded machine, the next 32 calls run inline before it is offered work again), 1 =
// always serial, 2 = always offer work to the helper (while no CPU seat is held). Returns the
// previous setting. Meant for tests
// and benchmarks.
int SetParallelForThreads(int threads);

// Items per part below which splitting costs more than it saves (~0.03 ms of streaming work).
inline constexpr int64_t kParallelMinElements = 32 * 1024;

}  // namespace anerd::backend::cpu

#endif  // ANERD_SERVER_BACKEND_CPU_KERNELS_PARALLEL_H_
