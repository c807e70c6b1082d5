// GenerationJob (server/generation/generation_job.h): prompt checks naming the field, explicit
// truncation, stop tokens, max_tokens, the context end, a stop asked by the sink, and text deltas
// that concatenate to the decoded ids.
#include "server/generation/generation_job.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/generation/decoder.h"
#include "server/training/model.h"

namespace anerd::generation {
namespace {

using ::testing::HasSubstr;

training::ModelConfig SmallConfig() {
  absl::StatusOr<training::ModelConfig> c =
      training::ParseCustomConfig("dim=32,hidden=64,layers=1,heads=2,kv_heads=2,vocab=256,seq=16");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

std::unique_ptr<TokenDecoder> SmallDecoder() {
  const training::ModelConfig c = SmallConfig();
  auto params = std::make_shared<std::vector<float>>(training::ParamLayout(c).total());
  training::InitParams(c, 3, params->data());
  absl::StatusOr<std::unique_ptr<Decoder>> d = Decoder::Create(c, params);
  EXPECT_TRUE(d.ok()) << d.status();
  return *std::move(d);
}

std::unique_ptr<tokenizer::Tokenizer> Bytes() {
  return *tokenizer::LoadTokenizer("byte", "", "byte");
}

GenerationSpec Greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerationSpec spec;
  spec.prompt_tokens = std::move(prompt);
  spec.sampling.temperature = 0;
  spec.max_tokens = max_tokens;
  return spec;
}

struct Outcome {
  std::vector<TokenEvent> tokens;
  GenerationSummary summary;
};

Outcome RunAll(GenerationJob& job, int stop_after = -1) {
  Outcome r;
  absl::StatusOr<GenerationSummary> s = job.Run([&](const TokenEvent& e) {
    r.tokens.push_back(e);
    return stop_after < 0 || static_cast<int>(r.tokens.size()) < stop_after;
  });
  EXPECT_TRUE(s.ok()) << s.status();
  if (s.ok()) r.summary = *s;
  return r;
}

absl::Status CreateError(GenerationSpec spec, const tokenizer::Tokenizer* tok = nullptr) {
  return GenerationJob::Create(SmallDecoder(), tok, std::move(spec)).status();
}

TEST(GenerationJobTest, BadPromptsNameTheField) {
  EXPECT_THAT(CreateError(Greedy({1, 256}, 4)).message(), HasSubstr("prompt_tokens[1]: id 256"));
  EXPECT_THAT(CreateError(Greedy({-3}, 4)).message(), HasSubstr("prompt_tokens[0]"));
  EXPECT_THAT(CreateError(Greedy({}, 4)).message(), HasSubstr("prompt: empty"));
  EXPECT_THAT(CreateError(Greedy(std::vector<int32_t>(17, 1), 4)).message(),
              HasSubstr("prompt: 17 tokens do not fit the context of 16"));
  EXPECT_THAT(CreateError(Greedy({1}, 0)).message(), HasSubstr("max_tokens"));
  GenerationSpec stop = Greedy({1}, 4);
  stop.stop_tokens = {300};
  EXPECT_THAT(CreateError(stop).message(), HasSubstr("stop_tokens[0]"));
  GenerationSpec text;
  text.prompt_text = "hi";
  absl::Status no_tokenizer = CreateError(text);
  EXPECT_EQ(no_tokenizer.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_tokenizer.message(), HasSubstr("tokenizer"));
  GenerationSpec hot = Greedy({1}, 4);
  hot.sampling.temperature = -1;
  EXPECT_THAT(CreateError(hot).message(), HasSubstr("temperature"));
}

TEST(GenerationJobTest, TruncationKeepsTheTailSoThatMaxTokensFit) {
  GenerationSpec spec = Greedy(std::vector<int32_t>(20, 5), 6);
  spec.prompt_tokens.back() = 7;
  spec.truncate_prompt = true;
  absl::StatusOr<std::unique_ptr<GenerationJob>> job =
      GenerationJob::Create(SmallDecoder(), nullptr, spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ((*job)->prompt().size(), 11u);  // 16 - 6 + 1
  EXPECT_EQ((*job)->prompt().back(), 7);
  Outcome r = RunAll(**job);
  EXPECT_EQ(r.summary.dropped_prompt_tokens, 9);
  EXPECT_EQ(r.tokens.size(), 6u);
}

TEST(GenerationJobTest, StopsAtMaxTokensTheContextAStopTokenOrTheSink) {
  Outcome all = RunAll(**GenerationJob::Create(SmallDecoder(), nullptr, Greedy({1, 2}, 8)));
  ASSERT_EQ(all.tokens.size(), 8u);
  EXPECT_EQ(all.summary.stop_reason, "max_tokens");

  Outcome ctx = RunAll(**GenerationJob::Create(SmallDecoder(), nullptr, Greedy({1, 2}, 100)));
  EXPECT_EQ(ctx.tokens.size(), 15u) << "positions 0..15 fed, the 15th generated is not";
  EXPECT_EQ(ctx.summary.stop_reason, "context");

  GenerationSpec slide = Greedy({1, 2}, 40);
  slide.slide_context = true;
  Outcome slid = RunAll(**GenerationJob::Create(SmallDecoder(), nullptr, slide));
  ASSERT_EQ(slid.tokens.size(), 40u) << "a sliding context goes on past 16 positions";
  EXPECT_EQ(slid.summary.stop_reason, "max_tokens");
  for (int i = 0; i < 15; ++i) EXPECT_EQ(slid.tokens[i].id, ctx.tokens[i].id) << i;

  GenerationSpec stop = Greedy({1, 2}, 8);
  stop.stop_tokens = {all.tokens[3].id};
  Outcome stopped = RunAll(**GenerationJob::Create(SmallDecoder(), nullptr, stop));
  EXPECT_EQ(stopped.summary.stop_reason, "stop_token");
  for (const TokenEvent& e : stopped.tokens) EXPECT_NE(e.id, all.tokens[3].id);

  Outcome sink = RunAll(**GenerationJob::Create(SmallDecoder(), nullptr, Greedy({1, 2}, 8)), 2);
  EXPECT_EQ(sink.tokens.size(), 2u);
  EXPECT_EQ(sink.summary.stop_reason, "cancelled");
  EXPECT_EQ(sink.tokens[1].id, all.tokens[1].id);
}

TEST(GenerationJobTest, TextDeltasConcatenateToTheDecodedIds) {
  std::unique_ptr<tokenizer::Tokenizer> bytes = Bytes();
  GenerationSpec spec;
  spec.prompt_text = "ab";
  spec.sampling.temperature = 1;
  spec.sampling.seed = 9;
  spec.max_tokens = 12;
  absl::StatusOr<std::unique_ptr<GenerationJob>> job =
      GenerationJob::Create(SmallDecoder(), bytes.get(), spec);
  ASSERT_TRUE(job.ok()) << job.status();
  Outcome r = RunAll(**job);
  std::vector<int32_t> all = {'a', 'b'};
  std::string deltas;
  for (const TokenEvent& e : r.tokens) {
    all.push_back(e.id);
    deltas += e.text;
    EXPECT_LE(e.logprob, 0);
  }
  EXPECT_EQ(r.summary.text, deltas + r.summary.text_tail);
  EXPECT_EQ("ab" + r.summary.text, *bytes->Decode(all));
  EXPECT_EQ(r.summary.seed, 9u);
}

}  // namespace
}  // namespace anerd::generation
