// Issue 21 items 2 and 3 in the step event: the observations (compile share, utilisation against
// a measured peak, energy) are measured or absent — never a stand-in 0 — and round-trip through
// events.jsonl; older logs load with them unset; the TensorBoard file gets them only when
// measured, and the validation loss.
#include "server/sessions/step_observations.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sessions/event_codec.h"
#include "server/sessions/tensorboard_scalars.h"

namespace anerd::sessions {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

training::StepReport Report() {
  training::StepReport r;
  r.step = 3;
  r.step_ms = 500;
  r.tflops = 0.5;
  r.phases.kernel_ms = 10;
  r.phases.kernel_fwd_ms = 4;
  r.phases.kernel_bwd_ms = 6;
  return r;
}

// A snapshot of an available source whose counters read `joules` at `seconds`.
telemetry::EnergySnapshot Snapshot(double seconds, double joules, double prev_seconds = -1,
                                   double prev_joules = 0) {
  telemetry::EnergySnapshot s;
  s.source = "rapl";
  s.latest = telemetry::EnergyReading{absl::FromUnixSeconds(1000) + absl::Seconds(seconds),
                                      {{"package-0", joules}}};
  if (prev_seconds >= 0) {
    s.previous = telemetry::EnergyReading{absl::FromUnixSeconds(1000) + absl::Seconds(prev_seconds),
                                          {{"package-0", prev_joules}}};
  }
  return s;
}

TEST(StepObservationsTest, EverythingMeasured) {
  StepContext c;
  c.tokens = 256;
  c.compile_ms = 1500;
  c.run_step_ms = 500;
  c.peak = MeasuredPeak{2.0, "probe 20261207-1"};
  c.before = Snapshot(0, 100);
  c.after = Snapshot(1, 120);  // 20 W over the bracketing samples
  const StepObservations o = ObserveStep(Report(), c);
  ASSERT_TRUE(o.compile_share.has_value());
  EXPECT_DOUBLE_EQ(*o.compile_share, 0.75);
  ASSERT_TRUE(o.device_utilization.has_value());
  EXPECT_DOUBLE_EQ(*o.device_utilization, 0.25);
  EXPECT_EQ(o.peak_source, "probe 20261207-1");
  ASSERT_TRUE(o.energy_j.has_value());
  EXPECT_DOUBLE_EQ(*o.energy_j, 10.0);  // 20 W × 0.5 s
  EXPECT_DOUBLE_EQ(*o.power_w, 20.0);
  EXPECT_DOUBLE_EQ(*o.energy_j_per_token, 10.0 / 256);
  EXPECT_EQ(o.energy_source, "rapl");
  EXPECT_TRUE(o.energy_unavailable.empty());
}

TEST(StepObservationsTest, UnmeasuredIsAbsentWithAReasonNeverZero) {
  StepContext c;
  c.tokens = 256;
  StepObservations o = ObserveStep(Report(), c);  // no telemetry, no peak, no compile time
  EXPECT_FALSE(o.energy_j.has_value());
  EXPECT_FALSE(o.energy_j_per_token.has_value());
  EXPECT_FALSE(o.power_w.has_value());
  EXPECT_FALSE(o.device_utilization.has_value());
  EXPECT_FALSE(o.compile_share.has_value());
  EXPECT_THAT(o.energy_unavailable, HasSubstr("no energy telemetry"));

  telemetry::EnergySnapshot none;
  none.source = "rapl";
  none.unavailable = "no RAPL package zone (/sys/class/powercap/intel-rapl:N) on this machine";
  c.before = none;
  c.after = none;
  c.peak = MeasuredPeak{0, "probe x"};  // a zero peak is no measurement
  o = ObserveStep(Report(), c);
  EXPECT_FALSE(o.energy_j.has_value());
  EXPECT_FALSE(o.device_utilization.has_value());
  EXPECT_THAT(o.energy_unavailable, HasSubstr("rapl: no RAPL package zone"));

  // Nothing unmeasured reaches the log or TensorBoard as a number.
  SessionEventRecord e;
  e.step = Report();
  e.observed = o;
  const std::string line = EncodeEventLine(e);
  EXPECT_THAT(line, Not(HasSubstr("energy_j")));
  EXPECT_THAT(line, Not(HasSubstr("device_utilization")));
  EXPECT_THAT(line, HasSubstr("energy_unavailable"));
  for (const metrics::Scalar& s : StepScalars(e.step, 0, o)) {
    EXPECT_THAT(s.tag, Not(HasSubstr("energy"))) << s.tag;
    EXPECT_THAT(s.tag, Not(HasSubstr("utilization"))) << s.tag;
  }
}

TEST(StepObservationsTest, RoundTripThroughTheEventLog) {
  SessionEventRecord e;
  e.kind = SessionEventRecord::Kind::kStep;
  e.step = Report();
  e.observed.compile_ms = 1500;
  e.observed.compile_share = 0.75;
  e.observed.peak_tflops = 2;
  e.observed.peak_source = "probe p1";
  e.observed.device_utilization = 0.25;
  e.observed.energy_j = 10;
  e.observed.energy_j_per_token = 0.039;
  e.observed.power_w = 20;
  e.observed.energy_source = "ioreport";
  e.observed.thermal_state = "fair";
  absl::StatusOr<SessionEventRecord> back = ParseEventLine(EncodeEventLine(e));
  ASSERT_TRUE(back.ok()) << back.status();
  const StepObservations& o = back->observed;
  ASSERT_TRUE(back->step.phases.kernel_fwd_ms.has_value());
  ASSERT_TRUE(back->step.phases.kernel_bwd_ms.has_value());
  EXPECT_DOUBLE_EQ(*back->step.phases.kernel_fwd_ms, 4);
  EXPECT_DOUBLE_EQ(*back->step.phases.kernel_bwd_ms, 6);
  EXPECT_DOUBLE_EQ(*o.compile_ms, 1500);
  EXPECT_DOUBLE_EQ(*o.compile_share, 0.75);
  EXPECT_DOUBLE_EQ(*o.peak_tflops, 2);
  EXPECT_EQ(o.peak_source, "probe p1");
  EXPECT_DOUBLE_EQ(*o.device_utilization, 0.25);
  EXPECT_DOUBLE_EQ(*o.energy_j, 10);
  EXPECT_DOUBLE_EQ(*o.energy_j_per_token, 0.039);
  EXPECT_DOUBLE_EQ(*o.power_w, 20);
  EXPECT_EQ(o.energy_source, "ioreport");
  EXPECT_EQ(o.thermal_state, "fair");

  // A schema-2 line written before these fields existed loads with all of them unset.
  back = ParseEventLine(R"({"v":2,"kind":0,"ms":1,"seq":3,"step":{"step":1,"kernel_ms":5}})");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->observed.energy_j.has_value());
  EXPECT_FALSE(back->observed.compile_ms.has_value());
  EXPECT_FALSE(back->observed.device_utilization.has_value());
  // Not measured then: unset, never a made-up 0 (nor in TensorBoard, Prometheus or the proto).
  EXPECT_FALSE(back->step.phases.kernel_fwd_ms.has_value());
  EXPECT_FALSE(back->step.phases.kernel_bwd_ms.has_value());
  std::map<std::string, float> old_tags;
  for (const metrics::Scalar& s : StepScalars(back->step, 0, back->observed)) {
    old_tags[s.tag] = s.value;
  }
  EXPECT_EQ(old_tags.count("phase_ms/kernel_fwd"), 0u);
  EXPECT_EQ(old_tags.count("phase_ms/kernel_bwd"), 0u);

