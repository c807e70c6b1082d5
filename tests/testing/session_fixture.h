// A gtest fixture for training sessions driven through a real daemon with anectl: a synthetic
// story corpus in a temp dir, and helpers to start, show, watch and wait for sessions. Header-only
// (it uses gtest assertions); shared by the session and worker integration tests.
#ifndef ANERD_TESTS_TESTING_SESSION_FIXTURE_H_
#define ANERD_TESTS_TESTING_SESSION_FIXTURE_H_

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/synth_stories.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd::testing {

class SessionFixture : public ::testing::Test {
 protected:
  using Json = nlohmann::json;

  void SetUp() override {
    data_ = dir_.path() + "/stories.txt";
    std::ofstream(data_) << SynthesizeStories(7, 60000);
  }

  static std::vector<Json> ParseLines(const std::string& text) {
    std::vector<Json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
    return out;
  }

  // `anectl train start --data <corpus> --json` plus `extra`; returns the session id ("" on error).
  std::string Start(DaemonProcess& d, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"train", "start", "--data", data_, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = d.Anectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return "";
    return Json::parse(r.out)["session"]["id"];
  }

  Json Show(DaemonProcess& d, const std::string& id) {
    RunResult r = d.Anectl({"train", "show", id, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out)["session"];
  }

  // All events of a session, replayed from the start (waits until the session is not active).
  std::vector<Json> Events(DaemonProcess& d, const std::string& id) {
    RunResult r = d.Anectl({"--timeout", "300", "train", "watch", id, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseLines(r.out);
  }

  static std::vector<int64_t> Steps(const std::vector<Json>& events) {
    std::vector<int64_t> steps;
    for (const Json& e : events) {
      if (e["type"] == "step") steps.push_back(e["step"]);
    }
    return steps;
  }

  static void ExpectEveryStepOnce(const std::vector<int64_t>& steps, int64_t total) {
    ASSERT_EQ(static_cast<int64_t>(steps.size()), total);
    for (int64_t i = 0; i < total; ++i) ASSERT_EQ(steps[i], i + 1) << "at index " << i;
  }

  void WaitForStep(DaemonProcess& d, const std::string& id, int64_t step) {
    for (int i = 0; i < 1500; ++i) {
      if (Show(d, id)["step"].get<int64_t>() >= step) return;
      ::usleep(20000);
    }
    FAIL() << "session never reached step " << step;
  }

  TempDir dir_;
  std::string data_;
};

}  // namespace anerd::testing

#endif  // ANERD_TESTS_TESTING_SESSION_FIXTURE_H_
