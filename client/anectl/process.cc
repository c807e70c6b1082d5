#include "client/anectl/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace anerd::anectl {

ProcessResult RunProcess(const std::vector<std::string>& argv) {
  ProcessResult result;
  int pipe_fds[2];
  if (argv.empty() || ::pipe(pipe_fds) != 0) return result;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc == 0) {
    char buf[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0;) result.output.append(buf, n);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  } else {
    result.output = absl::StrCat("cannot run ", argv[0], ": ", strerror(rc));
  }
  ::close(pipe_fds[0]);
  return result;
}

namespace {

bool IsExecutable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

}  // namespace

bool InPath(const std::string& name) { return !FindInPath(name).empty(); }

absl::StatusOr<std::string> SiblingBinary(const std::string& argv0, const std::string& name) {
  std::string self = argv0.find('/') != std::string::npos ? argv0 : FindInPath(argv0);
  char resolved[PATH_MAX];
  if (!self.empty() && ::realpath(self.c_str(), resolved) != nullptr) {
    std::string dir(resolved);
    dir = dir.substr(0, dir.rfind('/'));
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (IsExecutable(candidate)) return candidate;
  }
  const std::string in_path = FindInPath(name);
  if (!in_path.empty() && ::realpath(in_path.c_str(), resolved) != nullptr)
    return std::string(resolved);
  return absl::NotFoundError(absl::StrCat("cannot find the ", name,
                                          " binary beside anectl or in PATH; pass --anerd PATH"));
}

}  // namespace anerd::anectl
