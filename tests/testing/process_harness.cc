#include "tests/testing/process_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <netinet/in.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace anerd::testing {
namespace {

// Reads both pipes until EOF; writes stdin_data first (small inputs only).
void Drain(int out_fd, int err_fd, RunResult* result) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open_fds = 2;
  char buf[8192];
  while (open_fds > 0) {
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? result->out : result->err).append(buf, n);
      } else {
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
}

// Forks and execs argv[0] with stdout and stderr on `log_fd` (closed here, in the parent); the
// child dies with the test binary. The child's pid, or -1 when fork failed.
pid_t SpawnLogged(const std::vector<std::string>& argv, int log_fd) {
  const pid_t pid = ::fork();
  if (pid == 0) {
#if defined(__linux__)
    // A test binary that dies without running destructors must not leave daemons behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(log_fd);
  return pid;
}

}  // namespace

std::string AnerdBinary() { return ANERD_BIN; }
std::string AnectlBinary() { return ANECTL_BIN; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RunResult RunProgram(const std::vector<std::string>& argv, const RunOptions& options) {
  RunResult result;
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0 || ::pipe(in_pipe) != 0) return result;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      ::close(fd);
    }
    if (options.run_as_uid != static_cast<uid_t>(-1)) {
      if (::setgid(options.run_as_uid) != 0 || ::setuid(options.run_as_uid) != 0) _exit(126);
      ::setenv("HOME", "/nonexistent", 1);
    }
    for (const std::string& kv : options.extra_env) ::putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (!options.stdin_data.empty()) {
    (void)::write(in_pipe[1], options.stdin_data.data(), options.stdin_data.size());
  }
  ::close(in_pipe[1]);
  // A watchdog kills the child if it outlives the timeout; Drain returns when pipes close.
  const pid_t watchdog = ::fork();
  if (watchdog == 0) {
    ::usleep(static_cast<useconds_t>(absl::ToInt64Microseconds(options.timeout)));
    ::kill(pid, SIGKILL);
    _exit(0);
  }
  Drain(out_pipe[0], err_pipe[0], &result);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::kill(watchdog, SIGKILL);
  ::waitpid(watchdog, nullptr, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool SocketAccepts(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

absl::Status DaemonProcess::Start(const std::vector<std::string>& extra_flags,
                                  absl::Duration wait) {
  // --config= keeps a developer's ~/.config/anerd/anerd.conf out of the tests.
  std::vector<std::string> argv = {AnerdBinary(),          "--config=",
                                   "--socket=" + socket(), "--state-dir=" + state_dir(),
                                   "--log-level=debug",    "--data-root=" + root_};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  const int log_fd = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_ = SpawnLogged(argv, log_fd);
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("anerd exited with ", WEXITSTATUS(status), ": ", ReadLog()));
    }
    if (SocketAccepts(socket())) return absl::OkStatus();
    ::usleep(20000);
  }
  return absl::DeadlineExceededError("anerd did not start listening: " + ReadLog());
}

absl::StatusOr<int> DaemonProcess::Stop(int signal, absl::Duration wait) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  ::kill(pid_, signal);
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    ::usleep(10000);
  }
  return absl::DeadlineExceededError("anerd did not exit in time");
}

std::string DaemonProcess::ReadLog() const { return ReadFile(log_path()); }

RunResult DaemonProcess::Anectl(const std::vector<std::string>& args,
                                const RunOptions& options) const {
  std::vector<std::string> argv = {AnectlBinary(), "--host", host()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, options);
}

BackgroundProcess::~BackgroundProcess() { Stop(absl::ZeroDuration()); }

absl::Status BackgroundProcess::Start(const std::vector<std::string>& argv,
                                      const std::string& log_path) {
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log_fd < 0) return absl::InternalError("cannot open " + log_path);
  pid_ = SpawnLogged(argv, log_fd);
  if (pid_ < 0) return absl::InternalError("fork failed");
  return absl::OkStatus();
}

bool BackgroundProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;
  return pid_ > 0;
}

void BackgroundProcess::Stop(absl::Duration grace) {
  if (!Running()) return;
  ::kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + grace;
  while (Running() && absl::Now() < deadline) ::usleep(10000);
  if (Running()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

std::string FindExecutable(const std::vector<std::string>& candidates) {
  const char* path_env = ::getenv("PATH");
  const std::vector<std::string> dirs =
      absl::StrSplit(path_env != nullptr ? path_env : "/usr/bin:/bin", ':', absl::SkipEmpty());
  for (const std::string& c : candidates) {
    if (c.find('/') != std::string::npos) {
      if (::access(c.c_str(), X_OK) == 0) return c;
      continue;
    }
    for (const std::string& d : dirs) {
      const std::string full = d + "/" + c;
      if (::access(full.c_str(), X_OK) == 0) return full;
    }
  }
  return "";
}

int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace anerd::testing
