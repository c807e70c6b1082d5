// The sampler against run.c's (issue 20 item 5): runc_reference.py implements run.c's sample()
// literally in float32 (xorshift RNG, temperature, softmax, sample_mult, sample_topp with the
// (1 - topp) / (n - 1) cutoff and coin * cumulative_prob) and its choices on fixed logits must
// equal ours for the same seed; top-k = 1 equals greedy; the repetition penalty; bad parameters
// are refused naming the field.
#include "server/generation/sampler.h"

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/generation/generation_test_util.h"

namespace anerd::generation {
namespace {

using testing::Uniform;

constexpr int kVocab = 200;
constexpr int kRows = 400;

// Rows of logits with scales from flat (0.3) to peaked (8), so the nucleus varies in size.
std::vector<float> Logits(uint64_t seed) {
  std::vector<float> v(int64_t{kRows} * kVocab);
  uint64_t s = seed;
  for (int r = 0; r < kRows; ++r) {
    const double scale = 0.3 + 7.7 * (r % 17) / 16.0;
    for (int i = 0; i < kVocab; ++i) v[r * kVocab + i] = static_cast<float>(scale * Uniform(&s));
  }
  return v;
}

struct Case {
  float temperature, top_p;
  uint64_t seed;
};

class RunCSamplerTest : public ::testing::TestWithParam<Case> {};

TEST_P(RunCSamplerTest, SameSeedSameChoicesAsRunC) {
  const std::string py = testing::NumpyPython();
  if (py.empty()) GTEST_SKIP() << "no python3 with numpy";
  const Case c = GetParam();
  testing::TempDir dir;
  const std::vector<float> logits = Logits(c.seed ^ 0x5eed);
  testing::WriteRaw(dir / "logits.bin", logits);
  const std::string cmd = absl::StrFormat(
      "%s %s sample --logits %s --vocab %d --seed %u --temperature %.9g --topp %.9g --out %s", py,
      testing::ReferenceScript(), dir / "logits.bin", kVocab, c.seed, c.temperature, c.top_p,
      dir / "out.json");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const nlohmann::json ref = testing::ReadJson(dir / "out.json");
  ASSERT_TRUE(ref.is_object());
  const std::vector<int> want = ref["choices"].get<std::vector<int>>();
  ASSERT_EQ(want.size(), static_cast<size_t>(kRows));

  SamplingParams p;
  p.temperature = c.temperature;
  p.top_p = c.top_p;
  p.seed = c.seed;
  absl::StatusOr<Sampler> sampler = Sampler::Create(p, kVocab);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  std::vector<int> got;
  for (int r = 0; r < kRows; ++r) {
    absl::StatusOr<int> t =
        sampler->Sample(absl::MakeConstSpan(logits).subspan(int64_t{r} * kVocab, kVocab));
    ASSERT_TRUE(t.ok()) << t.status();
    got.push_back(*t);
  }
  EXPECT_EQ(got, want);
  // Not a degenerate check: the choices vary, and stochastic ones often differ from greedy.
  EXPECT_GT(std::set<int>(got.begin(), got.end()).size(), 20u);
  if (c.temperature > 0) {
    int not_argmax = 0;
    for (int r = 0; r < kRows; ++r) {
      not_argmax += got[r] != SampleArgmax(logits.data() + int64_t{r} * kVocab, kVocab);
    }
    EXPECT_GT(not_argmax, kRows / 10);
  }
  uint64_t state = c.seed;
  for (const auto& u : ref["u32"]) EXPECT_EQ(RandomU32(&state), u.get<uint32_t>());
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  static const char* const kNames[] = {"T1TopP09", "T08Full", "T15TopP05", "Greedy"};
  return kNames[info.index];
}

INSTANTIATE_TEST_SUITE_P(Settings, RunCSamplerTest,
                         ::testing::Values(Case{1.0f, 0.9f, 42}, Case{0.8f, 1.0f, 1234567},
                                           Case{1.5f, 0.5f, 0x9e3779b97f4a7c15ull},
                                           Case{0.0f, 0.9f, 0}),
                         CaseName);

TEST(SamplerTest, TopKOneIsGreedy) {
  uint64_t s = 99;
  for (float temperature : {0.0f, 0.5f, 1.0f, 3.0f}) {
    for (float top_p : {1.0f, 0.9f, 0.2f}) {
      SamplingParams p;
      p.temperature = temperature;
      p.top_p = top_p;
      p.top_k = 1;
      p.seed = 7;
      absl::StatusOr<Sampler> sampler = Sampler::Create(p, kVocab);
      ASSERT_TRUE(sampler.ok()) << sampler.status();
      for (int r = 0; r < 50; ++r) {
        std::vector<float> logits(kVocab);
        for (float& v : logits) v = static_cast<float>(std::round(4 * Uniform(&s)));  // many ties
        absl::StatusOr<int> t = sampler->Sample(logits);
        ASSERT_TRUE(t.ok());
        EXPECT_EQ(*t, SampleArgmax(logits.data(), kVocab)) << temperature << " " << top_p;
      }
    }
  }
}

TEST(SamplerTest, LogProbIsTheLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 1000.0f};  // large values: max subtracted
  const double z = std::log(std::exp(1.0 - 1000) + std::exp(2.0 - 1000) + std::exp(3.0 - 1000) + 1);
  EXPECT_NEAR(LogProb(logits, 3), -z, 1e-12);
  EXPECT_NEAR(LogProb(logits, 0), 1.0 - 1000 - z, 1e-9);
  const std::vector<float> flat(8, 0.5f);
  EXPECT_NEAR(LogProb(flat, 5), -std::log(8.0), 1e-12);
}

TEST(SamplerTest, TopKKeepsTheKLargest) {
  SamplingParams p;
  p.temperature = 5.0f;  // nearly uniform: without top-k, most picks would fall outside
  p.top_k = 3;
  p.seed = 11;
  absl::StatusOr<Sampler> sampler = Sampler::Create(p, 10);
  ASSERT_TRUE(sampler.ok());
  const std::vector<float> logits = {0.1f, 0.9f, 0.2f, 0.8f, 0.3f, 0.7f, 0.4f, 0.0f, 0.5f, 0.6f};
  std::set<int> seen;
  for (int i = 0; i < 300; ++i) seen.insert(*sampler->Sample(logits));
  EXPECT_EQ(seen, (std::set<int>{1, 3, 5}));
}

TEST(SamplerTest, RepetitionPenaltyDemotesSeenTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  absl::StatusOr<Sampler> sampler = Sampler::Create(p, 4);
  ASSERT_TRUE(sampler.ok());
  const std::vector<float> logits = {3.0f, 2.0f, -1.0f, -1.5f};
  EXPECT_EQ(*sampler->Sample(logits), 0);
  EXPECT_EQ(*sampler->Sample(logits, {0}), 1);        // 3 / 2 < 2
  EXPECT_EQ(*sampler->Sample(logits, {0, 0, 1}), 0);  // once each: 1.5 > 1
  const std::vector<float> negative = {-1.0f, -1.5f, -9.0f, -9.0f};
  EXPECT_EQ(*sampler->Sample(negative, {0}), 1);  // -1 · 2 < -1.5
}

TEST(SamplerTest, RefusesBadParametersNamingTheField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Bad {
    SamplingParams p;
    const char* field;
  };
  auto with = [](auto set) {
    SamplingParams p;
    p.seed = 1;
    set(&p);
    return p;
  };
  const std::vector<Bad> bad = {
      {with([](SamplingParams* p) { p->temperature = -0.5f; }), "temperature:"},
      {with([&](SamplingParams* p) { p->temperature = nan; }), "temperature:"},
      {with([&](SamplingParams* p) { p->temperature = inf; }), "temperature:"},
      {with([](SamplingParams* p) { p->top_p = 0.0f; }), "top_p:"},
      {with([](SamplingParams* p) { p->top_p = 1.5f; }), "top_p:"},
      {with([&](SamplingParams* p) { p->top_p = nan; }), "top_p:"},
      {with([](SamplingParams* p) { p->top_k = -1; }), "top_k:"},
      {with([](SamplingParams* p) { p->repetition_penalty = 0.0f; }), "repetition_penalty:"},
      {with([&](SamplingParams* p) { p->repetition_penalty = nan; }), "repetition_penalty:"},
      {with([](SamplingParams* p) { p->seed = 0; }), "seed:"},
  };
  for (const Bad& b : bad) {
    absl::StatusOr<Sampler> s = Sampler::Create(b.p, 10);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << b.field;
    EXPECT_TRUE(absl::StartsWith(s.status().message(), b.field)) << s.status();
  }
  SamplingParams greedy;
  greedy.temperature = 0;  // seed unused: 0 is fine
  absl::StatusOr<Sampler> s = Sampler::Create(greedy, 10);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->Sample(std::vector<float>(9)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Sampler::Create(greedy, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace anerd::generation
