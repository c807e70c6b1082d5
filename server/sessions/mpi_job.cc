#include "server/sessions/mpi_job.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <dirent.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace anerd::sessions {
namespace {

absl::Status Errno(const char* what) {
  return absl::InternalError(absl::StrCat("mpirun: ", what, ": ", std::strerror(errno)));
}

// In the child, between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(char* const* argv, int out_w, int err_w, pid_t parent) {
  setpgid(0, 0);
  // The daemon blocks its termination signals in every thread (a signal thread waits for them)
  // and ignores SIGPIPE; exec keeps both, and mpirun with SIGTERM blocked could never be
  // stopped. The child starts with the defaults.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaction(sig, &dfl, nullptr);
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(127);  // the daemon's thread already ended
#endif
  const int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0) dup2(null_fd, 0);
  dup2(out_w, 1);
  dup2(err_w, 2);
  const long max_fd = sysconf(_SC_OPEN_MAX);  // NOLINT(runtime/int)
  for (long fd = 3; fd < (max_fd > 0 && max_fd < 65536 ? max_fd : 65536); ++fd) close(fd);
  execve(argv[0], argv, environ);
  _exit(127);
}

// The processes whose parent is `parent` (Linux: /proc; elsewhere none are found and the ranks'
// own orphan check ends them). mpirun starts its local ranks as children in process groups of
// their own, so signalling mpirun's group does not reach them.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
#ifdef __linux__
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* d = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(d->d_name));
    if (pid <= 0) continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
    std::string stat;
    std::getline(in, stat);
    const size_t paren = stat.rfind(')');  // "pid (comm) state ppid ..."; comm may hold spaces
    if (paren == std::string::npos || paren + 4 >= stat.size()) continue;
    if (std::atoi(stat.c_str() + stat.find(' ', paren + 3)) == parent) out.push_back(pid);
  }
  closedir(proc);
#endif
  return out;
}

// True while `pid` exists and is not a zombie.
bool Running(pid_t pid) {
  if (kill(pid, 0) != 0) return false;
#ifdef __linux__
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  std::getline(in, stat);
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
#else
  return true;
#endif
}

}  // namespace

MpiJob::~MpiJob() {
  bool running = false;
  {
    absl::MutexLock lock(&mu_);
    running = pid_ > 0 && !reaped_;
  }
  if (running) {
    Terminate();
    Wait(absl::Seconds(5));
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

absl::Status MpiJob::Start(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Errno("pipe");
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return Errno("pipe");
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    return Errno("fork");
  }
  if (pid == 0) ExecChild(args.data(), out[1], err[1], parent);
  setpgid(pid, pid);  // also here: no race with a Terminate right after Start
  close(out[1]);
  close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  absl::MutexLock lock(&mu_);
  pid_ = pid;
  return absl::OkStatus();
}

void MpiJob::Drain(int fd) {
  char buf[65536];
  const ssize_t n = read(fd, buf, sizeof(buf));
  if (n <= 0) {
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      close(fd);
      (fd == out_fd_ ? out_fd_ : err_fd_) = -1;
    }
    return;
  }
  if (fd == err_fd_) {
    err_tail_.append(buf, static_cast<size_t>(n));
    if (err_tail_.size() > kMaxStderrTail) {
      err_tail_.erase(0, err_tail_.size() - kMaxStderrTail);
    }
    return;
  }
  out_buf_.append(buf, static_cast<size_t>(n));
}

bool MpiJob::NextLine(std::string* line) {
  for (;;) {
    const size_t nl = out_buf_.find('\n');
    if (nl != std::string::npos) {
      const bool skipped = skipping_;
      skipping_ = false;
      if (!skipped) {
        line->assign(out_buf_, 0, nl);
        out_buf_.erase(0, nl + 1);
        return true;
      }
      out_buf_.erase(0, nl + 1);
      continue;
    }
    if (out_buf_.size() > kMaxLineBytes) {  // an overlong line: dropped up to its end
      if (!skipping_) ++dropped_lines_;
      skipping_ = true;
      out_buf_.clear();
    }
    if (out_fd_ < 0) {
      // The rest of stderr, for the error (bounded in time: a process that inherited it may
      // outlive mpirun).
      for (int i = 0; i < 100 && err_fd_ >= 0; ++i) {
        pollfd e = {err_fd_, POLLIN, 0};
        if (poll(&e, 1, 20) > 0) Drain(err_fd_);
      }
      return false;
    }
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    const int n = poll(fds, err_fd_ >= 0 ? 2 : 1, -1);
    if (n < 0 && errno != EINTR) {
      close(out_fd_);
      out_fd_ = -1;
      continue;
    }
    if (err_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) Drain(err_fd_);
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) Drain(out_fd_);
  }
}

void MpiJob::SignalGroup(int sig) {
  absl::MutexLock lock(&mu_);
  if (pid_ <= 0 || reaped_) return;
  for (pid_t child : ChildrenOf(pid_)) children_.insert(child);
  kill(pid_, sig);
  kill(-pid_, sig);
  for (pid_t child : children_) kill(child, sig);  // the ranks mpirun started on this host
}

void MpiJob::Terminate() {
  terminated_.store(true);
  SignalGroup(SIGTERM);
}

int MpiJob::Wait(absl::Duration grace) {
  pid_t pid;
  {
    absl::MutexLock lock(&mu_);
    pid = pid_;
  }
  if (pid <= 0) return 0;
  int status = 0;
  absl::Time kill_at = absl::InfiniteFuture();
  bool killed = false;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    if (terminated_.load() && kill_at == absl::InfiniteFuture()) kill_at = absl::Now() + grace;
    if (!killed && absl::Now() >= kill_at) {
      SignalGroup(SIGKILL);
      killed = true;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  // Whatever of the group outlived mpirun (a rank it failed to end) goes too, and is gone before
  // this returns (bounded: a member stuck in the kernel must not hang the daemon's shutdown), so no
  // rank outlives the session's job or the daemon.
  kill(-pid, SIGKILL);
  std::set<pid_t> children;
  {
    absl::MutexLock lock(&mu_);
    children = children_;
  }
  for (pid_t child : children) kill(child, SIGKILL);
  for (int i = 0; i < 200; ++i) {
    bool left = kill(-pid, 0) == 0;
    for (pid_t child : children) left = left || Running(child);
    if (!left) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::MutexLock lock(&mu_);
  reaped_ = true;
  return status;
}

}  // namespace anerd::sessions
