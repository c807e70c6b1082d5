// Data-parallel sessions (issue 24): the pure parts of launching and supervising an MPI job —
// mpirun's command line, the hostfile check, the error a failed job leaves for its session, and
// the filter that keeps every step exactly once in the session's log across relaunches.
// Thread-safety: pure functions; a ReplayFilter is used by one supervisor thread at a time.
#ifndef ANERD_SERVER_SESSIONS_MPI_LAUNCH_H_
#define ANERD_SERVER_SESSIONS_MPI_LAUNCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::sessions {

// One launch of `mpirun ... anerd-rank`.
struct RankLaunch {
  std::string mpirun;       // path of mpirun
  std::string rank_binary;  // path of anerd-rank (beside the daemon)
  int ranks = 2;
  std::string hostfile;           // MPI's format; "" = this host only
  std::string backend;            // every rank's backend
  std::string spec_path;          // a fresh start (SpecToText), when `resume_checkpoint` is ""
  std::string resume_checkpoint;  // else: resume from this checkpoint
  int64_t extra_steps = 0;        // with resume: steps added to the total
  std::string checkpoint_path;    // rank 0 writes its checkpoints here
  bool as_root = false;           // the daemon runs as root (mpirun then needs permission)
  std::vector<std::string> extra_rank_args;  // appended to anerd-rank's (tests' fault flags)
};

// mpirun's argv: `mpirun -np N [--hostfile F | --oversubscribe + shared-memory transport]
// [--allow-run-as-root] anerd-rank (--spec F | --resume C --extra-steps K) --backend B
// --checkpoint P --checkpoint-per-step --events - [extra]`. Rank 0's event lines arrive on
// mpirun's stdout; its checkpoints are P.STEP (the supervisor keeps the one it has logged: a job
// ended by a signal can lose lines mpirun had not forwarded yet, and a checkpoint ahead of the
// log would leave steps missing from it).
std::vector<std::string> BuildMpirunArgv(const RankLaunch& launch);

// The hosts of an MPI hostfile ("host [slots=N] [max_slots=N]" lines, '#' comments), at most
// kMaxHostfileBytes. INVALID_ARGUMENT "hostfile PATH line L: ..." naming the host for a bad line;
// NOT_FOUND when the file cannot be read.
inline constexpr int64_t kMaxHostfileBytes = 1 << 20;
absl::StatusOr<std::vector<std::string>> ParseHostfile(const std::string& path);
// Every host resolves (getaddrinfo; blocking: call on the supervisor thread). UNAVAILABLE
// "hostfile PATH: host H does not resolve: <why>" naming the first that does not.
absl::Status CheckHostsResolve(const std::string& path, const std::vector<std::string>& hosts);

// What ended a job, for the session's error: the rank (and host) anerd-rank's error line names
// ("anerd-rank: rank R on H: ..."), else the rank and node mpirun reports ("process rank R with
// PID P on node H exited on signal S"), else the end of mpirun's stderr; with the exit status
// (`wait_status` as from waitpid).
std::string DescribeJobFailure(int wait_status, absl::string_view stderr_tail);

// Keeps every step exactly once in a session's log across relaunches. A relaunch resumes from the
// last checkpoint, so the steps the failed attempt logged after it are computed again; they are
// not logged again (as a local session replaying after its worker died, session_manager.h), and
// their recomputed loss is compared with the logged one (a difference means the relaunch did not
// continue exactly, which the session reports as a warning).
class ReplayFilter {
 public:
  // Steps up to `replay_until` are in the log already, with the losses `logged` (of the steps
  // after the checkpoint; at most kMaxLoggedLosses are kept).
  static constexpr size_t kMaxLoggedLosses = 100000;
  void Reset(int64_t replay_until, std::map<int64_t, double> logged);
  enum class Verdict { kNew, kReplayed, kReplayedDiffers };
  // A relayed step: new (log it), or replayed (drop it), noting whether its loss differs from the
  // logged one (NaN equals NaN here; a step whose loss was not kept counts as equal).
  Verdict Classify(int64_t step, double loss) const;
  int64_t replay_until() const { return replay_until_; }

 private:
  int64_t replay_until_ = 0;
  std::map<int64_t, double> logged_;
};

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_MPI_LAUNCH_H_
