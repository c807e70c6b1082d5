// FrameBuffer: the bounded queue between the dashboard's feed (server/ui/ui_hub.h) and one
// browser's server-sent-event stream. The feed never waits for a browser: Push always returns at
// once, and when the queue would exceed `max_frames` frames or `max_bytes` bytes the OLDEST
// queued frames are dropped (a live page wants the newest data) and counted. The stream's thread
// takes frames with Pop, which waits at most `wait`.
//
// Thread-safety: every method may be called from any thread.
#ifndef ANERD_SERVER_UI_FRAME_BUFFER_H_
#define ANERD_SERVER_UI_FRAME_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace anerd::ui {

class FrameBuffer {
 public:
  // Both bounds must be at least 1; a single frame larger than `max_bytes` is dropped on Push.
  FrameBuffer(size_t max_frames, size_t max_bytes);

  FrameBuffer(const FrameBuffer&) = delete;
  FrameBuffer& operator=(const FrameBuffer&) = delete;

  // Queues `frame`, dropping the oldest frames as needed to stay within the bounds. Returns the
  // number of frames dropped by this call. A closed buffer drops nothing and queues nothing.
  size_t Push(std::string frame);

  // The oldest queued frame; waits up to `wait` for one. nullopt on timeout or once closed.
  std::optional<std::string> Pop(absl::Duration wait);

  // Wakes Pop and refuses further frames (the stream ends). Idempotent.
  void Close();

  bool closed() const;
  uint64_t dropped() const;  // frames dropped since construction
  size_t queued_frames() const;
  size_t queued_bytes() const;

 private:
  const size_t max_frames_, max_bytes_;
  mutable absl::Mutex mu_;
  std::deque<std::string> frames_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace anerd::ui

#endif  // ANERD_SERVER_UI_FRAME_BUFFER_H_
