// Issue 17: the event log's step event has named fields and a schema version, so adding a field is
// a one-line change that old logs survive; logs written before (positional arrays) still load; the
// EventLog numbers, repairs and wakes.
#include "server/sessions/event_log.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/sessions/event_codec.h"
#include "server/sessions/notifier.h"
#include "tests/testing/process_harness.h"

namespace anerd::sessions {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using Kind = SessionEventRecord::Kind;

// A step event whose every field holds a distinct value.
SessionEventRecord DistinctStep() {
  SessionEventRecord e;
  e.seq = 9;
  e.unix_ms = 1700000000123;
  e.kind = Kind::kStep;
  training::StepReport& r = e.step;
  r.step = 42;
  r.loss = 2.5;
  r.lr = 3e-4;
  r.grad_norm = 1.25;
  r.loss_scale = 1024;
  r.skipped = true;
  r.step_ms = 11;
  r.tokens_per_s = 12;
  r.flops = 13;
  r.tflops = 14;
  e.queued_ms = 15;
  r.phases = {16, 17, 18, 19, 20, 21, 22};
  r.phases.kernel_hw_ms = 23;
  r.phases.hw_simulated = true;
  r.ranks = 2;
  r.phases.allreduce_ms = 24;
  r.allreduce_bytes = 25;
  r.slowest_rank = 1;
  r.slowest_rank_ms = 26;
  r.fastest_rank_ms = 27;
  r.phases.allreduce_total_ms = 24.5;  // overlap (issue 24 item 2)
  r.phases.allreduce_hidden_ms = 24.25;
  r.allreduce_buckets = 26;
  r.phases.kernel_fwd_ms = 28;
  r.phases.kernel_bwd_ms = 29;
  StepObservations& o = e.observed;
  o.compile_ms = 30;
  o.compile_share = 0.31;
  o.peak_tflops = 32;
  o.peak_source = "probe 33";
  o.device_utilization = 0.34;
  o.energy_j = 35;
  o.energy_j_per_token = 36;
  o.power_w = 37;
  o.energy_source = "rapl";
  o.energy_unavailable = "not really: 38";
  o.thermal_state = "nominal";
  return e;
}

// Every step field of `e` as JSON (through the codec), for comparing records field by field.
Json StepFields(const SessionEventRecord& e) { return Json::parse(EncodeEventLine(e))["step"]; }

TEST(EventCodecTest, StepEventsHaveNamedFieldsAndASchemaVersion) {
  const SessionEventRecord e = DistinctStep();
  const Json j = Json::parse(EncodeEventLine(e));
  EXPECT_EQ(j["v"], kEventSchemaVersion);
  ASSERT_TRUE(j["step"].is_object());
  EXPECT_FALSE(j.contains("phases")) << "phase times are named fields of the step";
  for (const std::string& name : StepEventFieldNames()) {
    EXPECT_TRUE(j["step"].contains(name)) << name;
  }
  EXPECT_EQ(j["step"].size(), StepEventFieldNames().size());
  EXPECT_EQ(j["step"]["kernel_ms"], 16.0);
  EXPECT_EQ(j["step"]["queued_ms"], 15.0);
  absl::StatusOr<SessionEventRecord> back = ParseEventLine(EncodeEventLine(e));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(StepFields(*back), StepFields(e));
  EXPECT_EQ(back->seq, 9u);
}

// What adding a field to the step event means for the logs already on disk: their records lack it.
// Whichever field is the new one, they still load, with that field at its default.
TEST(EventCodecTest, ALogWrittenBeforeAFieldWasAddedStillLoads) {
  const SessionEventRecord full = DistinctStep();
  for (const std::string& name : StepEventFieldNames()) {
    if (name == "step") continue;  // the step number is the one required field
    Json j = Json::parse(EncodeEventLine(full));
    j["step"].erase(name);
    absl::StatusOr<SessionEventRecord> back = ParseEventLine(j.dump());
    ASSERT_TRUE(back.ok()) << name << ": " << back.status();
    Json want = StepFields(full);
    // Optional fields (absent when not measured) and strings written only when set.
    static const std::set<std::string> kOptional = {"kernel_hw_ms",
                                                    "ranks",
                                                    "allreduce_ms",
                                                    "allreduce_bytes",
                                                    "slowest_rank",
                                                    "slowest_rank_ms",
                                                    "fastest_rank_ms",
                                                    "allreduce_total_ms",
                                                    "allreduce_hidden_ms",
                                                    "allreduce_buckets",
                                                    "compile_ms",
                                                    "compile_share",
                                                    "peak_tflops",
                                                    "peak_source",
                                                    "device_utilization",
                                                    "energy_j",
                                                    "energy_j_per_token",
                                                    "power_w",
                                                    "energy_source",
                                                    "energy_unavailable",
                                                    "thermal_state"};
    // The kernel time by pass: absent from logs written before the split existed.
    static const std::set<std::string> kByPass = {"kernel_fwd_ms", "kernel_bwd_ms"};
    const bool optional = kOptional.count(name) > 0 || kByPass.count(name) > 0;
    if (optional) {
      want.erase(name);  // optional: absent stays absent (no made-up zero)
    } else {
      want[name] = name == "skipped" || name == "hw_simulated" ? Json(false) : Json(0.0);
    }
    EXPECT_EQ(StepFields(*back), want) << "without " << name;
  }
}

// And the other way round: a log written by a newer anerd with a field this one does not know.
TEST(EventCodecTest, UnknownNamedFieldsAndNewerVersionsAreRead) {
  Json j = Json::parse(EncodeEventLine(DistinctStep()));
  j["v"] = kEventSchemaVersion + 5;
  j["step"]["ane_hw_ms"] = 3.5;
  j["origin"] = "a newer daemon";
  absl::StatusOr<SessionEventRecord> back = ParseEventLine(j.dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(StepFields(*back), StepFields(DistinctStep()));
}

TEST(EventCodecTest, NamedStepFieldsAreCheckedByName) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"v":2,"seq":1,"ms":1,"kind":0,"step":{"loss":1}})", "step.step"},
      {R"({"v":2,"seq":1,"ms":1,"kind":0,"step":{"step":1.5}})", "step.step"},
      {R"({"v":2,"seq":1,"ms":1,"kind":0,"step":{"step":1,"loss":"x"}})", "step.loss"},
      {R"({"v":2,"seq":1,"ms":1,"kind":0,"step":{"step":1,"skipped":1}})", "step.skipped"},
      {R"({"v":"2","seq":1,"ms":1,"kind":1})", "'v'"},
  };
  for (const auto& [line, want] : cases) {
    absl::StatusOr<SessionEventRecord> e = ParseEventLine(line);
    ASSERT_FALSE(e.ok()) << line;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status().message(), HasSubstr(want)) << line;
  }
  absl::StatusOr<SessionEventRecord> nan = ParseEventLine(
      R"({"v":2,"seq":1,"ms":1,"kind":0,"step":{"step":3,"grad_norm":"nan","skipped":true}})");
  ASSERT_TRUE(nan.ok()) << nan.status();
  EXPECT_TRUE(std::isnan(nan->step.grad_norm));
}

