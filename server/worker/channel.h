// The front<->worker transport: length-prefixed protobuf messages on a connected SOCK_STREAM Unix
// socket (optionally carrying one file descriptor with SCM_RIGHTS), and SharedArena, the
// shared-memory region through which weights and tensor bytes move without being copied through
// the socket.
//
// Frame: 4-byte little-endian length, then the serialized message; lengths above
// kMaxFrameBytes are refused before allocating (the channel is then unusable).
// Thread-safety: a Channel is not thread-safe (one sender and one receiver at a time, which the
// worker pool guarantees by serialising calls). SharedArena is a plain owner of a mapping.
#ifndef ANERD_SERVER_WORKER_CHANNEL_H_
#define ANERD_SERVER_WORKER_CHANNEL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace anerd::worker {

// Above the parser's 64 MiB MIL text limit plus message overhead, so any verified program fits.
inline constexpr uint32_t kMaxFrameBytes = 80 << 20;

class Channel {
 public:
  explicit Channel(int fd);  // takes ownership of a connected stream socket
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Sends one message; `pass_fd` >= 0 travels with it (the caller keeps its own copy).
  // UNAVAILABLE when the peer is gone (no SIGPIPE is raised).
  absl::Status Send(const google::protobuf::MessageLite& message, int pass_fd = -1);
  // Blocks for one whole message. `received_fd` (may be null: then any fd is closed) gets the
  // descriptor sent with it, or -1. UNAVAILABLE "closed" on EOF or a reset; DATA_LOSS for an
  // oversized or unparsable frame.
  absl::Status Receive(google::protobuf::MessageLite* message, int* received_fd = nullptr);
  // Waits up to `timeout_ms` for bytes (or EOF) to be readable; false on timeout.
  bool WaitReadable(int timeout_ms) const;
  // Shuts both directions down; a blocked Receive on the other end then sees EOF.
  void Shutdown();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Creates a connected socket pair, both ends close-on-exec.
absl::Status MakeSocketPair(int* a, int* b);

// An anonymous shared-memory region (memfd on Linux, an unlinked POSIX shm object on macOS),
// mapped read-write. The descriptor can be passed to another process, which maps the same bytes.
class SharedArena {
 public:
  SharedArena() = default;
  ~SharedArena();
  SharedArena(SharedArena&& other) noexcept;
  SharedArena& operator=(SharedArena&& other) noexcept;
  SharedArena(const SharedArena&) = delete;
  SharedArena& operator=(const SharedArena&) = delete;

  // A new zero-filled region of `bytes` (> 0). RESOURCE_EXHAUSTED if the system refuses.
  static absl::StatusOr<SharedArena> Create(uint64_t bytes);
  // Maps a region received from the other process; takes ownership of `fd`. INVALID_ARGUMENT if
  // the object is smaller than `bytes`.
  static absl::StatusOr<SharedArena> Map(int fd, uint64_t bytes);

  char* data() const { return data_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  bool valid() const { return data_ != nullptr; }
  // True when [offset, offset + size) lies inside the region (overflow-safe).
  bool Contains(uint64_t offset, uint64_t size) const {
    return offset <= size_ && size <= size_ - offset;
  }

 private:
  void Reset();
  int fd_ = -1;
  char* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace anerd::worker

#endif  // ANERD_SERVER_WORKER_CHANNEL_H_
