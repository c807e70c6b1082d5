// Kernel identity: the id format (stable across releases: ids are stored and held by clients),
// what changes it, and round trips of the compile-option and signature codecs.
#include "server/cache/kernel_key.h"

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/mil/parser.h"
#include "common/mil/printer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/kernel_fixtures.h"

namespace anerd::cache {
namespace {

using ::testing::HasSubstr;

mil::VerifiedProgram Conv(std::string weights = testing::ConvWeightBytes()) {
  absl::StatusOr<mil::Program> program = mil::ParseProgram(testing::ConvMilText());
  EXPECT_TRUE(program.ok()) << program.status();
  mil::WeightFiles files;
  EXPECT_TRUE(files.Add("weights/w.bin", std::move(weights)).ok());
  absl::StatusOr<mil::VerifiedProgram> verified =
      mil::VerifyProgram(*std::move(program), std::move(files));
  EXPECT_TRUE(verified.ok()) << verified.status();
  return *std::move(verified);
}

backend::BackendDescription Cpu(std::string version = "1") {
  backend::BackendDescription d;
  d.name = "cpu";
  d.version = std::move(version);
  return d;
}

// The documented id format, spelled out independently of the implementation.
TEST(KernelKeyTest, IdFollowsTheDocumentedFormat) {
  const mil::VerifiedProgram program = Conv();
  backend::CompileOptions options;
  options.numerics = backend::NumericsMode::kFp32;
  options.ignore_attn_mask = true;
  const KernelKey key = KernelKey::Make(program, Cpu("7"), options);
  const std::string text = mil::PrintProgram(program.program());
  const std::string expected = Sha256Hex(absl::StrCat(
      "anerd-kernel-v1\n", text, "\nweight weights/w.bin ", Sha256Hex(testing::ConvWeightBytes()),
      "\nbackend cpu 7\noptions numerics=fp32,ignore_attn_mask"));
  EXPECT_EQ(key.id, expected);
  EXPECT_EQ(key.canonical_text, text);
  EXPECT_EQ(key.mil_sha, Sha256Hex(text));
  EXPECT_EQ(key.options, "numerics=fp32,ignore_attn_mask");
  ASSERT_EQ(key.weights.size(), 1u);
  EXPECT_EQ(key.weights[0].first, "weights/w.bin");
  EXPECT_EQ(key.weight_bytes, testing::ConvWeightBytes().size());
}

TEST(KernelKeyTest, EverythingThatChangesTheResultChangesTheId) {
  const backend::CompileOptions defaults;
  const std::string base = KernelKey::Make(Conv(), Cpu(), defaults).id;
  EXPECT_EQ(KernelKey::Make(Conv(), Cpu(), defaults).id, base);  // deterministic

  std::string other_weights = testing::ConvWeightBytes();
  other_weights[other_weights.size() - 1] ^= 1;
  EXPECT_NE(KernelKey::Make(Conv(other_weights), Cpu(), defaults).id, base);
  EXPECT_NE(KernelKey::Make(Conv(), Cpu("2"), defaults).id, base);
  backend::BackendDescription sim = Cpu();
  sim.name = "ane-sim";
  EXPECT_NE(KernelKey::Make(Conv(), sim, defaults).id, base);
  backend::CompileOptions reference;
  reference.reference_mode = true;
  EXPECT_NE(KernelKey::Make(Conv(), Cpu(), reference).id, base);
  // Limits and stop checks never change a compiled result, so they are not part of the id.
  backend::CompileOptions limited;
  limited.max_memory_bytes = 12345;
  limited.stop = [] { return absl::OkStatus(); };
  EXPECT_EQ(KernelKey::Make(Conv(), Cpu(), limited).id, base);
}

TEST(KernelKeyTest, KnownWeightDigestsAreUsedAsGiven) {
  const std::string fake(64, 'a');
  const KernelKey key =
      KernelKey::Make(Conv(), Cpu(), backend::CompileOptions{}, {{"weights/w.bin", fake}});
  ASSERT_EQ(key.weights.size(), 1u);
  EXPECT_EQ(key.weights[0].second, fake);
  EXPECT_NE(key.id, KernelKey::Make(Conv(), Cpu(), backend::CompileOptions{}).id);
}

TEST(CompileOptionsCodecTest, RoundTripsEveryCombination) {
  for (backend::NumericsMode numerics :
       {backend::NumericsMode::kAne, backend::NumericsMode::kFp32}) {
    for (bool mask : {false, true}) {
      for (bool reference : {false, true}) {
        backend::CompileOptions options;
        options.numerics = numerics;
        options.ignore_attn_mask = mask;
        options.reference_mode = reference;
        const std::string text = EncodeCompileOptions(options);
        absl::StatusOr<backend::CompileOptions> back = DecodeCompileOptions(text);
        ASSERT_TRUE(back.ok()) << text << ": " << back.status();
        EXPECT_EQ(back->numerics, numerics) << text;
        EXPECT_EQ(back->ignore_attn_mask, mask) << text;
        EXPECT_EQ(back->reference_mode, reference) << text;
        EXPECT_EQ(EncodeCompileOptions(*back), text);
      }
    }
  }
}

TEST(CompileOptionsCodecTest, StoredSpellingsDecode) {
  // What earlier releases wrote into anerd.db.
  absl::StatusOr<backend::CompileOptions> ane = DecodeCompileOptions("numerics=ane");
  ASSERT_TRUE(ane.ok());
  EXPECT_EQ(ane->numerics, backend::NumericsMode::kAne);
  EXPECT_FALSE(ane->ignore_attn_mask);
  absl::StatusOr<backend::CompileOptions> all =
      DecodeCompileOptions("numerics=fp32,ignore_attn_mask,reference_mode");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->numerics, backend::NumericsMode::kFp32);
  EXPECT_TRUE(all->ignore_attn_mask);
  EXPECT_TRUE(all->reference_mode);
}

TEST(CompileOptionsCodecTest, QosRoundTripsAfterTheFlags) {
  for (unsigned int qos : {0u, 9u, 21u, 63u}) {
    for (bool reference : {false, true}) {
      backend::CompileOptions options;
      options.numerics = backend::NumericsMode::kFp32;
      options.ignore_attn_mask = true;
      options.reference_mode = reference;
      options.qos = qos;
      const std::string text = EncodeCompileOptions(options);
      EXPECT_THAT(text, HasSubstr(absl::StrCat(",qos=", qos)));
      absl::StatusOr<backend::CompileOptions> back = DecodeCompileOptions(text);
      ASSERT_TRUE(back.ok()) << text << ": " << back.status();
      ASSERT_TRUE(back->qos.has_value()) << text;
      EXPECT_EQ(*back->qos, qos) << text;
      EXPECT_EQ(back->reference_mode, reference) << text;
      EXPECT_EQ(EncodeCompileOptions(*back), text);
    }
  }
  absl::StatusOr<backend::CompileOptions> none = DecodeCompileOptions("numerics=ane");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->qos.has_value());
}