// The logs in tests/sessions/testdata/state_v0 were written by the code before issue 17.
TEST(EventCodecTest, LogsWrittenBeforeNamedFieldsLoadAndConvertWithoutLoss) {
  const std::string dir = std::string(ANERD_SOURCE_DIR) + "/tests/sessions/testdata/state_v0";
  struct Want {
    const char* id;
    size_t events;
    int64_t steps;
    bool skipped;
  };
  for (const Want& want : {Want{"a62e3ec003bd", 16, 6, false}, Want{"83a9b82128af", 10, 3, true}}) {
    const std::string path = dir + "/sessions/" + want.id + "/events.jsonl";
    absl::StatusOr<EventLogContents> log = ReadEventLog(path);
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_EQ(log->corruption, "");
    EXPECT_FALSE(log->torn_tail);
    ASSERT_EQ(log->events.size(), want.events) << path;
    int64_t steps = 0;
    for (const SessionEventRecord& e : log->events) {
      if (e.kind != Kind::kStep) continue;
      EXPECT_EQ(e.step.step, ++steps);
      EXPECT_GT(e.step.loss, 0);
      EXPECT_GT(e.step.phases.kernel_ms, 0);
      EXPECT_EQ(e.step.skipped, want.skipped);
      EXPECT_EQ(std::isnan(e.step.grad_norm), want.skipped);
      // Re-encoded in today's format, the record reads back the same.
      absl::StatusOr<SessionEventRecord> again = ParseEventLine(EncodeEventLine(e));
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(StepFields(*again), StepFields(e));
    }
    EXPECT_EQ(steps, want.steps);
  }
}

TEST(EventLogTest, NumbersAppendsCutsATornTailAndWakesWatchers) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/events.jsonl";
  Notifier notifier;
  {
    EventLog log(path, &notifier, "s1");
    EXPECT_EQ(log.Load(), "");
    SessionEventRecord state;
    state.kind = Kind::kState;
    state.text = "queued";
    ASSERT_TRUE(log.Append(state).ok());
    ASSERT_TRUE(log.Append(DistinctStep(), /*sync=*/true).ok());
    EXPECT_EQ(log.size(), 2u);
    EXPECT_EQ(log.LastReportedStep(), 42);
  }
  std::ofstream(path, std::ios::app) << "{\"v\":2,\"seq\":2,";  // a write cut short
  EventLog log(path, &notifier, "s1");
  EXPECT_EQ(log.Load(), "");
  EXPECT_EQ(log.size(), 2u);
  std::stringstream bytes;
  bytes << std::ifstream(path).rdbuf();
  EXPECT_EQ(bytes.str().back(), '\n') << "the torn record is cut from the file";

  log.SetOpen(true);
  absl::Notification woken, closed;
  EXPECT_NE(log.WakeWhenAvailable(2, [&] { woken.Notify(); }), 0);
  const int64_t cancelled = log.WakeWhenAvailable(5, [] { FAIL() << "cancelled wake ran"; });
  log.CancelWake(cancelled);
  EXPECT_FALSE(woken.HasBeenNotified());
  SessionEventRecord warning;
  warning.kind = Kind::kWarning;
  warning.text = "hello";
  ASSERT_TRUE(log.Append(warning).ok());
  woken.WaitForNotification();
  EXPECT_NE(log.WakeWhenAvailable(9, [&] { closed.Notify(); }), 0);
  log.SetOpen(false);  // the session stopped: every watcher learns it
  closed.WaitForNotification();
  std::vector<SessionEventRecord> out;
  bool ended = false;
  log.Read(1, 10, &out, &ended);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].seq, 2u);
  EXPECT_EQ(out[1].text, "hello");
  EXPECT_TRUE(ended);
}

}  // namespace
}  // namespace anerd::sessions
