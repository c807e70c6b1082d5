// A gtest fixture for training sessions driven through an in-process Engine: a per-test state
// dir, a small synthetic story corpus under a data root, engines made from options the test can
// adjust, and helpers to run and read sessions. Header-only (it uses gtest assertions); shared by
// the session tests that need no daemon process.
#ifndef ANERD_TESTS_TESTING_ENGINE_SESSION_FIXTURE_H_
#define ANERD_TESTS_TESTING_ENGINE_SESSION_FIXTURE_H_

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/synth_stories.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "tests/testing/temp_dir.h"

namespace anerd::testing {

class EngineSessionFixture : public ::testing::Test {
 protected:
  using SessionEventRecord = sessions::SessionEventRecord;
  using SessionSnapshot = sessions::SessionSnapshot;

  void SetUp() override {
    state_dir_ = dir_.path() + "/state";
    std::filesystem::create_directories(state_dir_);
    data_ = dir_.path() + "/stories.txt";
    std::ofstream(data_) << SynthesizeStories(7, 20000);
  }

  // An engine on the test's state dir with its dir as the data root; `adjust` may change more.
  std::unique_ptr<engine::Engine> MakeEngineWith(
      const std::function<void(engine::EngineOptions&)>& adjust) {
    engine::EngineOptions options;
    options.state_dir = state_dir_;
    options.data_roots = {dir_.path()};
    if (adjust) adjust(options);
    absl::StatusOr<std::unique_ptr<engine::Engine>> e = engine::Engine::Create(options);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  // The tiny model on the corpus for `steps` steps.
  training::TrainSpec TinySpec(int64_t steps) const {
    training::TrainSpec spec;
    spec.model = *training::ModelConfigByName("tiny");
    spec.data_path = data_;
    spec.steps = steps;
    spec.warmup = 2;
    return spec;
  }

  static SessionSnapshot WaitUntilInactive(engine::Engine& e, const std::string& id) {
    absl::StatusOr<SessionSnapshot> s = e.sessions().Get(id);
    for (int i = 0; i < 6000 && s.ok() && sessions::IsActive(s->state); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      s = e.sessions().Get(id);
    }
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : SessionSnapshot{};
  }

  static std::vector<SessionEventRecord> Events(engine::Engine& e, const std::string& id) {
    std::vector<SessionEventRecord> out;
    bool ended = false;
    EXPECT_TRUE(e.sessions().ReadEvents(id, 0, 1 << 20, &out, &ended).ok());
    return out;
  }

  static std::vector<SessionEventRecord> StepEvents(engine::Engine& e, const std::string& id) {
    std::vector<SessionEventRecord> out;
    for (SessionEventRecord& r : Events(e, id)) {
      if (r.kind == SessionEventRecord::Kind::kStep) out.push_back(std::move(r));
    }
    return out;
  }

  TempDir dir_;
  std::string state_dir_, data_;
};

}  // namespace anerd::testing

#endif  // ANERD_TESTS_TESTING_ENGINE_SESSION_FIXTURE_H_
