// Issue 17: a state dir written by the code before the sessions/store restructuring
// (tests/sessions/testdata/state_v0, see its README) opens with everything in it: both sessions
// with their full event history (positional step events, skipped steps with NaN grad norms),
// their checkpoints, the kernels with their owners and blobs, the probe result; anerd.db migrates
// from the per-component schema rows to the one numbered list.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/store/migrations.h"
#include "server/store/sqlite.h"
#include "tests/testing/process_harness.h"

namespace anerd::sessions {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using Kind = SessionEventRecord::Kind;

std::string Slurp(const std::string& path) {
  std::stringstream s;
  s << std::ifstream(path, std::ios::binary).rdbuf();
  return s.str();
}

class OldStateDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_dir_ = dir_.path() + "/state";
    fs::copy(std::string(ANERD_SOURCE_DIR) + "/tests/sessions/testdata/state_v0", state_dir_,
             fs::copy_options::recursive);
    fs::remove(state_dir_ + "/README.md");
    for (const auto& entry : fs::recursive_directory_iterator(state_dir_)) {
      fs::permissions(entry.path(), fs::perms::owner_read | fs::perms::owner_write,
                      fs::perm_options::add);
    }
    engine::EngineOptions options;
    options.state_dir = state_dir_;
    options.data_roots = {dir_.path()};
    options.backend = "cpu";
    options.resume_interrupted = false;
    absl::StatusOr<std::unique_ptr<engine::Engine>> e = engine::Engine::Create(options);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
  }

  std::vector<SessionEventRecord> Events(const std::string& id) {
    std::vector<SessionEventRecord> out;
    bool ended = false;
    EXPECT_TRUE(engine_->sessions().ReadEvents(id, 0, 1 << 20, &out, &ended).ok());
    EXPECT_TRUE(ended);
    return out;
  }

  testing::TempDir dir_;
  std::string state_dir_;
  std::unique_ptr<engine::Engine> engine_;
};

TEST_F(OldStateDirTest, SessionsLoadWithTheirFullHistory) {
  const std::string source = std::string(ANERD_SOURCE_DIR) + "/tests/sessions/testdata/state_v0";
  struct Want {
    const char* id;
    const char* name;
    size_t events;
    int64_t steps;
    bool skipped;
  };
  for (const Want& want : {Want{"a62e3ec003bd", "old-format", 16, 6, false},
                           Want{"83a9b82128af", "skipped", 10, 3, true}}) {
    absl::StatusOr<SessionSnapshot> s = engine_->sessions().Get(want.id);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->name, want.name);
    EXPECT_EQ(s->state, SessionState::kCompleted);
    EXPECT_EQ(s->error, "");
    EXPECT_EQ(s->owner, "uid:0");
    EXPECT_EQ(s->step, want.steps);
    EXPECT_EQ(s->checkpoint_step, want.steps);
    EXPECT_EQ(s->checkpoint_path, state_dir_ + "/sessions/" + want.id + "/checkpoint.bin")
        << "stored relative to the state dir, so the copy uses its own file";
    const std::vector<SessionEventRecord> events = Events(want.id);
    ASSERT_EQ(events.size(), want.events);
    std::vector<int64_t> steps;
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(events[i].seq, i);
      if (events[i].kind != Kind::kStep) continue;
      steps.push_back(events[i].step.step);
      EXPECT_EQ(events[i].step.skipped, want.skipped);
      EXPECT_EQ(std::isnan(events[i].step.grad_norm), want.skipped);
    }
    EXPECT_EQ(steps.size(), static_cast<size_t>(want.steps));
    EXPECT_EQ(steps.back(), want.steps);
    EXPECT_EQ(events.back().kind, Kind::kState);
    EXPECT_EQ(events.back().text, "completed");
    EXPECT_EQ(engine_->sessions().SeqForStep(want.id, 2).value(), 4u);
    const std::string log = "/sessions/" + std::string(want.id) + "/events.jsonl";
    EXPECT_EQ(Slurp(state_dir_ + log), Slurp(source + log))
        << "an old log is neither cut as torn nor rewritten";
  }
}

TEST_F(OldStateDirTest, AnOldCheckpointExports) {
  absl::Notification done;
  absl::StatusOr<std::string> path;
  engine_->sessions().Export("a62e3ec003bd", training::ExportFormat::kLlama2c, /*best=*/false,
                             [&](absl::StatusOr<std::string> p) {
                               path = std::move(p);
                               done.Notify();
                             });
  done.WaitForNotification();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_GT(fs::file_size(*path + "/model.bin"), 0u);
  fs::remove_all(*path);
}

TEST_F(OldStateDirTest, KernelsProbesAndTheSchemaComeAlong) {
  absl::StatusOr<std::vector<engine::KernelInfo>> kernels = engine_->kernels().List();
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  std::vector<std::string> names;
  for (const engine::KernelInfo& k : *kernels) names.push_back(k.record.name);
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ElementsAre("old-kernel", "probe-rpc-latency"));
  const std::string id = "4cb2efee90f6431d5a9862e15ff10f8fd58bd5ae23c29a70e22a2d2ed54764f6";
  EXPECT_THAT(*engine_->kernels().Owners(id), ElementsAre("uid:0"));
  EXPECT_TRUE(engine_->kernels().Get(id).ok());
  absl::StatusOr<probes::ProbeResult> probe = engine_->probes().Get("20261207-025809-039e");
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_EQ(probe->owner, "uid:0");
  EXPECT_EQ(probe->rows.size(), 1u);
  engine_.reset();
  absl::StatusOr<std::unique_ptr<store::SqliteDb>> db =
      store::SqliteDb::Open(state_dir_ + "/anerd.db", 1000);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*store::SchemaVersion(**db), store::kSchemaVersion);
}

}  // namespace
}  // namespace anerd::sessions
