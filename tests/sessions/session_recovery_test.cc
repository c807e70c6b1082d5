// Session directories tell enough to rebuild a lost session record, and checkpoint paths follow
// the state dir they are in (issue 16, item 9).
#include "server/sessions/session_recovery.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/training/config.h"

namespace anerd::sessions {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SessionRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/session_recovery_test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string SessionDir(const std::string& id) {
    const std::string d = dir_ + "/sessions/" + id;
    fs::create_directories(d);
    return d;
  }
  std::string dir_;
};

TEST_F(SessionRecoveryTest, CheckpointPathsAreStoredRelativeToTheStateDir) {
  EXPECT_EQ(StoredCheckpointPath(dir_, dir_ + "/sessions/a/checkpoint.bin"),
            "sessions/a/checkpoint.bin");
  EXPECT_EQ(StoredCheckpointPath(dir_, "/elsewhere/checkpoint.bin"), "/elsewhere/checkpoint.bin");
  EXPECT_EQ(StoredCheckpointPath(dir_, ""), "");
  EXPECT_EQ(ResolveCheckpointPath(dir_, "a", "sessions/a/checkpoint.bin"),
            dir_ + "/sessions/a/checkpoint.bin");
  EXPECT_EQ(ResolveCheckpointPath(dir_, "a", ""), "");
}

TEST_F(SessionRecoveryTest, OldAbsolutePathsStillLoadAndACopyUsesItsOwnFile) {
  const std::string own = dir_ + "/sessions/a/checkpoint.bin";
  // An old row written in this state dir.
  EXPECT_EQ(ResolveCheckpointPath(dir_, "a", own), own);
  // An old row written in another state dir, this one a copy: while the copy has no file of that
  // name the stored path is kept (and fails loudly when used) ...
  const std::string old = "/old/state/sessions/a/checkpoint.bin";
  EXPECT_EQ(ResolveCheckpointPath(dir_, "a", old), old);
  // ... and once it has one, the copy's file is used.
  std::ofstream(SessionDir("a") + "/checkpoint.bin") << "x";
  EXPECT_EQ(ResolveCheckpointPath(dir_, "a", old), own);
}

TEST_F(SessionRecoveryTest, ManifestRoundTripsAndOrphansAreListed) {
  training::TrainSpec spec;
  spec.model = training::ModelConfigByName("tiny").value();
  spec.steps = 77;
  spec.data_path = "/data/stories.txt";
  ASSERT_TRUE(WriteSessionManifest(SessionDir("s1"), "s1", "mine", "cpu", 1234, spec).ok());
  SessionDir("s2");
  EXPECT_THAT(OrphanSessionDirs(dir_, {"s2"}), ElementsAre("s1"));
  absl::StatusOr<RecoveredSession> r = RecoverSessionDir(dir_, "s1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, "s1");
  EXPECT_EQ(r->name, "mine");
  EXPECT_EQ(r->backend, "cpu");
  EXPECT_EQ(r->started_ms, 1234);
  EXPECT_EQ(r->spec.data_path, "/data/stories.txt");
  EXPECT_EQ(r->total_steps, 77);
  EXPECT_EQ(r->checkpoint_path, "");
  absl::StatusOr<RecoveredSession> none = RecoverSessionDir(dir_, "s2");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("sessions/s2"));
}

TEST_F(SessionRecoveryTest, AGarbageManifestIsNotTrusted) {
  std::ofstream(SessionDir("s3") + "/session.json") << "{\"spec\": 5, \"name\": [1]}";
  EXPECT_EQ(RecoverSessionDir(dir_, "s3").status().code(), absl::StatusCode::kNotFound);
  std::ofstream(SessionDir("s4") + "/session.json") << "\xff\xfe not json";
  EXPECT_EQ(RecoverSessionDir(dir_, "s4").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace anerd::sessions