  back = ParseEventLine(R"({"v":2,"kind":0,"ms":1,"seq":3,"step":{"step":1,"energy_j":"x1"}})");
  EXPECT_THAT(back.status().message(), HasSubstr("energy_j"));
}

TEST(StepObservationsTest, TensorBoardScalars) {
  StepObservations o;
  o.energy_j = 10;
  o.energy_j_per_token = 0.04;
  o.power_w = 20;
  o.device_utilization = 0.25;
  o.compile_share = 0.5;
  std::map<std::string, float> tags;
  for (const metrics::Scalar& s : StepScalars(Report(), 0, o)) tags[s.tag] = s.value;
  EXPECT_FLOAT_EQ(tags.at("energy/joules"), 10);
  EXPECT_FLOAT_EQ(tags.at("energy/joules_per_token"), 0.04f);
  EXPECT_FLOAT_EQ(tags.at("energy/watts"), 20);
  EXPECT_FLOAT_EQ(tags.at("speed/device_utilization"), 0.25f);
  EXPECT_FLOAT_EQ(tags.at("speed/compile_share"), 0.5f);
  EXPECT_FLOAT_EQ(tags.at("phase_ms/kernel_fwd"), 4);
  EXPECT_FLOAT_EQ(tags.at("phase_ms/kernel_bwd"), 6);

  training::EvalReport eval;
  eval.loss = 2.5;
  eval.perplexity = 12.18;
  std::map<std::string, float> val;
  for (const metrics::Scalar& s : EvalScalars(eval)) val[s.tag] = s.value;
  EXPECT_FLOAT_EQ(val.at("loss/val"), 2.5f);
  EXPECT_FLOAT_EQ(val.at("loss/val_perplexity"), 12.18f);
}

}  // namespace
}  // namespace anerd::sessions
