// The KV-cached decoder against recomputing the whole sequence (issue 20 item 2): each Step's
// logits equal (within 1e-5) those of a fresh Prefill of every token so far, and greedy picks the
// same tokens, for a llama2.c-shaped and a Qwen3-shaped config (GQA, head_dim != dim/heads,
// rotate-half RoPE with theta 1e6, QK-norm, untied lm_head, residual scale); a prompt prefilled in
// chunks equals one prefill; and the bounds and bad input of decoder.h.
#include "server/generation/decoder.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/generation/parallel_rows.h"
#include "server/generation/sampler.h"
#include "tests/generation/generation_test_util.h"

namespace anerd::generation {
namespace {

using testing::RandomParams;
using training::ModelConfig;

constexpr char kLlama[] = "dim=64,hidden=96,layers=2,heads=4,kv_heads=2,vocab=96,seq=64";
constexpr char kQwen3[] =
    "dim=48,hidden=80,layers=3,heads=4,kv_heads=2,head_dim=16,vocab=80,seq=64,rope_style=half,"
    "rope_theta=1000000,qk_norm=1,norm_eps=1e-6,tied=0,residual_scale=0.7";

struct Fixture {
  ModelConfig config;
  std::shared_ptr<const std::vector<float>> params;
};

Fixture Make(const char* kv, uint64_t seed = 7) {
  absl::StatusOr<ModelConfig> c = training::ParseCustomConfig(kv);
  EXPECT_TRUE(c.ok()) << c.status();
  return {*c, std::make_shared<const std::vector<float>>(RandomParams(*c, seed))};
}

std::unique_ptr<Decoder> MakeDecoder(const Fixture& f, DecoderOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Decoder>> d = Decoder::Create(f.config, f.params, options);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

std::vector<float> Copy(absl::StatusOr<absl::Span<const float>> logits) {
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? std::vector<float>(logits->begin(), logits->end()) : std::vector<float>();
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  return m;
}

class KvCacheTest : public ::testing::TestWithParam<const char*> {};

TEST_P(KvCacheTest, CachedStepsEqualRecomputingTheSequence) {
  const Fixture f = Make(GetParam());
  std::unique_ptr<Decoder> cached = MakeDecoder(f), full = MakeDecoder(f);
  ASSERT_TRUE(cached && full);
  std::vector<int32_t> tokens = {1, 17, 5, 42, 9};
  std::vector<float> logits = Copy(cached->Prefill(tokens));
  double worst = 0, spread = 0;
  for (int step = 0; step < 50; ++step) {
    full->Reset();
    const std::vector<float> want = Copy(full->Prefill(tokens));
    worst = std::max(worst, MaxAbsDiff(logits, want));
    ASSERT_LE(MaxAbsDiff(logits, want), 1e-5) << "step " << step;
    const int next = SampleArgmax(logits.data(), static_cast<int>(logits.size()));
    ASSERT_EQ(next, SampleArgmax(want.data(), static_cast<int>(want.size()))) << "step " << step;
    spread = std::max(spread, static_cast<double>(*std::max_element(logits.begin(), logits.end()) -
                                                  *std::min_element(logits.begin(), logits.end())));
    tokens.push_back(next);
    logits = Copy(cached->Step(next));
  }
  EXPECT_EQ(cached->position(), static_cast<int64_t>(tokens.size()));
  EXPECT_GT(spread, 1.0) << "logits too flat to tell positions apart";
  RecordProperty("max_abs_diff", std::to_string(worst));
}

TEST_P(KvCacheTest, ChunkedPrefillEqualsOnePrefill) {
  const Fixture f = Make(GetParam());
  std::unique_ptr<Decoder> one = MakeDecoder(f), chunked = MakeDecoder(f);
  ASSERT_TRUE(one && chunked);
  const std::vector<int32_t> tokens = {3, 8, 13, 21, 34, 55, 2, 7, 11, 0, 4};
  const std::vector<float> want = Copy(one->Prefill(tokens));
  ASSERT_TRUE(chunked->Prefill(absl::MakeConstSpan(tokens).subspan(0, 4)).ok());
  ASSERT_TRUE(chunked->Prefill(absl::MakeConstSpan(tokens).subspan(4, 1)).ok());
  EXPECT_LE(MaxAbsDiff(Copy(chunked->Prefill(absl::MakeConstSpan(tokens).subspan(5))), want), 1e-5);
}

// A prompt longer than kPrefillChunk runs in chunks; the result equals one token at a time.
TEST_P(KvCacheTest, LongPrefillEqualsSteps) {
  const Fixture f = Make(GetParam());
  DecoderOptions o;
  o.max_context = 2 * kPrefillChunk + 40;  // an explicit limit past the model's seq
  std::unique_ptr<Decoder> one = MakeDecoder(f, o), steps = MakeDecoder(f, o);
  ASSERT_TRUE(one && steps);
  std::vector<int32_t> tokens(2 * kPrefillChunk + 30);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % 61);
  const std::vector<float> want = Copy(one->Prefill(tokens));
  std::vector<float> got;
  for (int32_t t : tokens) got = Copy(steps->Step(t));
  EXPECT_LE(MaxAbsDiff(got, want), 1e-5);
  EXPECT_EQ(one->position(), steps->position());
  // And the caches agree: the next step matches too.
  EXPECT_LE(MaxAbsDiff(Copy(one->Step(3)), Copy(steps->Step(3))), 1e-5);
}

// Every position matters: a different early token changes the last logits.
TEST_P(KvCacheTest, EarlierTokensChangeTheLogits) {
  const Fixture f = Make(GetParam());
  std::unique_ptr<Decoder> a = MakeDecoder(f), b = MakeDecoder(f);
  ASSERT_TRUE(a && b);
  const std::vector<float> la = Copy(a->Prefill({1, 2, 3, 4, 5, 6}));
  const std::vector<float> lb = Copy(b->Prefill({9, 2, 3, 4, 5, 6}));
  EXPECT_GT(MaxAbsDiff(la, lb), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Configs, KvCacheTest, ::testing::Values(kLlama, kQwen3),
                         [](const auto& info) { return info.index == 0 ? "Llama" : "Qwen3"; });

// Large enough that the row pool splits every product (rows >= 2 · grain) and, past 64
// positions, the attention heads: the logits must not depend on how many threads ran them.
TEST(DecoderThreadsTest, SameLogitsOnOneOrTwoThreads) {
  const Fixture f =
      Make("dim=256,hidden=512,layers=2,heads=4,kv_heads=2,vocab=1024,seq=160", /*seed=*/3);
  std::vector<std::vector<float>> runs[2];
  for (int threads : {1, 2}) {
    const int previous = SetRowThreads(threads);
    std::unique_ptr<Decoder> d = MakeDecoder(f);
    ASSERT_NE(d, nullptr);
    std::vector<float> logits = Copy(d->Prefill(std::vector<int32_t>{1, 9, 400, 77, 3}));
    for (int i = 0; i < 120 && !logits.empty(); ++i) {
      runs[threads - 1].push_back(logits);
      logits = Copy(d->Step(SampleArgmax(logits.data(), static_cast<int>(logits.size()))));
    }
    SetRowThreads(previous);
  }
  ASSERT_EQ(runs[0].size(), 120u);
  for (size_t i = 0; i < runs[0].size(); ++i) ASSERT_EQ(runs[0][i], runs[1][i]) << "step " << i;
}

TEST(DecoderBoundsTest, RefusesWrongParameterCounts) {
  const Fixture f = Make(kLlama);
  auto short_params = std::make_shared<const std::vector<float>>(f.params->size() - 1);
  absl::StatusOr<std::unique_ptr<Decoder>> d = Decoder::Create(f.config, short_params);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(d.status().message(), "params:")) << d.status();
  EXPECT_EQ(Decoder::Create(f.config, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  ModelConfig bad = f.config;
  bad.kv_heads = 3;  // heads not divisible
  EXPECT_EQ(Decoder::Create(bad, f.params).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DecoderBoundsTest, BoundsTheContextBeforeAllocating) {
  const Fixture f = Make(kLlama);
  for (int64_t ctx : {int64_t{-1}, kMaxDecoderContext + 1}) {
    DecoderOptions o;
    o.max_context = ctx;
    absl::StatusOr<std::unique_ptr<Decoder>> d = Decoder::Create(f.config, f.params, o);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << ctx;
    EXPECT_TRUE(absl::StartsWith(d.status().message(), "max_context:")) << d.status();
  }
  DecoderOptions small;
  small.max_cache_bytes = 1000;  // the seq-64 cache needs 2·2·32·64·4 bytes
  absl::StatusOr<std::unique_ptr<Decoder>> d = Decoder::Create(f.config, f.params, small);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted) << d.status();
  std::unique_ptr<Decoder> def = MakeDecoder(f);
  ASSERT_TRUE(def);
  EXPECT_EQ(def->max_context(), f.config.seq);
  EXPECT_EQ(def->cache_bytes(), 2 * 2 * 32 * 64 * 4);
  // The budget counts the cache and the RoPE tables (2·64·16·4 bytes), exactly.
  DecoderOptions exact;
  exact.max_cache_bytes = 2 * 2 * 32 * 64 * 4 + 2 * 64 * 16 * 4;
  EXPECT_TRUE(Decoder::Create(f.config, f.params, exact).ok());
  --exact.max_cache_bytes;
  EXPECT_EQ(Decoder::Create(f.config, f.params, exact).status().code(),
            absl::StatusCode::kResourceExhausted);
  DecoderOptions longer;
  longer.max_context = 80;  // an explicit limit past the model's seq
  std::unique_ptr<Decoder> l = MakeDecoder(f, longer);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->Prefill(std::vector<int32_t>(70, 3)).ok());
  EXPECT_EQ(l->position(), 70);
}

TEST(DecoderBoundsTest, BadTokensAndOverflowLeaveTheStateUnchanged) {
  const Fixture f = Make(kLlama);
  DecoderOptions o;
  o.max_context = 8;
  std::unique_ptr<Decoder> d = MakeDecoder(f, o), fresh = MakeDecoder(f, o);
  ASSERT_TRUE(d && fresh);
  EXPECT_EQ(d->Prefill({}).status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = d->Prefill({1, f.config.vocab}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(s.message(), "tokens[1]:")) << s;
  EXPECT_EQ(d->Step(-1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->position(), 0);
  ASSERT_TRUE(d->Prefill({1, 2, 3, 4, 5, 6}).ok());
  s = d->Prefill({7, 8, 9}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(absl::StartsWith(s.message(), "context:")) << s;
  EXPECT_EQ(d->position(), 6);
  const std::vector<float> got = Copy(d->Step(7));
  EXPECT_LE(MaxAbsDiff(got, Copy(fresh->Prefill({1, 2, 3, 4, 5, 6, 7}))), 1e-5);
  ASSERT_TRUE(d->Step(8).ok());
  EXPECT_EQ(d->Step(9).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace anerd::generation
