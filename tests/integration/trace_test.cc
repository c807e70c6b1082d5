// anectl train trace against the real daemon: the file is a Chrome/Perfetto JSON trace of spans the
// daemon measured — one track per thread, spans that nest, a step's direct children adding up to
// its reported time within 5%, dW GEMMs on their own thread overlapping kernel work — for the
// latest N steps or a range A-B, bounded, and promptly for a session that is still running.
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
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

struct Slice {
  std::string name, cat;
  int64_t step = 0;
  double begin = 0, end = 0;  // µs
};

// Thread names by tid, and the complete ("X") slices per thread name.
struct Tracks {
  std::map<int, std::string> names;
  std::map<std::string, std::vector<Slice>> slices;
  size_t Steps(const std::string& thread = "trainer") const {
    size_t n = 0;
    if (slices.count(thread) == 0) return 0;
    for (const Slice& e : slices.at(thread)) n += e.cat == "step";
    return n;
  }
};

Tracks Parse(const Json& trace) {
  Tracks t;
  for (const Json& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") t.names[e["tid"]] = e["args"]["name"];
  }
  for (const Json& e : trace["traceEvents"]) {
    if (e["ph"] != "X") continue;
    const double ts = e["ts"];
    t.slices[t.names.at(e["tid"])].push_back(
        {e["name"], e["cat"], e["args"]["step"], ts, ts + e["dur"].get<double>()});
  }
  return t;
}

// Containment with 1 µs of slack for the microsecond conversion.
bool Contains(const Slice& outer, const Slice& inner) {
  return inner.begin >= outer.begin - 1 && inner.end <= outer.end + 1;
}
bool Overlap(const Slice& a, const Slice& b) {
  return std::min(a.end, b.end) - std::max(a.begin, b.begin) > 1;
}

TEST_F(TraceTest, MeasuredSpansNestAddUpToTheStepAndShowDwOnItsOwnThread) {
  const std::string id = Start("24");
  RunResult watch = daemon_.Anectl({"--timeout", "120", "train", "watch", id, "--json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  std::map<int64_t, double> step_ms;
  for (absl::string_view line : absl::StrSplit(watch.out, '\n', absl::SkipEmpty())) {
    const Json e = Json::parse(line, nullptr, false);
    if (e.is_object() && e.value("type", "") == "step") step_ms[e["step"]] = e["step_ms"];
  }
  const Tracks t = Parse(Trace(id, "10"));
  ASSERT_EQ(t.slices.count("trainer"), 1u);
  ASSERT_EQ(t.slices.count("dW worker"), 1u) << "the dW GEMMs run on their own thread";
  const std::vector<Slice>& trainer = t.slices.at("trainer");
  std::vector<Slice> steps;
  for (const Slice& e : trainer) {
    if (e.cat == "step") steps.push_back(e);
  }
  ASSERT_EQ(steps.size(), 10u);
  EXPECT_EQ(steps.front().name, "step 15");
  EXPECT_EQ(steps.back().name, "step 24");

  // Spans on one thread nest or are disjoint (sorted by start: compare with open ancestors).
  for (const auto& [thread, slices] : t.slices) {
    std::vector<Slice> open;
    for (const Slice& e : slices) {
      while (!open.empty() && open.back().end <= e.begin + 1) open.pop_back();
      if (!open.empty()) {
        EXPECT_TRUE(Contains(open.back(), e))
            << thread << ": " << e.name << " crosses the end of " << open.back().name;
      }
      open.push_back(e);
    }
  }
  // A step's direct children add up to the time the step reported, within 5%.
  bool dw_overlaps_device_work = false;
  for (const Slice& step : steps) {
    double children_us = 0, covered_until = 0;
    std::set<std::string> names;
    for (const Slice& e : trainer) {  // by start: a direct child starts after the previous ended
      if (e.cat == "step" || e.step != step.step || !Contains(step, e)) continue;
      if (e.begin + 1 < covered_until) continue;  // inside an earlier child
      children_us += e.end - e.begin;
      covered_until = e.end;
      names.insert(e.cat);
    }
    const double reported = step_ms.at(step.step);
    EXPECT_NEAR(children_us / 1000, reported, 0.05 * reported) << step.name << " direct children";
    EXPECT_TRUE(names.count("forward") && names.count("backward") && names.count("optimizer"))
        << step.name;
    for (const Slice& dw : t.slices.at("dW worker")) {
      if (dw.step != step.step) continue;
      for (const Slice& e : trainer) {
        const bool leaf_work = absl::StartsWith(e.cat, "kernel") || e.cat == "io" ||
                               e.cat == "cls" || e.cat == "elem" || e.cat == "rms";
        if (leaf_work && Overlap(e, dw)) {
          dw_overlaps_device_work = true;
        }
      }
    }
  }
  EXPECT_TRUE(dw_overlaps_device_work)
      << "a dW GEMM runs while the trainer thread works (kernels, staging, CPU ops)";

  // A step range, and all steps when more are asked for than exist.
  std::set<int64_t> in_range;
  for (const auto& [thread, slices] : Parse(Trace(id, "3-5")).slices) {
    for (const Slice& e : slices) in_range.insert(e.step);
  }
  EXPECT_EQ(in_range, (std::set<int64_t>{3, 4, 5}));
  EXPECT_EQ(Parse(Trace(id, "1000")).Steps(), 24u);
}

TEST_F(TraceTest, RunningSessionTraceReturnsWithoutWaitingForTheEnd) {
  const std::string id = Start("100000");
  for (int i = 0; i < 500 && Step(id) < 5; ++i) ::usleep(20000);
  ASSERT_GE(Step(id), 5);
  EXPECT_EQ(Parse(Trace(id, "3")).Steps(), 3u);
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
  RunResult bad_range = daemon_.Anectl(
      {"train", "trace", "nosuch", "--out", dir_.path() + "/t.json", "--steps", "5-2"});
  EXPECT_EQ(bad_range.exit_code, 1);
  EXPECT_THAT(bad_range.err, HasSubstr("--steps '5-2'"));
  const std::string id = Start("2");
  RunResult huge =
      daemon_.Anectl({"train", "trace", id, "--out", dir_.path() + "/t.json", "--steps", "1-5000"});
  EXPECT_EQ(huge.exit_code, 1);
  EXPECT_THAT(huge.err, HasSubstr("at most 1000 steps"));
}

}  // namespace
}  // namespace anerd
