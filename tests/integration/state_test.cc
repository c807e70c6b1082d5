// The state dir survives a damaged or lost database and being copied (issue 16, item 9): a 0-byte
// anerd.db with session directories present, garbage inside anerd.db, and a copied state dir each
// start a daemon that still knows its sessions, says what happened (`anectl doctor`) and uses its
// own files.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/session_fixture.h"

namespace anerd {
namespace {

namespace fs = std::filesystem;
using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using ::testing::StartsWith;
using Json = nlohmann::json;

class StateTest : public testing::SessionFixture {
 protected:
  // Runs a short session to completion (its final checkpoint written), stops the daemon with
  // SIGTERM and returns the session id.
  std::string CompletedSession(const std::string& root) {
    DaemonProcess d(root);
    EXPECT_TRUE(d.Start().ok());
    const std::string id = Start(d, {"--steps", "12", "--name", "kept"});
    Events(d, id);  // waits until the session ends
    EXPECT_EQ(Show(d, id)["state"], "completed");
    EXPECT_EQ(*d.Stop(SIGTERM), 0);
    return id;
  }

  static std::vector<Json> DoctorStateChecks(DaemonProcess& d) {
    RunResult r = d.Anectl({"doctor", "--json"});
    std::vector<Json> out;
    const Json j = Json::parse(r.out, nullptr, false);
    if (!j.is_object()) {
      ADD_FAILURE() << "doctor printed no JSON: " << r.out << r.err;
      return out;
    }
    for (const Json& c : j["checks"]) {
      if (c["name"] == "state dir") out.push_back(c);
    }
    return out;
  }

  // The session is back, completed at step 12, with its checkpoint in `state_dir`.
  void ExpectRecovered(DaemonProcess& d, const std::string& id) {
    RunResult list = d.Anectl({"train", "ls", "--json"});
    ASSERT_EQ(list.exit_code, 0) << list.err;
    EXPECT_THAT(list.out, HasSubstr(id)) << "the session directory was orphaned";
    Json s = Show(d, id);
    EXPECT_EQ(s["state"], "completed");
    EXPECT_EQ(s["step"], 12);
    EXPECT_EQ(s["name"], "kept");
    EXPECT_THAT(s["checkpoint_path"].get<std::string>(), StartsWith(d.state_dir() + "/"));
    // And it can be used: exporting reads the checkpoint.
    EXPECT_EQ(d.Anectl({"train", "export", id, dir_.path() + "/model.bin"}).exit_code, 0);
  }

  static void RemoveWal(const std::string& db) {
    fs::remove(db + "-wal");
    fs::remove(db + "-shm");
  }
};

TEST_F(StateTest, EmptyDatabaseWithSessionsPresentRebuildsTheRegistry) {
  const std::string id = CompletedSession(dir_.path());
  DaemonProcess d(dir_.path());
  const std::string db = d.state_dir() + "/anerd.db";
  ASSERT_EQ(::truncate(db.c_str(), 0), 0);
  RemoveWal(db);
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  ExpectRecovered(d, id);
  std::vector<Json> checks = DoctorStateChecks(d);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0]["status"], "warn");
  EXPECT_THAT(checks[0]["detail"].get<std::string>(), HasSubstr("is empty (0 bytes)"));
  EXPECT_THAT(d.ReadLog(), HasSubstr("STATE DATABASE LOST"));
}

TEST_F(StateTest, GarbageInsideTheDatabaseIsDetectedMovedAsideAndRebuilt) {
  const std::string id = CompletedSession(dir_.path());
  DaemonProcess d(dir_.path());
  const std::string db = d.state_dir() + "/anerd.db";
  RemoveWal(db);  // a clean shutdown checkpointed it; make sure the pages come from the file
  ASSERT_GE(fs::file_size(db), 8192u);
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919) >> 3);
  const int fd = ::open(db.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, garbage.data(), garbage.size(), 4096), 4096);
  ::close(fd);
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  ExpectRecovered(d, id);
  std::vector<std::string> moved;
  for (const auto& e : fs::directory_iterator(d.state_dir())) {
    if (e.path().filename().string().rfind("anerd.db.corrupt-", 0) == 0) {
      moved.push_back(e.path().string());
    }
  }
  ASSERT_EQ(moved.size(), 1u) << "the corrupt database is kept for inspection";
  std::vector<Json> checks = DoctorStateChecks(d);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0]["status"], "warn");
  EXPECT_THAT(checks[0]["detail"].get<std::string>(), HasSubstr("was corrupt"));
  EXPECT_THAT(checks[0]["detail"].get<std::string>(), HasSubstr(moved[0]));
  EXPECT_THAT(d.ReadLog(), HasSubstr("STATE DATABASE CORRUPT"));
  // The next start reports the moved-aside file until it is deleted, and is otherwise clean.
  ASSERT_EQ(*d.Stop(SIGTERM), 0);
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  checks = DoctorStateChecks(d);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_THAT(checks[0]["detail"].get<std::string>(), HasSubstr("by an earlier start"));
  EXPECT_EQ(Show(d, id)["state"], "completed");
}

TEST_F(StateTest, ACopiedStateDirUsesItsOwnCheckpoints) {
  // The original's root is the fixture's dir (its data root holds the corpus).
  const std::string original = dir_.path(), copy = dir_.path() + "/copy";
  const std::string id = CompletedSession(original);
  fs::create_directories(copy);
  fs::copy(original + "/state", copy + "/state", fs::copy_options::recursive);
  // The original goes away (or changes): the copy must not depend on it.
  fs::remove_all(original + "/state/sessions");
  DaemonProcess d(copy);
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  ExpectRecovered(d, id);
  std::vector<Json> checks = DoctorStateChecks(d);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0]["status"], "pass");
}

// Paths under `root` that group or others can access (files beyond 0600, directories beyond
// 0700), with their modes.
std::vector<std::string> OpenToOthers(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st;
    if (::lstat(e.path().c_str(), &st) != 0) continue;
    const bool loose = S_ISDIR(st.st_mode) ? (st.st_mode & 07777) != 0700
                                           : S_ISREG(st.st_mode) && (st.st_mode & 077) != 0;
    if (loose) out.push_back(absl::StrFormat("%s %o", e.path().string(), st.st_mode & 07777));
  }
  return out;
}

// Item 10: the database, its WAL, the event logs and the logs were 0644. Whatever the umask the
// daemon inherits, what it creates is owner-only, and older loose files are fixed at start.
TEST_F(StateTest, FilesUnderTheStateDirAreOwnerOnly) {
  const mode_t old_umask = ::umask(022);  // inherited by the daemon the harness starts
  {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok());
    const std::string id = Start(d, {"--steps", "3"});
    Events(d, id);
    ASSERT_TRUE(fs::exists(d.state_dir() + "/anerd.db-wal"));
    EXPECT_THAT(OpenToOthers(d.state_dir()), ::testing::IsEmpty());
    ASSERT_EQ(*d.Stop(SIGTERM), 0);
    // As an older anerd left them:
    for (const auto& e : fs::recursive_directory_iterator(d.state_dir())) {
      ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644);
    }
    ASSERT_THAT(OpenToOthers(d.state_dir()), ::testing::Not(::testing::IsEmpty()));
    ASSERT_TRUE(d.Start().ok());
    EXPECT_THAT(OpenToOthers(d.state_dir()), ::testing::IsEmpty());
  }
  ::umask(old_umask);
}

}  // namespace
}  // namespace anerd