TEST(CompileOptionsCodecTest, QosIsPartOfTheIdOnlyWhenSet) {
  backend::CompileOptions none;
  EXPECT_EQ(EncodeCompileOptions(none), "numerics=ane");  // as stored before QoS existed
  backend::CompileOptions q21 = none, q22 = none;
  q21.qos = 21;
  q22.qos = 22;
  const std::string id = KernelKey::Make(Conv(), Cpu(), none).id;
  EXPECT_NE(KernelKey::Make(Conv(), Cpu(), q21).id, id);
  EXPECT_NE(KernelKey::Make(Conv(), Cpu(), q21).id, KernelKey::Make(Conv(), Cpu(), q22).id);
}

TEST(CompileOptionsCodecTest, MalformedQosIsDataLoss) {
  for (const char* bad : {"numerics=ane,qos=", "numerics=ane,qos=64", "numerics=ane,qos=-1",
                          "numerics=ane,qos=+5", "numerics=ane,qos=05", "numerics=ane,qos=x",
                          "numerics=ane,qos=5,reference_mode", "numerics=ane,qos=5,qos=5"}) {
    absl::StatusOr<backend::CompileOptions> decoded = DecodeCompileOptions(bad);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << "'" << bad << "'";
  }
}

// A substring search accepted these (e.g. "numerics=fp32" inside another word).
TEST(CompileOptionsCodecTest, AnythingElseIsDataLoss) {
  for (const char* bad : {"", "numerics=", "numerics=fp32x", "numerics=fp16", "fp32",
                          "numerics=ane,not_ignore_attn_mask",
                          "numerics=ane,reference_mode,"
                          "ignore_attn_mask",
                          "numerics=ane,ignore_attn_mask,ignore_attn_mask", "numerics=ane,"}) {
    absl::StatusOr<backend::CompileOptions> decoded = DecodeCompileOptions(bad);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << "'" << bad << "'";
    EXPECT_THAT(decoded.status().message(), HasSubstr("compile options")) << bad;
  }
}

TEST(SignatureCodecTest, RoundTrips) {
  KernelSignature sig;
  sig.inputs.push_back({"x", {mil::DType::kFp16, {1, 64, 1, 16}}});
  sig.inputs.push_back({"scalar", {mil::DType::kFp32, {}}});
  sig.outputs.push_back({"y", {mil::DType::kInt32, {2, 3}}});
  const std::string text = EncodeSignature(sig);
  EXPECT_EQ(text, "x:fp16[1,64,1,16];scalar:fp32[]->y:int32[2,3]");
  absl::StatusOr<KernelSignature> back = DecodeSignature(text);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->inputs.size(), 2u);
  ASSERT_EQ(back->outputs.size(), 1u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back->inputs[i].name, sig.inputs[i].name);
    EXPECT_EQ(back->inputs[i].type, sig.inputs[i].type);
  }
  EXPECT_EQ(back->outputs[0].name, "y");
  EXPECT_EQ(back->outputs[0].type, sig.outputs[0].type);

  absl::StatusOr<KernelSignature> empty = DecodeSignature(EncodeSignature({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->inputs.empty() && empty->outputs.empty());
}

TEST(SignatureCodecTest, MalformedIsDataLoss) {
  for (const char* bad : {"x:fp16[1]", "x:fp16[1]->y", "x:fp16[1]->:", "x:bogus[1]->y:fp16[1]",
                          "x:fp16[a]->y:fp16[1]", "xfp16[1]->y:fp16[1]", "x:fp16(1)->y:fp16[1]"}) {
    EXPECT_EQ(DecodeSignature(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace anerd::cache
