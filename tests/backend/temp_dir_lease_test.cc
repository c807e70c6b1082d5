// The temp-dir lease (temp_dir_lease.h) with real processes: the first user on the machine
// populates a dir, later users (in this process or another) share it, the last one removes it, and
// a user that dies without releasing never strands the dir.
#include "server/backend/ane/temp_dir_lease.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace anerd::backend::ane {
namespace {

std::string FreshDir() {
  char tmpl[] = "/tmp/anerd-lease-XXXXXX";
  const char* made = mkdtemp(tmpl);
  return made == nullptr ? std::string() : std::string(made) + "/hex";
}

TEST(TempDirLease, OneProcessPopulatesOnceAndRemovesAfterTheLastRelease) {
  const std::string dir = FreshDir();
  ASSERT_FALSE(dir.empty());
  int populated = 0, removed = 0;
  auto populate = [&] { return ++populated > 0; };
  auto remove = [&] { ++removed; };
  ASSERT_TRUE(AcquireTempDir(dir, populate).ok());
  ASSERT_TRUE(AcquireTempDir(dir, populate).ok());
  EXPECT_EQ(populated, 1);
  ReleaseTempDir(dir, remove);
  EXPECT_EQ(removed, 0) << "one use is left";
  ReleaseTempDir(dir, remove);
  EXPECT_EQ(removed, 1);
  ReleaseTempDir(dir, remove);  // more releases than acquires change nothing
  EXPECT_EQ(removed, 1);
}

TEST(TempDirLease, APopulateThatFailsIsAnErrorAndHoldsNothing) {
  const std::string dir = FreshDir();
  absl::Status s = AcquireTempDir(dir, [] { return false; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find(dir), std::string::npos) << s;
  int populated = 0;
  ASSERT_TRUE(AcquireTempDir(dir, [&] { return ++populated > 0; }).ok());
  EXPECT_EQ(populated, 1) << "the failed attempt left no use behind";
  ReleaseTempDir(dir, [] {});
}

// A child process acquires the dir and waits; `die` says whether it then exits without releasing
// (as a killed worker would) or releases first.
pid_t ChildUsing(const std::string& dir, int* ready_fd, int* go_fd, bool release) {
  int ready[2], go[2];
  if (pipe(ready) != 0 || pipe(go) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    close(go[1]);
    const bool ok = AcquireTempDir(dir, [] { return true; }).ok();
    const char c = ok ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    char wait_for;
    (void)!read(go[0], &wait_for, 1);
    if (release) ReleaseTempDir(dir, [] {});
    _exit(0);  // no destructors: the lock files' descriptors close with the process
  }
  close(ready[1]);
  close(go[0]);
  *ready_fd = ready[0];
  *go_fd = go[1];
  return pid;
}

void Finish(pid_t pid, int ready_fd, int go_fd) {
  const char c = 'g';
  (void)!write(go_fd, &c, 1);
  int status = 0;
  waitpid(pid, &status, 0);
  close(ready_fd);
  close(go_fd);
}

TEST(TempDirLease, AnotherProcessesUseKeepsTheDirAndItsDeathFreesIt) {
  for (bool child_releases : {false, true}) {
    const std::string dir = FreshDir();
    int ready = -1, go = -1;
    const pid_t pid = ChildUsing(dir, &ready, &go, child_releases);
    ASSERT_GT(pid, 0);
    char c = 0;
    ASSERT_EQ(read(ready, &c, 1), 1);
    ASSERT_EQ(c, 'y');

    int populated = 0, removed = 0;
    ASSERT_TRUE(AcquireTempDir(dir, [&] { return ++populated > 0; }).ok());
    EXPECT_EQ(populated, 0) << "the child populated it and still uses it";
    ReleaseTempDir(dir, [&] { ++removed; });
    EXPECT_EQ(removed, 0) << "the child still uses it";

    Finish(pid, ready, go);  // the child releases, or dies holding its use
    ASSERT_TRUE(AcquireTempDir(dir, [&] { return ++populated > 0; }).ok());
    EXPECT_EQ(populated, 1) << "nobody uses it now: this process is first again and clears it";
    ReleaseTempDir(dir, [&] { ++removed; });
    EXPECT_EQ(removed, 1) << "the last user removes it";
  }
}

}  // namespace
}  // namespace anerd::backend::ane
