#include "server/ui/frame_buffer.h"

#include <algorithm>
#include <utility>

namespace anerd::ui {

FrameBuffer::FrameBuffer(size_t max_frames, size_t max_bytes)
    : max_frames_(std::max<size_t>(max_frames, 1)), max_bytes_(std::max<size_t>(max_bytes, 1)) {}

size_t FrameBuffer::Push(std::string frame) {
  absl::MutexLock lock(&mu_);
  if (closed_) return 0;
  if (frame.size() > max_bytes_) {
    ++dropped_;
    return 1;
  }
  size_t dropped = 0;
  while (!frames_.empty() &&
         (frames_.size() + 1 > max_frames_ || bytes_ + frame.size() > max_bytes_)) {
    bytes_ -= frames_.front().size();
    frames_.pop_front();
    ++dropped;
  }
  bytes_ += frame.size();
  frames_.push_back(std::move(frame));
  dropped_ += dropped;
  return dropped;
}

std::optional<std::string> FrameBuffer::Pop(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !frames_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
  if (closed_ || frames_.empty()) return std::nullopt;
  std::string frame = std::move(frames_.front());
  frames_.pop_front();
  bytes_ -= frame.size();
  return frame;
}

void FrameBuffer::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  frames_.clear();
  bytes_ = 0;
}

bool FrameBuffer::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

uint64_t FrameBuffer::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

size_t FrameBuffer::queued_frames() const {
  absl::MutexLock lock(&mu_);
  return frames_.size();
}

size_t FrameBuffer::queued_bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace anerd::ui
