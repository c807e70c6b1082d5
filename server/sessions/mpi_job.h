// MpiJob: the `mpirun` child process of one data-parallel session (issue 24; the supervisor in
// session_distributed.cc owns it). Its stdout carries rank 0's event lines; its stderr is kept as
// a bounded tail for the error a failed job leaves.
//
// Lifetime: the child is started in its own process group; on Linux it gets SIGTERM when the
// thread that started it ends (PR_SET_PDEATHSIG), so a daemon that dies (even by SIGKILL) leaves
// no mpirun behind, and mpirun then ends its ranks. The starting thread must therefore stay alive
// until Wait() returns (the supervisor thread does). The destructor terminates and reaps a child
// still running.
//
// Bounds: a stdout line longer than kMaxLineBytes is dropped (counted in dropped_lines()); the
// stderr tail keeps the last kMaxStderrTail bytes.
//
// Thread-safety: Start, NextLine, Wait and the destructor on the owning (supervisor) thread;
// Terminate from any thread (it only sends signals).
#ifndef ANERD_SERVER_SESSIONS_MPI_JOB_H_
#define ANERD_SERVER_SESSIONS_MPI_JOB_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace anerd::sessions {

class MpiJob {
 public:
  static constexpr size_t kMaxLineBytes = 1 << 20;
  static constexpr size_t kMaxStderrTail = 16 << 10;

  MpiJob() = default;
  ~MpiJob();
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;

  // Starts argv (argv[0] an absolute path) with the daemon's environment, stdin /dev/null.
  // INTERNAL naming the call that failed.
  absl::Status Start(const std::vector<std::string>& argv);
  // The next complete stdout line (without '\n'); false once stdout is closed (the job ended).
  // Drains stderr meanwhile.
  bool NextLine(std::string* line);
  // Reaps the child after stdout closed; the waitpid status. After Terminate, a child still alive
  // `grace` later is killed (SIGKILL to its process group). Returns once the group is gone too
  // (waiting at most 2 s for members mpirun left behind after their SIGKILL).
  int Wait(absl::Duration grace = absl::Seconds(10));
  // Asks the job to end: SIGTERM to mpirun (which ends its ranks). Safe from any thread.
  void Terminate();
  bool terminated() const { return terminated_.load(); }

  std::string stderr_tail() const { return err_tail_; }
  int64_t dropped_lines() const { return dropped_lines_; }

 private:
  void Drain(int fd);  // reads what `fd` has, without blocking
  void SignalGroup(int sig);

  absl::Mutex mu_;       // pid_ against reuse after reaping
  pid_t pid_ = -1;       // guarded by mu_ for Terminate
  bool reaped_ = false;  // guarded by mu_
  // mpirun's children seen when it was signalled (its local ranks, in groups of their own):
  // signalled with it and killed, and waited for, once it is reaped. Guarded by mu_.
  std::set<pid_t> children_;
  std::atomic<bool> terminated_{false};
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_buf_;    // stdout bytes not yet returned as lines
  bool skipping_ = false;  // inside an overlong line
  std::string err_tail_;
  int64_t dropped_lines_ = 0;
};

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_MPI_JOB_H_
