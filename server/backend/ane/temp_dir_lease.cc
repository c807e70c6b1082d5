#include "server/backend/ane/temp_dir_lease.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace anerd::backend::ane {
namespace {

struct TempDirUse {
  int users_fd = -1;  // holds LOCK_SH on "<dir>.anerd-users"
  int refs = 0;       // uses in this process
};

std::mutex& Mutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

std::map<std::string, TempDirUse>& Uses() {
  static auto* uses = new std::map<std::string, TempDirUse>;
  return *uses;
}

int OpenLockFile(const std::string& path) {
  return open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
}

// Takes the cross-process guard of `dir` (blocking; every holder keeps it briefly). -1 on error.
int LockGuard(const std::string& dir) {
  const int fd = OpenLockFile(dir + ".anerd-guard");
  if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void UnlockGuard(int fd) {
  flock(fd, LOCK_UN);
  close(fd);
}

}  // namespace

absl::Status AcquireTempDir(const std::string& dir, const std::function<bool()>& populate) {
  std::lock_guard<std::mutex> lock(Mutex());
  auto it = Uses().find(dir);
  if (it != Uses().end()) {
    ++it->second.refs;
    return absl::OkStatus();
  }
  const int guard = LockGuard(dir);
  if (guard < 0) return absl::InternalError(absl::StrCat("cannot lock ", dir, ".anerd-guard"));
  const int users = OpenLockFile(dir + ".anerd-users");
  if (users < 0) {
    UnlockGuard(guard);
    return absl::InternalError(absl::StrCat("cannot open ", dir, ".anerd-users"));
  }
  bool ok = true;
  if (flock(users, LOCK_EX | LOCK_NB) == 0) ok = populate();  // nobody else uses it
  ok = ok && flock(users, LOCK_SH) == 0;  // under the guard: nobody tries LOCK_EX meanwhile
  UnlockGuard(guard);
  if (!ok) {
    close(users);
    return absl::InternalError(absl::StrCat("cannot populate ", dir));
  }
  Uses()[dir] = TempDirUse{users, 1};
  return absl::OkStatus();
}

void ReleaseTempDir(const std::string& dir, const std::function<void()>& remove) {
  std::lock_guard<std::mutex> lock(Mutex());
  auto it = Uses().find(dir);
  if (it == Uses().end() || --it->second.refs > 0) return;
  const int users = it->second.users_fd;
  Uses().erase(it);
  const int guard = LockGuard(dir);
  if (guard >= 0) {
    flock(users, LOCK_UN);
    if (flock(users, LOCK_EX | LOCK_NB) == 0) remove();  // the last user on the machine
  }
  close(users);
  if (guard >= 0) UnlockGuard(guard);
}

}  // namespace anerd::backend::ane
