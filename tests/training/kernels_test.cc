// The dynamic training kernels: surface sizes of docs/ANE_NOTES.md §4.3, slot layouts, GQA head
// mapping, constant tables, and print -> parse -> verify of every kernel at four model shapes.
#include "server/training/kernels.h"

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/fp16.h"
#include "common/mil/blob_file.h"
#include "common/mil/parser.h"
#include "common/mil/printer.h"
#include "common/mil/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::training {
namespace {

ModelShape Tiny(int64_t kv_heads) {
  return ModelShape{/*dim=*/64, /*hidden=*/192, /*heads=*/4,  kv_heads, /*head_dim=*/16,
                    /*seq=*/64, /*layers=*/2,   /*vocab=*/256};
}
ModelShape Stories110M() { return ModelShape{768, 2048, 12, 12, 64, 256, 12, 32000}; }
ModelShape Qwen3() { return ModelShape{1024, 3072, 16, 8, 128, 256, 28, 151936}; }

using Bytes = std::map<std::string, std::pair<int64_t, int64_t>>;  // kernel -> (in, out)

// docs/ANE_NOTES.md §4.3, "Surface bytes".
const Bytes& StoriesBytes() {
  static const auto* bytes =
      new Bytes{{"sdpaFwd", {3932160, 1966080}},   {"woFwd", {1572864, 393216}},
                {"ffnFused", {10223616, 3538944}}, {"ffnBwdW2t", {3538944, 1048576}},
                {"ffnBwdW13t", {8388608, 393216}}, {"wotBwd", {1572864, 393216}},
                {"sdpaBwd1", {1572864, 3538944}},  {"sdpaBwd2", {3932160, 786432}},
                {"qBwd", {1572864, 393216}},       {"kvBwd", {3145728, 393216}}};
  return *bytes;
}
const Bytes& QwenBytes() {
  static const auto* bytes =
      new Bytes{{"sdpaFwd", {8912896, 3670016}},    {"woFwd", {5242880, 524288}},
                {"ffnFused", {19922944, 5242880}},  {"ffnBwdW2t", {6815744, 1572864}},
                {"ffnBwdW13t", {15728640, 524288}}, {"wotBwd", {4718592, 1048576}},
                {"sdpaBwd1", {4194304, 5242880}},   {"sdpaBwd2", {6291456, 2097152}},
                {"qBwd", {5242880, 524288}},        {"kvBwd", {5242880, 524288}}};
  return *bytes;
}

void ExpectSurfaceBytes(const ModelShape& shape, const Bytes& expected) {
  auto kernels = AllKernels(shape);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  ASSERT_EQ(kernels->size(), expected.size());
  for (const Kernel& k : *kernels) {
    SCOPED_TRACE(k.layout.kernel);
    ASSERT_EQ(expected.count(k.layout.kernel), 1u);
    EXPECT_EQ(k.layout.input_bytes(), expected.at(k.layout.kernel).first);
    EXPECT_EQ(k.layout.output_bytes(), expected.at(k.layout.kernel).second);
    // The program's own surface types agree with the layout.
    const mil::Function& main = *k.program.main();
    ASSERT_EQ(main.inputs.size(), 1u);
    EXPECT_EQ(main.inputs[0].type.NumBytes(), k.layout.input_bytes());
  }
}

TEST(KernelsTest, Stories110MSurfaceBytesMatchTheSpec) {
  ExpectSurfaceBytes(Stories110M(), StoriesBytes());
}
TEST(KernelsTest, Qwen3SurfaceBytesMatchTheSpec) { ExpectSurfaceBytes(Qwen3(), QwenBytes()); }

TEST(KernelsTest, LayoutsMatchTheSeed) {
  const ModelShape m = Qwen3();  // S 256, D 1024, QD 2048, KVD 1024, SC 4096
  auto fwd = SdpaFwd(m);
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  EXPECT_EQ(fwd->layout.FindSlot("wk_t")->offset, 256 + 2048);
  EXPECT_EQ(fwd->layout.FindSlot("wv_t")->offset, 256 + 2048 + 1024);
  EXPECT_EQ(fwd->layout.FindOutput("k_rope")->offset, 4096);
  EXPECT_EQ(fwd->layout.FindOutput("xnorm")->offset, 6144);
  auto ffn = FfnFused(m, 0.133631);
  ASSERT_TRUE(ffn.ok());
  EXPECT_EQ(ffn->layout.FindSlot("w2")->offset, 512 + 2 * 3072);
  EXPECT_EQ(ffn->layout.FindOutput("gate")->offset, 1024 + 2 * 3072);
  auto bwd2 = SdpaBwd2(m);
  ASSERT_TRUE(bwd2.ok());
  EXPECT_TRUE(bwd2->layout.slots_on_channels);
  EXPECT_EQ(bwd2->layout.FindSlot("k_tiled")->offset, 2 * 4096 + 2048);
  auto kv = KvBwd(m);
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->layout.in_channels, 1024);
  EXPECT_EQ(kv->layout.FindSlot("wv")->offset, 512 + 1024);
}

