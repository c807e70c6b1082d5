#include "server/worker/channel.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "anerd/worker/v1/worker.pb.h"
#include "gtest/gtest.h"

namespace anerd::worker {
namespace {

namespace pb = ::anerd::worker::v1;

TEST(ChannelTest, MessagesAndDescriptorsCrossIntact) {
  int a = -1, b = -1;
  ASSERT_TRUE(MakeSocketPair(&a, &b).ok());
  Channel front(a), worker(b);
  absl::StatusOr<SharedArena> arena = SharedArena::Create(8192);
  ASSERT_TRUE(arena.ok()) << arena.status();
  std::memcpy(arena->data() + 100, "hello", 5);
  pb::Request req;
  req.set_id(42);
  req.set_new_arena_bytes(arena->size());
  req.mutable_compile()->set_mil_text(std::string(100000, 'x'));  // spans several socket writes
  ASSERT_TRUE(front.Send(req, arena->fd()).ok());
  pb::Request got;
  int fd = -1;
  ASSERT_TRUE(worker.Receive(&got, &fd).ok());
  EXPECT_EQ(got.id(), 42u);
  EXPECT_EQ(got.compile().mil_text().size(), 100000u);
  ASSERT_GE(fd, 0);
  absl::StatusOr<SharedArena> mapped = SharedArena::Map(fd, got.new_arena_bytes());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(std::string(mapped->data() + 100, 5), "hello");
  mapped->data()[200] = 'Z';  // the same memory, seen from both mappings
  EXPECT_EQ(arena->data()[200], 'Z');
}

TEST(ChannelTest, ClosedPeerIsUnavailableAndOversizedFrameIsRefused) {
  int a = -1, b = -1;
  ASSERT_TRUE(MakeSocketPair(&a, &b).ok());
  Channel front(a);
  {
    Channel worker(b);
    const unsigned char huge[4] = {0xff, 0xff, 0xff, 0x7f};  // 2 GiB frame header
    ASSERT_EQ(write(b, huge, 4), 4);
    pb::Response r;
    EXPECT_EQ(front.Receive(&r).code(), absl::StatusCode::kDataLoss);
  }
  pb::Response r;
  EXPECT_EQ(front.Receive(&r).code(), absl::StatusCode::kUnavailable);
  pb::Request req;
  req.set_id(1);
  EXPECT_EQ(front.Send(req).code(), absl::StatusCode::kUnavailable);  // and no SIGPIPE
}

TEST(SharedArenaTest, MapRefusesAnObjectSmallerThanAnnounced) {
  absl::StatusOr<SharedArena> arena = SharedArena::Create(4096);
  ASSERT_TRUE(arena.ok());
  const int fd = dup(arena->fd());
  EXPECT_EQ(SharedArena::Map(fd, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(arena->Contains(0, 4096));
  EXPECT_FALSE(arena->Contains(1, 4096));
  EXPECT_FALSE(arena->Contains(~uint64_t{0}, 2));
}

}  // namespace
}  // namespace anerd::worker
