// Test harness for integration tests: runs the real anerd on a private temp socket and state dir,
// and runs anectl (or any program) capturing its output and exit code. Not thread-safe; one
// harness per test.
#ifndef ANERD_TESTS_TESTING_PROCESS_HARNESS_H_
#define ANERD_TESTS_TESTING_PROCESS_HARNESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/temp_dir.h"

namespace anerd::testing {

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal or not started
  std::string out;     // stdout
  std::string err;     // stderr
};

struct RunOptions {
  uid_t run_as_uid = static_cast<uid_t>(-1);  // when set (and we are root), setuid before exec
  std::vector<std::string> extra_env;         // "NAME=value" added to the environment
  std::string stdin_data;
  absl::Duration timeout = absl::Seconds(60);
};

// Runs `argv` to completion (killing it after options.timeout).
RunResult RunProgram(const std::vector<std::string>& argv, const RunOptions& options = {});

// A loopback TCP port nothing listens on right now (bound to port 0, read back, closed), for a
// daemon's --listen or --metrics-listen. 0 if the system refused.
int FreeLoopbackPort();

// A running anerd. Start() waits until the socket answers. The destructor SIGKILLs a daemon that
// is still running.
class DaemonProcess {
 public:
  // `root`: directory holding run/anerd.sock, state/ and the daemon's stderr log.
  explicit DaemonProcess(std::string root) : root_(std::move(root)) {}
  ~DaemonProcess();

  // Starts anerd with --socket/--state-dir/--data-root under root plus `extra_flags` (later flags
  // win); waits up to `wait` for
  // the socket to accept connections. Returns the error and the daemon's stderr if it exited.
  absl::Status Start(const std::vector<std::string>& extra_flags = {},
                     absl::Duration wait = absl::Seconds(20));
  // Sends `signal` and waits for exit; returns the exit code (or -signal) or DEADLINE_EXCEEDED.
  absl::StatusOr<int> Stop(int signal, absl::Duration wait = absl::Seconds(20));

  pid_t pid() const { return pid_; }
  std::string socket() const { return root_ + "/run/anerd.sock"; }
  std::string host() const { return "unix:" + socket(); }
  std::string state_dir() const { return root_ + "/state"; }
  std::string log_path() const { return root_ + "/anerd.stderr"; }
  std::string ReadLog() const;

  // Runs anectl against this daemon: `anectl --host <socket> args...`.
  RunResult Anectl(const std::vector<std::string>& args, const RunOptions& options = {}) const;

 private:
  std::string root_;
  pid_t pid_ = -1;
};

// A helper program running in the background (e.g. chromedriver), its stdout and stderr appended
// to `log_path`. The destructor SIGKILLs it (by its pid) if it still runs; on Linux it also dies
// with the test process.
class BackgroundProcess {
 public:
  BackgroundProcess() = default;
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // Starts `argv` (argv[0] a path). An error when it cannot be started.
  absl::Status Start(const std::vector<std::string>& argv, const std::string& log_path);
  // True while it has not exited.
  bool Running();
  // SIGTERM, then SIGKILL after `grace`; waits for it.
  void Stop(absl::Duration grace = absl::Seconds(5));
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// The first of `candidates` that is an executable file; names without a '/' are looked up on
// $PATH. "" when none is.
std::string FindExecutable(const std::vector<std::string>& candidates);

// Paths of the built binaries.
std::string AnerdBinary();
std::string AnectlBinary();

// True when something accepts connections on the Unix socket at `path`.
bool SocketAccepts(const std::string& path);

std::string ReadFile(const std::string& path);

}  // namespace anerd::testing

#endif  // ANERD_TESTS_TESTING_PROCESS_HARNESS_H_
