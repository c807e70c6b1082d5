// InstanceLock: one anerd per state directory. Holds an exclusive flock(2) on <state>/anerd.lock
// for the process lifetime and records "pid socket" in it so a second instance can say who is
// running. The kernel releases the lock when the process dies, so a crash never leaves a stale
// lock.
#ifndef ANERD_SERVER_DAEMON_INSTANCE_LOCK_H_
#define ANERD_SERVER_DAEMON_INSTANCE_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace anerd::daemon {

class InstanceLock {
 public:
  // Acquires the lock. FAILED_PRECONDITION "another anerd (pid N) is running with socket S" when
  // held by another process.
  static absl::StatusOr<std::unique_ptr<InstanceLock>> Acquire(const std::string& state_dir,
                                                               const std::string& socket_path);
  ~InstanceLock();  // releases the lock (the file stays; its content is rewritten by the next
                    // owner)

  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

 private:
  explicit InstanceLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace anerd::daemon

#endif  // ANERD_SERVER_DAEMON_INSTANCE_LOCK_H_
