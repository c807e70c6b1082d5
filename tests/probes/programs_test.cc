// Probe programs: structure, weight files, determinism, and print -> parse -> verify.
#include "server/probes/programs.h"

#include <string>

#include "common/mil/blob_file.h"
#include "common/mil/parser.h"
#include "common/mil/printer.h"
#include "common/mil/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::probes {
namespace {

int CountOps(const mil::Program& p, absl::string_view op) {
  int n = 0;
  for (const mil::Operation& o : p.main()->ops) n += o.op == op;
  return n;
}

// Prints, re-parses, compares and verifies; returns the verified program's warnings count.
void ExpectRoundTripAndVerify(const ProbeProgram& probe) {
  auto parsed = mil::ParseProgram(mil::PrintProgram(probe.program));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(*parsed == probe.program);
  auto verified = mil::VerifyProgram(std::move(*parsed), probe.weights);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->warnings().empty());
}

TEST(ProbeProgramsTest, PeakIsAChainOfConvsWithCasts) {
  auto p = PeakProgram(64, 32, 5, /*seed=*/7);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(CountOps(p->program, "conv"), 5);
  EXPECT_EQ(CountOps(p->program, "cast"), 2);
  EXPECT_EQ(p->weights.size(), 5u);
  EXPECT_EQ(p->flops, 2 * 64 * 64 * 32 * 5);
  EXPECT_EQ(p->weight_bytes, 5 * 64 * 64 * 2);
  const mil::Function& main = *p->program.main();
  EXPECT_EQ(main.inputs[0].type, (mil::TensorType{mil::DType::kFp32, {1, 64, 1, 32}}));
  ExpectRoundTripAndVerify(*p);
}

TEST(ProbeProgramsTest, SramAndLatencyAreSingleConvs) {
  auto sram = SramProgram(96, 16, 1, /*fp32_io=*/false);
  ASSERT_TRUE(sram.ok()) << sram.status();
  EXPECT_EQ(CountOps(sram->program, "conv"), 1);
  EXPECT_EQ(CountOps(sram->program, "cast"), 0);
  ExpectRoundTripAndVerify(*sram);
  auto lat = LatencyProgram(3);
  ASSERT_TRUE(lat.ok()) << lat.status();
  EXPECT_EQ(lat->program.main()->inputs[0].type,
            (mil::TensorType{mil::DType::kFp16, {1, 64, 1, 64}}));
  ExpectRoundTripAndVerify(*lat);
}

TEST(ProbeProgramsTest, Int8VariantsShareWeightsAndDiffer) {
  auto fp16 = Int8Program(64, 8, 3, /*w8a8=*/false, 11);
  auto w8a8 = Int8Program(64, 8, 3, /*w8a8=*/true, 11);
  ASSERT_TRUE(fp16.ok()) << fp16.status();
  ASSERT_TRUE(w8a8.ok()) << w8a8.status();
  EXPECT_EQ(CountOps(fp16->program, "constexpr_affine_dequantize"), 0);
  EXPECT_EQ(CountOps(w8a8->program, "constexpr_affine_dequantize"), 3);
  EXPECT_EQ(CountOps(w8a8->program, "quantize"), 2);  // not after the last layer
  EXPECT_EQ(CountOps(w8a8->program, "dequantize"), 2);
  EXPECT_EQ(fp16->weight_bytes, 2 * w8a8->weight_bytes);
  EXPECT_EQ(fp16->flops, 2 * 64 * 64 * 8 * 8 * 3);
  EXPECT_EQ(w8a8->program.main()->inputs[0].type,
            (mil::TensorType{mil::DType::kFp16, {1, 64, 8, 8}}));
  // The int8 file carries the real Int8 dtype code.
  auto rec = mil::ReadBlobRecord(*w8a8->weights.Find("w0.bin"), 64);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->dtype_code, 4u);
  EXPECT_EQ(rec->size_bytes, 64u * 64u);
  ExpectRoundTripAndVerify(*fp16);
  ExpectRoundTripAndVerify(*w8a8);
}

TEST(ProbeProgramsTest, WeightsAreDeterministicPerSeed) {
  auto a = PeakProgram(64, 8, 2, 5);
  auto b = PeakProgram(64, 8, 2, 5);
  auto c = PeakProgram(64, 8, 2, 6);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a->weights.Find("w1.bin"), *b->weights.Find("w1.bin"));
  EXPECT_NE(*a->weights.Find("w1.bin"), *c->weights.Find("w1.bin"));
  EXPECT_NE(*a->weights.Find("w0.bin"), *a->weights.Find("w1.bin"));
}

TEST(ProbeProgramsTest, RejectsOutOfBoundsSizes) {
  EXPECT_EQ(PeakProgram(0, 64, 1, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(PeakProgram(64, 64, 0, 1).ok());
  EXPECT_FALSE(PeakProgram(64, 64, kMaxProbeDepth + 1, 1).ok());
  EXPECT_FALSE(SramProgram(kMaxProbeChannels + 1, 64, 1).ok());
  EXPECT_FALSE(Int8Program(16384, 1024, 1, true, 1).ok());  // 2^34 activation elements
}

}  // namespace
}  // namespace anerd::probes
