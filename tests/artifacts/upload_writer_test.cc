// UploadWriter on its own: chunks pushed under back-pressure are stored in order and committed
// under their digest; a lying digest is refused with nothing stored; a writer destroyed
// mid-upload joins its thread and leaves no file, and never reports completion; a write that
// fails while the hasher is still busy ends the upload once, cleanly, with nothing stored.
#include "server/artifacts/upload_writer.h"

#include <dirent.h>
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_harness.h"

namespace anerd::artifacts {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> FilesUnder(const std::string& dir, const std::string& prefix = "") {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::vector<std::string> sub = FilesUnder(dir + "/" + name, prefix + name + "/");
    if (sub.empty() && e->d_type != DT_DIR) out.push_back(prefix + name);
    out.insert(out.end(), sub.begin(), sub.end());
  }
  ::closedir(d);
  return out;
}

// What the callbacks saw: how often room was signalled, and the one completion.
struct Events {
  absl::Mutex mu;
  int rooms ABSL_GUARDED_BY(mu) = 0;
  int dones ABSL_GUARDED_BY(mu) = 0;
  std::optional<absl::StatusOr<ArtifactRecord>> result ABSL_GUARDED_BY(mu);

  UploadWriter::RoomFn Room() {
    return [this] {
      absl::MutexLock lock(&mu);
      ++rooms;
    };
  }
  UploadWriter::DoneFn Done() {
    return [this](absl::StatusOr<ArtifactRecord> r) {
      absl::MutexLock lock(&mu);
      ++dones;
      result = std::move(r);
    };
  }
  void WaitForRooms(int n) {
    absl::MutexLock lock(&mu);
    const auto ready = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return rooms >= n || dones > 0; };
    mu.Await(absl::Condition(&ready));
  }
  absl::StatusOr<ArtifactRecord> WaitForDone() {
    absl::MutexLock lock(&mu);
    const auto ready = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return dones > 0; };
    mu.Await(absl::Condition(&ready));
    return *result;
  }
};

class UploadWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> s = store::Store::Open(dir_.path() + "/state");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    absl::StatusOr<std::unique_ptr<ArtifactStore>> a = ArtifactStore::Open(store_.get());
    ASSERT_TRUE(a.ok()) << a.status();
    artifacts_ = *std::move(a);
  }
  std::string BlobRoot() const { return dir_.path() + "/state/blobs/artifacts"; }
  std::unique_ptr<UploadWriter> Start(uint64_t max_queued, Events* events) {
    absl::StatusOr<std::unique_ptr<UploadWriter>> w =
        UploadWriter::Start(artifacts_.get(), max_queued, events->Room(), events->Done());
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *std::move(w) : nullptr;
  }
  static ArtifactStore::NewArtifact Meta(const std::string& sha) {
    return {"dataset", "d.bin", sha, "uid:1", {}};
  }

  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
};

TEST_F(UploadWriterTest, ChunksPushedUnderBackPressureAreStoredInOrder) {
  // 12 MiB in ragged chunks (more than the 8 MiB after which Linux writeback starts) through a
  // queue of 1 byte: nearly every Push fills it, so the producer keeps waiting for room.
  std::mt19937 gen(7);
  std::string bytes(12 << 20, '\0');
  for (char& c : bytes) c = static_cast<char>(gen());
  Events events;
  std::unique_ptr<UploadWriter> writer = Start(1, &events);
  ASSERT_NE(writer, nullptr);
  int waits = 0;
  for (size_t off = 0; off < bytes.size();) {
    const size_t n = std::min<size_t>(bytes.size() - off, (gen() % (1 << 20)) + 1);
    if (!writer->Push(bytes.substr(off, n))) events.WaitForRooms(++waits);
    off += n;
  }
  EXPECT_EQ(FilesUnder(BlobRoot()).size(), 1u) << "the temporary exists while receiving";
  writer->Finish(Meta(Sha256Hex(bytes)));
  absl::StatusOr<ArtifactRecord> r = events.WaitForDone();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, Sha256Hex(bytes));
  EXPECT_EQ(r->size, bytes.size());
  std::ifstream in(artifacts_->BlobPath(r->id), std::ios::binary);
  EXPECT_TRUE(std::string(std::istreambuf_iterator<char>(in), {}) == bytes);
  writer.reset();
  absl::MutexLock lock(&events.mu);
  EXPECT_EQ(events.rooms, waits) << "room is signalled once per Push that found the queue full";
  EXPECT_EQ(events.dones, 1);
  EXPECT_EQ(FilesUnder(BlobRoot()).size(), 1u) << "only the committed blob";
}

