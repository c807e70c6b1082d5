// A full disk (issue 16, item 8, the store's part): space can still be freed through the API, and
// the daemon still starts. The state dir lives on a small tmpfs mounted for the test (root only;
// the test skips where mounting is not permitted).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

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
  ::close(fd);
  ASSERT_LT(::write(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC), "y", 1), 1);
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

}  // namespace
}  // namespace anerd
