#include "server/worker/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/platform_io.h"

namespace anerd::worker {
namespace {

#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // macOS: SO_NOSIGPIPE is set on the socket instead
#endif

absl::Status Errno(const char* what) {
  const int e = errno;
  if (e == EPIPE || e == ECONNRESET || e == ENOTCONN) {
    return absl::UnavailableError(absl::StrCat(what, ": peer closed"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(e)));
}

// Sends all of `data`; the first sendmsg carries `pass_fd` when >= 0.
absl::Status SendAll(int fd, const char* data, size_t size, int pass_fd) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  while (size > 0) {
    iovec iov{const_cast<char*>(data), size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (pass_fd >= 0) {
      std::memset(control, 0, sizeof(control));
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    const ssize_t n = sendmsg(fd, &msg, kSendFlags);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send to worker channel");
    }
    pass_fd = -1;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads exactly `size` bytes; a descriptor arriving with them goes to *received_fd.
absl::Status ReceiveAll(int fd, char* data, size_t size, int* received_fd) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  while (size > 0) {
    iovec iov{data, size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(fd, &msg, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("receive from worker channel");
    }
    if (n == 0) return absl::UnavailableError("worker channel closed");
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int got = -1;
      std::memcpy(&got, CMSG_DATA(c), sizeof(int));
      if (*received_fd >= 0) close(*received_fd);
      *received_fd = got;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

Channel::Channel(int fd) : fd_(fd) {
#if defined(SO_NOSIGPIPE)
  const int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
}

Channel::~Channel() {
  if (fd_ >= 0) close(fd_);
}

absl::Status Channel::Send(const google::protobuf::MessageLite& message, int pass_fd) {
  const size_t size = message.ByteSizeLong();
  if (size > kMaxFrameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker message of ", size, " bytes exceeds the frame limit"));
  }
  std::string frame(4 + size, '\0');
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((size >> (8 * i)) & 0xff);
  if (!message.SerializeToArray(frame.data() + 4, static_cast<int>(size))) {
    return absl::InternalError("cannot serialize a worker message");
  }
  return SendAll(fd_, frame.data(), frame.size(), pass_fd);
}

absl::Status Channel::Receive(google::protobuf::MessageLite* message, int* received_fd) {
  int fd = -1;
  unsigned char header[4];
  absl::Status status = ReceiveAll(fd_, reinterpret_cast<char*>(header), 4, &fd);
  uint32_t size = 0;
  if (status.ok()) {
    size = header[0] | (header[1] << 8) | (header[2] << 16) | (uint32_t{header[3]} << 24);
    if (size > kMaxFrameBytes) {
      status = absl::DataLossError(absl::StrCat("worker frame of ", size, " bytes is too large"));
    }
  }
  std::string body;
  if (status.ok()) {
    body.resize(size);
    status = ReceiveAll(fd_, body.data(), size, &fd);
  }
  if (status.ok() && !message->ParseFromString(body)) {
    status = absl::DataLossError("unparsable worker message");
  }
  if (received_fd != nullptr && status.ok()) {
    *received_fd = fd;
  } else if (fd >= 0) {
    close(fd);
  }
  return status;
}

bool Channel::WaitReadable(int timeout_ms) const {
  pollfd p{fd_, POLLIN, 0};
  int n;
  do {
    n = poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

void Channel::Shutdown() {
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
}

absl::Status MakeSocketPair(int* a, int* b) {
  int fds[2];
#if defined(SOCK_CLOEXEC)
  // Atomic, so a worker spawned concurrently by another pool cannot inherit either end.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return Errno("socketpair");
#else
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return Errno("socketpair");
  for (int fd : fds) fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  *a = fds[0];
  *b = fds[1];
  return absl::OkStatus();
}

SharedArena::~SharedArena() { Reset(); }

SharedArena::SharedArena(SharedArena&& other) noexcept
    : fd_(other.fd_), data_(other.data_), size_(other.size_) {
  other.fd_ = -1;
  other.data_ = nullptr;
  other.size_ = 0;
}

SharedArena& SharedArena::operator=(SharedArena&& other) noexcept {
  if (this != &other) {
    Reset();
    std::swap(fd_, other.fd_);
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }
  return *this;
}

void SharedArena::Reset() {
  if (data_ != nullptr) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  fd_ = -1;
  size_ = 0;
}

absl::StatusOr<SharedArena> SharedArena::Create(uint64_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("empty shared arena");
  const int fd = CreateAnonymousSharedMemory();
  if (fd < 0) return absl::ResourceExhaustedError(absl::StrCat("shared memory: ", strerror(errno)));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int e = errno;
    close(fd);
    return absl::ResourceExhaustedError(
        absl::StrCat("shared memory of ", bytes, " bytes: ", strerror(e)));
  }
  return Map(fd, bytes);
}

absl::StatusOr<SharedArena> SharedArena::Map(int fd, uint64_t bytes) {
  SharedArena arena;
  arena.fd_ = fd;
  struct stat st {};
  if (bytes == 0 || fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared arena is smaller than the announced ", bytes, " bytes"));
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("mmap of ", bytes, " bytes: ", strerror(errno)));
  }
  arena.data_ = static_cast<char*>(p);
  arena.size_ = bytes;
  return arena;
}

}  // namespace anerd::worker
