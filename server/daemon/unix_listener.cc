#include "server/daemon/unix_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace anerd::daemon {
namespace {

std::string Errno() { return std::strerror(errno); }

std::string ParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

absl::StatusOr<sockaddr_un> MakeAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", path, " is ", path.size(),
                                                   " bytes; the limit is ",
                                                   sizeof(addr.sun_path) - 1));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// The socket directory must be ours: we tighten it to 0700 and refuse shared directories.
absl::Status PrepareDirectory(const std::string& dir, uid_t uid, bool world_accessible) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    ANERD_RETURN_IF_ERROR(MakeDirs(dir, 0700));
    if (::stat(dir.c_str(), &st) != 0) return absl::InternalError("stat " + dir + ": " + Errno());
  }
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(dir + " is not a directory");
  if (st.st_uid != uid) {
    return absl::PermissionDeniedError(absl::StrCat("socket directory ", dir, " belongs to uid ",
                                                    st.st_uid, ", not to this user (uid ", uid,
                                                    "); choose a private directory with --socket"));
  }
  const mode_t mode = world_accessible ? 0755 : 0700;
  if (::chmod(dir.c_str(), mode) != 0) {
    return absl::PermissionDeniedError("chmod " + dir + ": " + Errno());
  }
  return absl::OkStatus();
}

// A socket file left by a crashed daemon refuses connections; a live one accepts them.
absl::Status RemoveStaleSocket(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(path + " exists and is not a socket; remove it first");
  }
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return absl::InternalError("socket: " + Errno());
  const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(probe);
  if (rc == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket ", path, " is in use by another process (is anerd already running?)"));
  }
  if (err != ECONNREFUSED && err != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot probe existing socket ", path, ": ", std::strerror(err)));
  }
  spdlog::warn("removing stale socket {} left by an earlier run", path);
  if (::unlink(path.c_str()) != 0)
    return absl::PermissionDeniedError("unlink " + path + ": " + Errno());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uid_t> PeerUid(int fd) {
#if defined(SO_PEERCRED)
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::InternalError("SO_PEERCRED: " + Errno());
  }
  return cred.uid;
#else
  uid_t uid = 0;
  gid_t gid = 0;
  if (::getpeereid(fd, &uid, &gid) != 0) return absl::InternalError("getpeereid: " + Errno());
  return uid;
#endif
}

void PeerUids::Record(int fd, uid_t uid) {
  absl::MutexLock lock(&mu_);
  uids_[fd] = uid;
}

std::optional<uint32_t> PeerUids::Lookup(const std::string& peer) const {
  int fd = -1;
  if (!absl::StartsWith(peer, "fd:") || !absl::SimpleAtoi(peer.substr(3), &fd)) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = uids_.find(fd);
  if (it == uids_.end()) return std::nullopt;
  return it->second;
}

UnixListener::UnixListener(UnixListenerOptions options, int fd, int wake_read, int wake_write)
    : options_(std::move(options)), fd_(fd), wake_read_(wake_read), wake_write_(wake_write) {}

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Bind(
    const UnixListenerOptions& options) {
  ANERD_ASSIGN_OR_RETURN(sockaddr_un addr, MakeAddress(options.path));
  ANERD_RETURN_IF_ERROR(PrepareDirectory(ParentDir(options.path), options.allowed_uid,
                                         options.world_accessible_for_test));
  ANERD_RETURN_IF_ERROR(RemoveStaleSocket(options.path, addr));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket: " + Errno());
  const mode_t old_mask = ::umask(0177);
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  ::umask(old_mask);
  const mode_t mode = options.world_accessible_for_test ? 0666 : 0600;
  if (rc != 0 || ::chmod(options.path.c_str(), mode) != 0 || ::listen(fd, 128) != 0) {
    const std::string err = Errno();
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.path, ": ", err));
  }
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    ::close(fd);
    return absl::InternalError("pipe: " + Errno());
  }
  return std::unique_ptr<UnixListener>(new UnixListener(options, fd, pipe_fds[0], pipe_fds[1]));
}

UnixListener::~UnixListener() { Stop(); }

void UnixListener::Start(std::function<void(int fd, uid_t uid)> on_accept) {
  thread_ = std::thread([this, on_accept = std::move(on_accept)] { AcceptLoop(on_accept); });
}

void UnixListener::AcceptLoop(const std::function<void(int fd, uid_t uid)>& on_accept) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll on {} failed: {}", options_.path, Errno());
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = ::accept(fd_, nullptr, nullptr);  // accept4 is Linux-only
    if (conn < 0) continue;
    ::fcntl(conn, F_SETFD, FD_CLOEXEC);
    ::fcntl(conn, F_SETFL, ::fcntl(conn, F_GETFL) | O_NONBLOCK);
    absl::StatusOr<uid_t> uid = PeerUid(conn);
    if (!uid.ok() || *uid != options_.allowed_uid) {
      refused_.fetch_add(1);
      spdlog::warn("refused connection from uid {} on {} (only uid {} may connect)",
                   uid.ok() ? std::to_string(*uid) : uid.status().ToString(), options_.path,
                   options_.allowed_uid);
      ::close(conn);
      continue;
    }
    on_accept(conn, *uid);
  }
}

void UnixListener::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    const char byte = 1;
    (void)::write(wake_write_, &byte, 1);
    thread_.join();
  }
  ::close(fd_);
  ::close(wake_read_);
  ::close(wake_write_);
  ::unlink(options_.path.c_str());
}

}  // namespace anerd::daemon
