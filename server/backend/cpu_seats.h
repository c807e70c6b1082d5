// CPU seats: compute threads of the process that run beside the CPU backend's pool (issue 22).
//
// The CPU backend runs its programs on a pool as wide as the cores allow (at most two threads:
// cpu/kernels/parallel.h). A thread outside that pool that runs compute work of its own while
// programs run — the trainer's weight-gradient worker (training/dw_worker.h) — holds a
// ScopedCpuSeat for as long as that work runs. While any seat is held, the pool leaves its helper
// thread out: a program then runs on its calling thread alone (the pool's splits depend only on
// shapes, never on how many threads run them, so the results are the same bits), and a helper
// already inside a job takes no further chunks. So the process keeps to one compute thread per
// core instead of running three on two cores, and the helper is back as soon as the seat is free.
//
// Thread-safety: any thread; seats count (several holders, nesting).
#ifndef ANERD_SERVER_BACKEND_CPU_SEATS_H_
#define ANERD_SERVER_BACKEND_CPU_SEATS_H_

namespace anerd::backend {

class ScopedCpuSeat {
 public:
  ScopedCpuSeat();   // takes a seat
  ~ScopedCpuSeat();  // gives it back
  ScopedCpuSeat(const ScopedCpuSeat&) = delete;
  ScopedCpuSeat& operator=(const ScopedCpuSeat&) = delete;
};

// Seats held right now, by all threads of the process (a relaxed read: a seat taken concurrently
// may be seen one chunk of work late).
int CpuSeatsHeld();

}  // namespace anerd::backend

#endif  // ANERD_SERVER_BACKEND_CPU_SEATS_H_
