// DwWorker: one thread that runs queued tasks in order (the trainer's weight-gradient GEMMs run
// on it while the device computes the next kernel).
//
// CPU budget (issue 22): the worker holds a CPU seat (server/backend/cpu_seats.h) while it runs a
// task, so the CPU backend's pool leaves its helper out meanwhile: a kernel then runs on the
// owner's thread alone beside the task (two compute threads on two cores, not three), and on both
// threads whenever the worker is idle (the forward pass, a backward with no dW backlog). The
// tasks' own work is unchanged (each dW GEMM stays one cblas call, in submission order).
//
// Threads: Submit and Wait are called from one owner thread. A task that throws does not end the
// worker thread: the first exception is kept and rethrown by the next Wait, on the owner's thread,
// where the trainer's task boundary turns it into a status. The destructor runs what is queued,
// then joins.
#ifndef ANERD_SERVER_TRAINING_DW_WORKER_H_
#define ANERD_SERVER_TRAINING_DW_WORKER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace anerd::training {

class DwWorker {
 public:
  DwWorker();
  ~DwWorker();
  DwWorker(const DwWorker&) = delete;
  DwWorker& operator=(const DwWorker&) = delete;

  void Submit(std::function<void()> fn);
  // Waits for every queued task; rethrows the first exception a task threw.
  void Wait();
  // Waits at most `timeout` for every queued task; true when none is pending (call Wait() then,
  // for the exception). Lets the owner do other work (the trainer's yield) while it waits.
  bool WaitFor(std::chrono::microseconds timeout);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<std::function<void()>> queue_;
  int64_t pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;  // the first exception of a task, for Wait()
  std::thread thread_;        // last: starts after the members above exist
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_DW_WORKER_H_
