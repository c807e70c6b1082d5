// A full disk (issue 16, item 8): space can still be freed through the API, the daemon still
// starts, and a training session that cannot write is `paused` (not failed), says how to resume,
// and is not resumed at start-up while the disk is still full. The state dir lives on a small
// tmpfs mounted for the test (root only; the test skips where mounting is not permitted).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

namespace fs = std::filesystem;
using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

const std::string kConvMil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";

// A tmpfs of `megabytes` at `dir` for the test's lifetime.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, int megabytes) : dir_(dir) {
    fs::create_directories(dir);
    const std::string opts = "size=" + std::to_string(megabytes) + "m,mode=0700";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// Writes `path` until the filesystem refuses another byte.
void FillDisk(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  std::vector<char> chunk(1 << 20, 'x');
  for (size_t size = chunk.size(); size >= 1; size /= 2) {
    while (::write(fd, chunk.data(), size) == static_cast<ssize_t>(size)) {
    }
  }
  // The probe write is closed too: an open descriptor would keep the file's space after unlink.
  const ssize_t probe = ::write(fd, "y", 1);
  ::close(fd);
  ASSERT_LT(probe, 1);
}

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mount_ = std::make_unique<TmpfsMount>(dir_.path() + "/state", 24);
    if (!mount_->mounted()) {
      GTEST_SKIP() << "cannot mount a tmpfs here (" << mount_->error()
                   << "); this test needs root or CAP_SYS_ADMIN";
    }
  }

  std::string Compile(DaemonProcess& d) {
    RunResult r = d.Anectl({"kernel", "compile", kConvMil, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const Json j = Json::parse(r.out, nullptr, false);
    return j.is_object() && j.contains("kernel") ? j["kernel"]["id"].get<std::string>() : "";
  }

  // The session as `anectl train show --json` reports it (an empty object on failure).
  static Json Show(DaemonProcess& d, const std::string& id) {
    RunResult r = d.Anectl({"train", "show", id, "--json"});
    const Json j = Json::parse(r.out, nullptr, false);
    return j.is_object() && j.contains("session") ? j["session"] : Json::object();
  }

  // Polls the session until `pred` holds for it (at most 60 s); returns the last reading.
  template <typename Pred>
  static Json WaitFor(DaemonProcess& d, const std::string& id, Pred pred) {
    Json s = Show(d, id);
    for (int i = 0; i < 600 && !pred(s); ++i) {
      absl::SleepFor(absl::Milliseconds(100));
      s = Show(d, id);
    }
    return s;
  }

  TempDir dir_;
  std::unique_ptr<TmpfsMount> mount_;
};

TEST_F(FullDiskTest, KernelsCanBeDeletedWhenTheDiskFillsUp) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  const std::string id = Compile(d);
  ASSERT_FALSE(id.empty());
  FillDisk(d.state_dir() + "/filler");
  RunResult rm = d.Anectl({"kernel", "rm", id});
  EXPECT_EQ(rm.exit_code, 0) << rm.out << rm.err;
  EXPECT_THAT(d.Anectl({"kernel", "ls", "--json"}).out, ::testing::Not(HasSubstr(id)));
  EXPECT_THAT(d.ReadLog(), HasSubstr("released the space reserve"));
}

TEST_F(FullDiskTest, TheDaemonStartsOnAFullDiskAndCanFreeSpace) {
  std::string id;
  {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
    id = Compile(d);
    ASSERT_FALSE(id.empty());
    ASSERT_EQ(*d.Stop(SIGTERM), 0);
  }
  FillDisk(dir_.path() + "/state/filler");
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  EXPECT_THAT(d.Anectl({"kernel", "ls", "--json"}).out, HasSubstr(id));
  RunResult rm = d.Anectl({"kernel", "rm", id});
  EXPECT_EQ(rm.exit_code, 0) << rm.out << rm.err;
}

// Issue 16 item 8: "an ENOSPC pauses the session with a clear state". The session fills the
// disk's last bytes while training; it becomes `paused` (before: `failed`), every view says how
// to resume, and a restart on the still-full disk leaves it paused instead of resuming it into
// the same error. With room again, the next start resumes it.
TEST_F(FullDiskTest, AFullDiskPausesTrainingUntilThereIsRoomAgain) {
  const std::string data = dir_.path() + "/stories.txt";  // outside the tmpfs
  const std::string filler = dir_.path() + "/state/filler";
  std::string id;
  {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
    ASSERT_EQ(d.Anectl({"data", "synth", "--out", data, "--bytes", "100000"}).exit_code, 0);
    RunResult start = d.Anectl({"train", "start", "--data", data, "--steps", "1000000",
                                "--checkpoint-every", "5", "--json"});
    ASSERT_EQ(start.exit_code, 0) << start.err;
    id = Json::parse(start.out)["session"]["id"];
    Json s = WaitFor(d, id, [](const Json& j) { return j.value("checkpoint_step", 0) >= 5; });
    ASSERT_GE(s.value("checkpoint_step", 0), 5) << s.dump();
    FillDisk(filler);
    s = WaitFor(d, id, [](const Json& j) {
      return j.value("state", "") != "running" && j.value("state", "") != "checkpointing";
    });
    ASSERT_EQ(s.value("state", ""), "paused") << s.dump();
    EXPECT_THAT(s.value("error", ""), HasSubstr("anectl train resume " + id));
    EXPECT_THAT(s.value("resume_hint", ""), HasSubstr("anectl train resume " + id));
    EXPECT_EQ(s.value("step", -1), s.value("checkpoint_step", -2)) << "back at the durable step";

    RunResult show = d.Anectl({"train", "show", id});
    EXPECT_THAT(show.out, HasSubstr("paused (paused by a write error; free space, then: anectl "
                                    "train resume " +
                                    id));
    RunResult ls = d.Anectl({"train", "ls"});
    EXPECT_THAT(ls.out, HasSubstr("paused"));
    EXPECT_THAT(ls.out, HasSubstr("anectl train resume ID"));
    RunResult watch = d.Anectl({"train", "watch", id});
    EXPECT_EQ(watch.exit_code, 1) << "a paused session is not a success";
    EXPECT_THAT(watch.out, HasSubstr("\"state\":\"paused\""));
    EXPECT_THAT(watch.err, HasSubstr("anectl train resume " + id));
    ASSERT_EQ(*d.Stop(SIGTERM), 0);
  }
  {
    // Still full: not resumed (it would only pause again), and the log says why.
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
    EXPECT_EQ(Show(d, id).value("state", ""), "paused");
    EXPECT_THAT(d.ReadLog(), HasSubstr("stays paused"));
    ASSERT_EQ(*d.Stop(SIGTERM), 0);
  }
  ASSERT_TRUE(fs::remove(filler));
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  const Json s = Show(d, id);
  EXPECT_NE(s.value("state", ""), "paused") << "room again: resumed at start-up; " << s.dump();
  EXPECT_THAT(d.ReadLog(), HasSubstr("resuming after restart"));
}

}  // namespace
}  // namespace anerd
