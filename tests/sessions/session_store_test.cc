// The `sessions` table keeps what a daemon restart needs: here a data-parallel session's restart
// count and the hosts of its latest launch (SessionInfo.restarts / hosts), and a row written
// without them reads back as none.
#include "server/sessions/session_store.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store.h"
#include "tests/testing/temp_dir.h"

namespace anerd::sessions {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

SessionRow Row(const std::string& id) {
  SessionRow r;
  r.id = id;
  r.name = id;
  r.backend = "cpu";
  r.state = SessionState::kInterrupted;
  r.spec.model = *training::ModelConfigByName("tiny");
  r.spec.data_path = "/data/stories.txt";
  r.spec.ranks = 2;
  r.spec.max_restarts = 3;
  return r;
}

TEST(SessionStoreTest, RestartsAndHostsSurviveARestart) {
  testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    SessionStore rows(store->get());
    SessionRow dp = Row("dp");
    dp.restarts = 2;
    dp.hosts = {"mac1.local", "mac2.local"};
    ASSERT_TRUE(rows.Put(dp).ok());
    ASSERT_TRUE(rows.Put(Row("plain")).ok());
  }
  absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::vector<SessionRow>> loaded = SessionStore(store->get()).LoadAll();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 2u);
  for (const SessionRow& r : *loaded) {
    if (r.id == "dp") {
      EXPECT_EQ(r.restarts, 2);
      EXPECT_THAT(r.hosts, ElementsAre("mac1.local", "mac2.local"));
    } else {
      EXPECT_EQ(r.restarts, 0);
      EXPECT_THAT(r.hosts, IsEmpty());
    }
  }
}

}  // namespace
}  // namespace anerd::sessions