// Blocks tile their axis exactly, and the declared output type equals the layout.
void ExpectConsistentLayout(const Kernel& k) {
  int64_t next = 0;
  for (const Block& blk : k.layout.in_slots) {
    EXPECT_EQ(blk.offset, next) << blk.name;
    next += blk.size;
  }
  EXPECT_EQ(next, k.layout.slots_on_channels ? k.layout.in_channels : k.layout.in_spatial);
  next = 0;
  for (const Block& blk : k.layout.out_blocks) {
    EXPECT_EQ(blk.offset, next) << blk.name;
    next += blk.size;
  }
  EXPECT_EQ(next, k.layout.out_channels);
  const mil::Function& main = *k.program.main();
  ASSERT_EQ(main.outputs.size(), 1u);
  const mil::TensorType want{mil::DType::kFp16,
                             {1, k.layout.out_channels, 1, k.layout.out_spatial}};
  bool found = false;
  for (const mil::Operation& op : main.ops) {
    if (op.outputs[0].name == main.outputs[0]) {
      EXPECT_EQ(op.outputs[0].type, want);
      found = true;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(
      main.inputs[0].type,
      (mil::TensorType{mil::DType::kFp16, {1, k.layout.in_channels, 1, k.layout.in_spatial}}));
}

class KernelsRoundTripTest : public ::testing::TestWithParam<ModelShape> {};

TEST_P(KernelsRoundTripTest, EveryKernelPrintsParsesAndVerifies) {
  auto kernels = AllKernels(GetParam(), 0.204124);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  auto constants = KernelConstants(GetParam());
  ASSERT_TRUE(constants.ok()) << constants.status();
  for (const Kernel& k : *kernels) {
    SCOPED_TRACE(k.layout.kernel);
    ExpectConsistentLayout(k);
    const std::string text = mil::PrintProgram(k.program);
    auto parsed = mil::ParseProgram(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(*parsed == k.program);
    auto verified = mil::VerifyProgram(std::move(*parsed), *constants);
    ASSERT_TRUE(verified.ok()) << verified.status();
    EXPECT_TRUE(verified->warnings().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, KernelsRoundTripTest,
                         ::testing::Values(Tiny(4), Tiny(2), Stories110M(), Qwen3()));

// Query head h must read KV head h / R (Hugging Face repeat_kv), not h mod KVH.
TEST(KernelsTest, GqaTilingMapsHeadsLikeHuggingFace) {
  auto fwd = SdpaFwd(Tiny(2));  // 4 heads, 2 KV heads, R = 2
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  for (const char* tensor : {"k", "v"}) {
    const mil::Operation* tiled = nullptr;
    for (const mil::Operation& op : fwd->program.main()->ops) {
      if (op.outputs[0].name == std::string(tensor) + "_tiled") tiled = &op;
    }
    ASSERT_NE(tiled, nullptr) << tensor;
    const mil::Argument* values = tiled->FindInput("values");
    ASSERT_NE(values, nullptr);
    std::vector<std::string> order;
    for (const mil::Argument& a : values->elements) order.push_back(a.ref);
    const std::string h0 = std::string(tensor) + "_kvh0", h1 = std::string(tensor) + "_kvh1";
    EXPECT_THAT(order, ::testing::ElementsAre(h0, h0, h1, h1));
  }
}

TEST(KernelsTest, ConstantTables) {
  const std::vector<float> mask = CausalMask(4);
  EXPECT_EQ(mask, (std::vector<float>{0, -65504, -65504, -65504, 0, 0, -65504, -65504, 0, 0, 0,
                                      -65504, 0, 0, 0, 0}));
  std::vector<float> cos, sin;
  RopeTables(8, 4, &cos, &sin);
  for (int p = 0; p < 8; ++p) {
    for (int i = 0; i < 2; ++i) {
      const double theta = p / std::pow(10000.0, 2.0 * i / 4);
      EXPECT_NEAR(cos[p * 4 + 2 * i], std::cos(theta), 1e-5);
      EXPECT_EQ(cos[p * 4 + 2 * i], cos[p * 4 + 2 * i + 1]);
      EXPECT_NEAR(sin[p * 4 + 2 * i + 1], std::sin(theta), 1e-5);
    }
  }
  auto files = KernelConstants(Tiny(4));
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->size(), 3u);
  std::vector<mil::Diagnostic> warnings;
  auto data = mil::ResolveBlob(*files, mil::BlobRef{kMaskPath, 64},
                               mil::TensorType{mil::DType::kFp16, {1, 1, 64, 64}}, &warnings);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(warnings.empty());
  uint16_t h[2];
  std::memcpy(h, data->data(), 4);  // row 0: [0, -65504, ...]
  EXPECT_EQ(HalfToFloat(h[0]), 0.0f);
  EXPECT_EQ(HalfToFloat(h[1]), -65504.0f);
}

TEST(KernelsTest, RejectsBadShapes) {
  ModelShape m = Tiny(4);
  m.kv_heads = 3;
  EXPECT_EQ(SdpaFwd(m).status().code(), absl::StatusCode::kInvalidArgument);
  m = Tiny(4);
  m.head_dim = 15;
  EXPECT_FALSE(KernelConstants(m).ok());
  m = Tiny(4);
  m.seq = 0;
  EXPECT_FALSE(WoFwd(m).ok());
}

}  // namespace
}  // namespace anerd::training
