#include "server/worker/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/platform_io.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace anerd::worker {
namespace {

// Moves `fd` to a number >= 10 (close-on-exec) so that dup2 onto 3/4 in the child never maps a
// descriptor onto itself (which would keep its close-on-exec flag).
int MoveHigh(int fd) {
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return high;
}

// posix_spawn with fd 3 = `channel_fd`, fd 4 = `heartbeat_fd`, an empty signal mask and SIGPIPE
// at its default. Returns 0 or an errno value.
int Spawn(const std::string& binary, std::vector<std::string>& args, int channel_fd,
          int heartbeat_fd, pid_t* pid) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, channel_fd, 3);
  posix_spawn_file_actions_adddup2(&actions, heartbeat_fd, 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int rc = posix_spawn(pid, binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

}  // namespace

absl::Time MonotonicNow() {
  return absl::UnixEpoch() + absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

std::string DescribeWait(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return absl::StrCat("killed by signal ", sig, " (", name != nullptr ? name : "?", ")");
  }
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  return "stopped unexpectedly";
}

bool Process::TryReap() {
  if (reaped) return true;
  int status = 0;
  const pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == pid || (r < 0 && errno == ECHILD)) {
    reaped = true;
    wait_status = status;
  }
  return reaped;
}

void Process::Kill() {
  if (!reaped) kill(pid, SIGKILL);
}

void Process::KillAndWait() {
  if (reaped) return;
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  reaped = true;
  wait_status = status;
}

bool Process::HeartbeatStale(absl::Time now, absl::Duration timeout) {
  const uint64_t beats =
      heartbeat.valid()
          ? __atomic_load_n(&reinterpret_cast<HeartbeatPage*>(heartbeat.data())->beats,
                            __ATOMIC_RELAXED)
          : 0;
  if (beats != last_beats) {
    last_beats = beats;
    last_beat_change = now;
    return false;
  }
  return now - last_beat_change > timeout;
}

absl::StatusOr<std::unique_ptr<Process>> SpawnWorkerProcess(const SpawnOptions& options,
                                                            uint64_t generation) {
  int front_fd = -1, child_fd = -1;
  ANERD_RETURN_IF_ERROR(MakeSocketPair(&front_fd, &child_fd));
  child_fd = MoveHigh(child_fd);
  auto p = std::make_unique<Process>();
  p->channel = std::make_unique<Channel>(front_fd);
  absl::StatusOr<SharedArena> heartbeat = SharedArena::Create(sizeof(HeartbeatPage));
  const int hb_fd = heartbeat.ok() ? fcntl(heartbeat->fd(), F_DUPFD_CLOEXEC, 10) : -1;
  if (child_fd < 0 || hb_fd < 0) {
    if (child_fd >= 0) close(child_fd);
    if (hb_fd >= 0) close(hb_fd);
    return heartbeat.ok() ? absl::ResourceExhaustedError("out of file descriptors")
                          : heartbeat.status();
  }
  p->heartbeat = *std::move(heartbeat);
  std::vector<std::string> args = {options.binary, "--worker_channel_fd=3",
                                   "--worker_heartbeat_fd=4",
                                   absl::StrCat("--worker_parent_pid=", getpid())};
  args.insert(args.end(), options.args.begin(), options.args.end());
  const int rc = Spawn(options.binary, args, child_fd, hb_fd, &p->pid);
  close(child_fd);
  close(hb_fd);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start a ", options.name, " worker (",
                                            options.binary, "): ", std::strerror(rc)));
  }
  p->generation = generation;
  p->started = absl::Now();
  p->last_beat_change = MonotonicNow();
  return p;
}

void PrepareWorkerProcess(int64_t parent_pid, int keep1, int keep2) {
  // No PR_SET_PDEATHSIG: it fires when the *thread* that spawned the worker exits, and any front
  // thread may replace a worker. The heartbeat thread watches the parent instead.
  if (parent_pid != 0 && getppid() != parent_pid) std::_Exit(0);
  // The front owns the orderly shutdown: a terminal's Ctrl-C or a service manager's SIGTERM to
  // the process group must not kill the worker before the front has drained it.
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  // The front's descriptors are close-on-exec, but a library may have leaked one.
  CloseDescriptorsExcept(keep1, keep2);
}

void StartHeartbeat(int fd, int64_t parent_pid) {
  if (fd < 0) return;
  absl::StatusOr<SharedArena> page = SharedArena::Map(fd, sizeof(HeartbeatPage));
  if (!page.ok()) {
    spdlog::warn("worker heartbeat disabled: {}", page.status().ToString());
    return;
  }
  auto* arena = new SharedArena(*std::move(page));  // lives until the process exits
  std::thread([arena, parent_pid] {
    auto* beats = &reinterpret_cast<HeartbeatPage*>(arena->data())->beats;
    for (;;) {
      if (parent_pid != 0 && getppid() != parent_pid) std::_Exit(0);
      __atomic_add_fetch(beats, 1, __ATOMIC_RELAXED);
      absl::SleepFor(absl::Milliseconds(100));
    }
  }).detach();
}

}  // namespace anerd::worker