TEST_F(UploadWriterTest, ALyingDigestIsRefusedAndNothingIsStored) {
  Events events;
  std::unique_ptr<UploadWriter> writer = Start(8 << 20, &events);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Push("the real bytes"));
  writer->Finish(Meta(Sha256Hex("other bytes")));
  absl::StatusOr<ArtifactRecord> r = events.WaitForDone();
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(Sha256Hex("the real bytes")));
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty()) << "gone by the time on_done runs";
  EXPECT_THAT(*artifacts_->List(), IsEmpty());
}

TEST_F(UploadWriterTest, DestroyedMidUploadJoinsItsThreadAndLeavesNothing) {
  // The writer thread is held inside on_room while the writer is destroyed: the destructor may
  // only return once that callback has returned (the thread is joined, not abandoned).
  absl::Notification in_room, release;
  std::atomic<bool> room_returned{false};
  std::atomic<int> dones{0};
  absl::StatusOr<std::unique_ptr<UploadWriter>> w = UploadWriter::Start(
      artifacts_.get(), 1,
      [&] {
        in_room.Notify();
        release.WaitForNotification();
        room_returned = true;
      },
      [&](absl::StatusOr<ArtifactRecord>) { ++dones; });
  ASSERT_TRUE(w.ok()) << w.status();
  std::unique_ptr<UploadWriter> writer = *std::move(w);
  ASSERT_FALSE(writer->Push(std::string(4096, 'a'))) << "a 1-byte queue is full after one chunk";
  writer->Push(std::string(4096, 'b'));  // queued behind the held callback
  in_room.WaitForNotification();
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(50));  // the destructor is waiting by then (or soon)
    release.Notify();
  });
  writer.reset();
  EXPECT_TRUE(room_returned) << "the destructor returned before its thread did";
  releaser.join();
  EXPECT_EQ(dones, 0) << "a cancelled upload reports nothing";
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty()) << "nothing half-stored";
  EXPECT_THAT(*artifacts_->List(), IsEmpty());
}

TEST_F(UploadWriterTest, AWriteErrorMidUploadEndsItOnceAndStoresNothing) {
  // Files may not grow past 1 MiB (EFBIG; SIGXFSZ ignored) while 6 MiB arrive through a 1-byte
  // queue: the writer fails mid-stream while the hasher thread may still be reading a chunk.
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 1 << 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  Events events;
  std::unique_ptr<UploadWriter> writer = Start(1, &events);
  int waits = 0;
  for (int i = 0; writer != nullptr && i < 24; ++i) {
    if (!writer->Push(std::string(256 << 10, static_cast<char>('a' + i)))) {
      events.WaitForRooms(++waits);
    }
  }
  if (writer != nullptr) writer->Finish(Meta(Sha256Hex("whatever")));
  absl::StatusOr<ArtifactRecord> r =
      writer != nullptr ? events.WaitForDone() : absl::UnknownError("no writer");
  writer.reset();
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("cannot store an uploaded artifact"));
  absl::MutexLock lock(&events.mu);
  EXPECT_EQ(events.dones, 1);
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty()) << "nothing half-stored";
  EXPECT_THAT(*artifacts_->List(), IsEmpty());
}

}  // namespace
}  // namespace anerd::artifacts
