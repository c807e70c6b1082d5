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
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

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

  void Start(std::function<void(int fd)> on_accept);
  // Stops accepting, joins the accept thread, closes and unlinks the socket. Idempotent.
  void Stop();

  uint64_t refused_connections() const { return refused_.load(); }

 private:
  UnixListener(UnixListenerOptions options, int fd, int wake_read, int wake_write);
  void AcceptLoop(const std::function<void(int fd)>& on_accept);

  UnixListenerOptions options_;
  int fd_;
  int wake_read_;
  int wake_write_;
  std::thread thread_;
  std::atomic<uint64_t> refused_{0};
  bool stopped_ = false;
};

// Returns the uid of the process at the other end of a connected Unix socket.
absl::StatusOr<uid_t> PeerUid(int fd);

}  // namespace anerd::daemon

#endif  // ANERD_SERVER_DAEMON_UNIX_LISTENER_H_
