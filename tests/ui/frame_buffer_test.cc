// The dashboard's per-page buffer: a page that never reads costs a bounded number of frames and
// bytes, the oldest frames go first and every dropped frame is counted.
#include "server/ui/frame_buffer.h"

#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace anerd::ui {
namespace {

TEST(FrameBufferTest, AFullBufferDropsTheOldestFramesAndCountsThem) {
  FrameBuffer buffer(/*max_frames=*/4, /*max_bytes=*/1 << 20);
  size_t dropped_by_pushes = 0;
  for (int i = 0; i < 10; ++i) dropped_by_pushes += buffer.Push("frame " + std::to_string(i));
  EXPECT_EQ(buffer.queued_frames(), 4u);
  EXPECT_EQ(buffer.dropped(), 6u);
  EXPECT_EQ(dropped_by_pushes, 6u);
  for (int i = 6; i < 10; ++i) {
    std::optional<std::string> frame = buffer.Pop(absl::ZeroDuration());
    ASSERT_TRUE(frame.has_value());
    EXPECT_EQ(*frame, "frame " + std::to_string(i));
  }
  EXPECT_FALSE(buffer.Pop(absl::ZeroDuration()).has_value());
}

TEST(FrameBufferTest, TheByteBoundHoldsWhateverTheFrameCount) {
  FrameBuffer buffer(/*max_frames=*/1000, /*max_bytes=*/100);
  for (int i = 0; i < 50; ++i) buffer.Push(std::string(30, 'x'));
  EXPECT_LE(buffer.queued_bytes(), 100u);
  EXPECT_EQ(buffer.queued_frames(), 3u);
  EXPECT_EQ(buffer.dropped(), 47u);
  // A single frame over the bound is dropped itself; what is queued stays.
  EXPECT_EQ(buffer.Push(std::string(101, 'y')), 1u);
  EXPECT_EQ(buffer.queued_frames(), 3u);
  EXPECT_EQ(buffer.dropped(), 48u);
}

TEST(FrameBufferTest, CloseWakesAWaitingReaderAndRefusesFrames) {
  FrameBuffer buffer(4, 1024);
  std::optional<std::string> got = std::string("unset");
  std::thread reader([&] { got = buffer.Pop(absl::Hours(1)); });
  buffer.Close();
  reader.join();  // would hang for an hour if Close did not wake Pop
  EXPECT_FALSE(got.has_value());
  EXPECT_TRUE(buffer.closed());
  EXPECT_EQ(buffer.Push("late"), 0u);
  EXPECT_EQ(buffer.queued_frames(), 0u);
}

TEST(FrameBufferTest, PopHandsOverAFramePushedWhileWaiting) {
  FrameBuffer buffer(4, 1024);
  std::optional<std::string> got;
  std::thread reader([&] { got = buffer.Pop(absl::Hours(1)); });
  buffer.Push("hello");
  reader.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, "hello");
}

}  // namespace
}  // namespace anerd::ui
