// CheckStateDb: a corrupt or lost anerd.db is detected before the stores use it (issue 16, item 9).
#include "server/store/state_db.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/kernel_store.h"
#include "server/store/sqlite.h"

namespace anerd::cache {
namespace {

namespace fs = std::filesystem;
using store::CheckStateDb;
using store::StateDbCheck;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class StateDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/state_db_test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string db() const { return dir_ + "/anerd.db"; }
  void MakeSessionDir() { fs::create_directories(dir_ + "/sessions/abc123"); }
  // A healthy database as the stores leave it.
  void MakeHealthyDb() {
    absl::StatusOr<std::unique_ptr<KernelStore>> store = KernelStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
  }

  std::string dir_;
};

TEST_F(StateDbTest, AFreshStateDirHasNoFindings) {
  absl::StatusOr<StateDbCheck> check = CheckStateDb(dir_);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_FALSE(check->registry_lost);
  EXPECT_THAT(check->findings, IsEmpty());
}

TEST_F(StateDbTest, AHealthyDatabaseIsLeftAlone) {
  MakeHealthyDb();
  MakeSessionDir();
  const auto before = fs::last_write_time(db());
  absl::StatusOr<StateDbCheck> check = CheckStateDb(dir_);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_FALSE(check->registry_lost);
  EXPECT_THAT(check->findings, IsEmpty());
  EXPECT_EQ(fs::last_write_time(db()), before);
}

TEST_F(StateDbTest, AMissingDatabaseWithSessionDirsIsALostRegistry) {
  MakeSessionDir();
  absl::StatusOr<StateDbCheck> check = CheckStateDb(dir_);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->registry_lost);
  ASSERT_THAT(check->findings, SizeIs(1));
  EXPECT_THAT(check->findings[0], HasSubstr("is missing but 1 session directories"));
}

TEST_F(StateDbTest, AnEmptyDatabaseWithBlobsIsALostRegistry) {
  fs::create_directories(dir_ + "/blobs/ab");
  std::ofstream(dir_ + "/blobs/ab/ab" + std::string(62, '0')) << "x";
  std::ofstream(db()).flush();  // 0 bytes
  absl::StatusOr<StateDbCheck> check = CheckStateDb(dir_);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->registry_lost);
  ASSERT_THAT(check->findings, SizeIs(1));
  EXPECT_THAT(check->findings[0], HasSubstr("is empty (0 bytes)"));
  EXPECT_THAT(check->findings[0], HasSubstr("1 blobs"));
}

TEST_F(StateDbTest, AGarbageFileIsMovedAside) {
  std::ofstream(db()) << std::string(4096, 'g');
  absl::StatusOr<StateDbCheck> check = CheckStateDb(dir_);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->registry_lost);
  ASSERT_FALSE(check->moved_to.empty());
  EXPECT_TRUE(fs::exists(check->moved_to));
  EXPECT_FALSE(fs::exists(db()));
  ASSERT_THAT(check->findings, SizeIs(1));
  EXPECT_THAT(check->findings[0], HasSubstr("was corrupt"));
  EXPECT_THAT(check->findings[0], HasSubstr(check->moved_to));
  // The stores then start on a fresh database, and the next check reports the moved file.
  MakeHealthyDb();
  absl::StatusOr<StateDbCheck> again = CheckStateDb(dir_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->registry_lost);
  EXPECT_THAT(again->findings, ElementsAre(HasSubstr("by an earlier start")));
}

TEST_F(StateDbTest, ADamagedPageInsideAValidDatabaseIsCorruption) {
  MakeHealthyDb();
  fs::remove(db() + "-wal");
  fs::remove(db() + "-shm");
  ASSERT_GE(fs::file_size(db()), 8192u);
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919) >> 3);
  const int fd = ::open(db().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, garbage.data(), garbage.size(), 4096), 4096);
  ::close(fd);
  absl::StatusOr<StateDbCheck> check = CheckStateDb(dir_);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->registry_lost);
  EXPECT_FALSE(check->moved_to.empty());
}

}  // namespace
}  // namespace anerd::cache
