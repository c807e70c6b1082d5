// Issue 21 items 2 and 3 through the RPC: the step event's breakdown, utilisation and energy
// fields reach the proto (and survive its wire form) when measured, stay unset — with the reason
// — when not; probe rows carry watts and TFLOPS/W the same way.
#include <string>

#include "anerd/v1/anerd.pb.h"
#include "gtest/gtest.h"
#include "server/service/convert.h"

namespace anerd::service {
namespace {

namespace v1 = ::anerd::v1;

v1::SessionEvent OverTheWire(const sessions::SessionEventRecord& e) {
  v1::SessionEvent out;
  ToProto(e, &out);
  v1::SessionEvent back;
  EXPECT_TRUE(back.ParseFromString(out.SerializeAsString()));
  return back;
}

TEST(ConvertObservationsTest, MeasuredStepFieldsReachTheProto) {
  sessions::SessionEventRecord e;
  e.kind = sessions::SessionEventRecord::Kind::kStep;
  e.step.step = 4;
  e.step.phases.kernel_fwd_ms = 1.5;
  e.step.phases.kernel_bwd_ms = 2.5;
  e.observed.compile_ms = 900;
  e.observed.compile_share = 0.3;
  e.observed.device_utilization = 0.4;
  e.observed.peak_tflops = 1.25;
  e.observed.peak_source = "probe p";
  e.observed.energy_j = 3;
  e.observed.energy_j_per_token = 0.01;
  e.observed.power_w = 6;
  e.observed.energy_source = "rapl";
  const v1::StepEvent s = OverTheWire(e).step();
  ASSERT_TRUE(s.phases().has_kernel_fwd_ms());
  ASSERT_TRUE(s.phases().has_kernel_bwd_ms());
  EXPECT_DOUBLE_EQ(s.phases().kernel_fwd_ms(), 1.5);
  EXPECT_DOUBLE_EQ(s.phases().kernel_bwd_ms(), 2.5);
  ASSERT_TRUE(s.has_compile_ms());
  EXPECT_DOUBLE_EQ(s.compile_share(), 0.3);
  ASSERT_TRUE(s.has_device_utilization());
  EXPECT_DOUBLE_EQ(s.device_utilization(), 0.4);
  EXPECT_DOUBLE_EQ(s.peak_tflops(), 1.25);
  EXPECT_EQ(s.peak_source(), "probe p");
  ASSERT_TRUE(s.has_energy_j());
  EXPECT_DOUBLE_EQ(s.energy_j(), 3);
  EXPECT_DOUBLE_EQ(s.energy_j_per_token(), 0.01);
  EXPECT_DOUBLE_EQ(s.power_w(), 6);
  EXPECT_EQ(s.energy_source(), "rapl");
}

TEST(ConvertObservationsTest, UnmeasuredStaysUnsetWithTheReason) {
  sessions::SessionEventRecord e;
  e.kind = sessions::SessionEventRecord::Kind::kStep;
  e.observed.energy_unavailable = "rapl: no RAPL package zone";
  const v1::StepEvent s = OverTheWire(e).step();
  EXPECT_FALSE(s.has_energy_j());
  EXPECT_FALSE(s.has_energy_j_per_token());
  EXPECT_FALSE(s.has_power_w());
  EXPECT_FALSE(s.has_device_utilization());
  EXPECT_FALSE(s.has_compile_ms());
  EXPECT_FALSE(s.phases().has_kernel_fwd_ms());  // a step logged before the split existed
  EXPECT_FALSE(s.phases().has_kernel_bwd_ms());
  EXPECT_EQ(s.energy_unavailable(), "rapl: no RAPL package zone");
}

TEST(ConvertObservationsTest, ProbeRowWatts) {
  probes::ProbeRow row;
  row.tflops = 2;
  row.watts = 4;
  row.tflops_per_watt = 0.5;
  row.energy_source = "ioreport";
  v1::ProbeRow out;
  ToProto(row, &out);
  ASSERT_TRUE(out.has_watts());
  EXPECT_DOUBLE_EQ(out.watts(), 4);
  EXPECT_DOUBLE_EQ(out.tflops_per_watt(), 0.5);
  EXPECT_EQ(out.energy_source(), "ioreport");

  probes::ProbeRow none;
  none.energy_unavailable = "rapl: counters are root-only";
  v1::ProbeRow out2;
  ToProto(none, &out2);
  EXPECT_FALSE(out2.has_watts());
  EXPECT_FALSE(out2.has_tflops_per_watt());
  EXPECT_EQ(out2.energy_unavailable(), "rapl: counters are root-only");
}

}  // namespace
}  // namespace anerd::service
