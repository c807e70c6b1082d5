#include "server/sessions/session_sample.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "server/generation/decoder.h"
#include "server/generation/sampler.h"

namespace anerd::sessions {
namespace {

bool IsTokenData(const training::TrainSpec& spec) {
  return spec.data_format == "tokens" ||
         (spec.data_format.empty() && absl::EndsWith(spec.data_path, ".bin"));
}

}  // namespace

absl::Status CheckSampleSpec(const training::TrainSpec& spec) {
  if (spec.sample_every == 0) return absl::OkStatus();
  if (IsTokenData(spec)) {
    return absl::InvalidArgumentError(
        "sample_every: samples are decoded with the data's tokenizer, and token (.bin) data "
        "carries none; train on text data (byte tokens) to sample");
  }
  // Byte tokens: one per byte of the prompt.
  if (static_cast<int64_t>(spec.sample_prompt.size()) >= spec.model.seq) {
    return absl::InvalidArgumentError(absl::StrCat("sample_prompt: ", spec.sample_prompt.size(),
                                                   " tokens leave no room in the model's "
                                                   "context of ",
                                                   spec.model.seq, " positions"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SampleRecord> GenerateSample(const training::TrainSpec& spec,
                                            std::shared_ptr<const std::vector<float>> params,
                                            int64_t step) {
  const auto start = std::chrono::steady_clock::now();
  ANERD_RETURN_IF_ERROR(CheckSampleSpec(spec));
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                         tokenizer::LoadTokenizer("byte", "", "the data's byte tokens"));
  ANERD_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt, tok->Encode(spec.sample_prompt));
  training::ModelConfig config = spec.model;
  config.residual_scale = training::ResidualAlpha(spec);  // "deepnet" is the model's scale
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<generation::Decoder> decoder,
                         generation::Decoder::Create(config, std::move(params)));
  generation::SamplingParams greedy;
  greedy.temperature = 0;
  ANERD_ASSIGN_OR_RETURN(generation::Sampler sampler,
                         generation::Sampler::Create(greedy, config.vocab));
  ANERD_ASSIGN_OR_RETURN(absl::Span<const float> logits, decoder->Prefill(prompt));
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < spec.sample_tokens) {
    ANERD_ASSIGN_OR_RETURN(const int next, sampler.Sample(logits));
    out.push_back(next);
    if (decoder->position() >= decoder->max_context()) break;
    if (static_cast<int>(out.size()) == spec.sample_tokens) break;
    ANERD_ASSIGN_OR_RETURN(logits, decoder->Step(next));
  }
  SampleRecord r;
  r.step = step;
  r.prompt = spec.sample_prompt;
  ANERD_ASSIGN_OR_RETURN(r.text, tok->Decode(out));
  r.tokens = static_cast<int64_t>(out.size());
  r.sample_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace anerd::sessions
