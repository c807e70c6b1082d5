// UnixListener: the daemon's local endpoint. Binds a Unix stream socket (mode 0600) in a private
// directory (mode 0700, which must belong to the daemon's uid), removes a stale socket left by a
// crashed run, and accepts connections on its own thread. Every connection's peer uid is read from
// the kernel (SO_PEERCRED / getpeereid); connections from another uid are closed and logged, the
// rest are handed to `on_accept` (the gRPC server takes ownership of the fd).
//
// Thread-safety: Start and Stop are called from one thread; `on_accept` runs on the accept thread.
#ifndef ANERD_SERVER_DAEMON_UNIX_LISTENER_H_
#define ANERD_SERVER_DAEMON_UNIX_LISTENER_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace anerd::daemon {

struct UnixListenerOptions {
  std::string path;
  uid_t allowed_uid = 0;
  // Test-only: leave the directory 0755 and the socket 0666 so the peer-uid check (rather than file
  // permissions) is what refuses other users.
  bool world_accessible_for_test = false;
};

class UnixListener {
 public:
  static absl::StatusOr<std::unique_ptr<UnixListener>> Bind(const UnixListenerOptions& options);
  ~UnixListener();  // Stop()

  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  void Start(std::function<void(int fd, uid_t uid)> on_accept);
  // Stops accepting, joins the accept thread, closes and unlinks the socket. Idempotent.
  void Stop();

  uint64_t refused_connections() const { return refused_.load(); }

 private:
  UnixListener(UnixListenerOptions options, int fd, int wake_read, int wake_write);
  void AcceptLoop(const std::function<void(int fd, uid_t uid)>& on_accept);

  UnixListenerOptions options_;
  int fd_;
  int wake_read_;
  int wake_write_;
  std::thread thread_;
  std::atomic<uint64_t> refused_{0};
  bool stopped_ = false;
};

// Who is at the other end of each Unix-socket connection, for client identities (quotas). gRPC
// names a connection it was handed by fd "fd:N"; the accept callback records N's uid before gRPC
// sees the connection, and a later connection that reuses N overwrites the entry, so a lookup by
// a live connection's peer string is always that connection's uid. Thread-safe.
class PeerUids {
 public:
  void Record(int fd, uid_t uid);
  // The uid for a peer string "fd:N", or nullopt.
  std::optional<uint32_t> Lookup(const std::string& peer) const;

 private:
  mutable absl::Mutex mu_;
  std::map<int, uid_t> uids_ ABSL_GUARDED_BY(mu_);
};

// Returns the uid of the process at the other end of a connected Unix socket.
absl::StatusOr<uid_t> PeerUid(int fd);

}  // namespace anerd::daemon

#endif  // ANERD_SERVER_DAEMON_UNIX_LISTENER_H_
