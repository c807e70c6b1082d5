// anectl train trace against the real daemon: the file is a valid Chrome/Perfetto JSON trace with
// one track per phase, one step slice per requested step (the latest ones), phase slices inside
// their step, and it returns promptly for a session that is still running.
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

class TraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.Start().ok()) << daemon_.ReadLog();
    data_ = dir_.path() + "/stories.txt";
    RunResult synth = daemon_.Anectl({"data", "synth", "--out", data_, "--bytes", "200000"});
    ASSERT_EQ(synth.exit_code, 0) << synth.err;
  }

  std::string Start(const std::string& steps) {
    RunResult r = daemon_.Anectl({"train", "start", "--data", data_, "--steps", steps, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? Json::parse(r.out)["session"]["id"].get<std::string>() : "";
  }

  int64_t Step(const std::string& id) {
    RunResult r = daemon_.Anectl({"train", "show", id, "--json"});
    return r.exit_code == 0 ? Json::parse(r.out)["session"]["step"].get<int64_t>() : -1;
  }

  Json Trace(const std::string& id, const std::string& steps) {
    const std::string out = dir_.path() + "/trace.json";
    RunResult r = daemon_.Anectl({"train", "trace", id, "--out", out, "--steps", steps});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(std::ifstream(out));
  }

  TempDir dir_;
  DaemonProcess daemon_{dir_.path()};
  std::string data_;
};

// Track names by tid, and the complete ("X") slices per track name.
struct Tracks {
  std::map<int, std::string> names;
  std::map<std::string, std::vector<Json>> slices;
};

Tracks Parse(const Json& trace) {
  Tracks t;
  for (const Json& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") t.names[e["tid"]] = e["args"]["name"];
  }
  for (const Json& e : trace["traceEvents"]) {
    if (e["ph"] == "X") t.slices[t.names.at(e["tid"])].push_back(e);
  }
  return t;
}

TEST_F(TraceTest, CompletedSessionTraceHasATrackPerPhaseAndTheLatestSteps) {
  const std::string id = Start("24");
  RunResult watch = daemon_.Anectl({"--timeout", "120", "train", "watch", id, "--json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  const Json trace = Trace(id, "10");
  Tracks t = Parse(trace);
  std::set<std::string> names;
  for (const auto& [tid, name] : t.names) names.insert(name);
  EXPECT_EQ(names, (std::set<std::string>{"step", "kernel", "io", "rms", "elem", "cls", "dw_wait",
                                          "optim"}));
  ASSERT_EQ(t.slices["step"].size(), 10u);
  EXPECT_EQ(t.slices["step"].front()["name"], "step 15");
  EXPECT_EQ(t.slices["step"].back()["name"], "step 24");
  EXPECT_EQ(t.slices["kernel"].size(), 10u) << "every step evaluates kernels";
  EXPECT_EQ(t.slices["optim"].size(), 10u);
  double previous_end = 0;
  for (size_t i = 0; i < t.slices["step"].size(); ++i) {
    const Json& step = t.slices["step"][i];
    const double start = step["ts"], dur = step["dur"];
    EXPECT_GE(start, previous_end) << "steps do not overlap";
    EXPECT_GT(dur, 0);
    previous_end = start + dur;
    const Json& kernel = t.slices["kernel"][i];
    EXPECT_EQ(kernel["args"]["step"], 15 + static_cast<int>(i));
    EXPECT_DOUBLE_EQ(kernel["ts"].get<double>(), start) << "the first phase opens the step";
    EXPECT_GT(kernel["dur"].get<double>(), 0);
  }
  bool loss_counter = false;
  for (const Json& e : trace["traceEvents"]) loss_counter |= e["ph"] == "C" && e["name"] == "loss";
  EXPECT_TRUE(loss_counter);

  // Asking for more steps than exist gives all of them.
  EXPECT_EQ(Parse(Trace(id, "1000")).slices["step"].size(), 24u);
}

TEST_F(TraceTest, RunningSessionTraceReturnsWithoutWaitingForTheEnd) {
  const std::string id = Start("100000");
  for (int i = 0; i < 500 && Step(id) < 5; ++i) ::usleep(20000);
  ASSERT_GE(Step(id), 5);
  const Json trace = Trace(id, "3");
  EXPECT_EQ(Parse(trace).slices["step"].size(), 3u);
  EXPECT_EQ(daemon_.Anectl({"train", "stop", id}).exit_code, 0);
}

TEST_F(TraceTest, UsageAndUnknownSessionErrors) {
  RunResult no_out = daemon_.Anectl({"train", "trace", "abc"});
  EXPECT_EQ(no_out.exit_code, 2);
  EXPECT_THAT(no_out.err, HasSubstr("--out"));
  RunResult unknown =
      daemon_.Anectl({"train", "trace", "nosuch", "--out", dir_.path() + "/t.json"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no training session 'nosuch'"));
}

}  // namespace
}  // namespace anerd
