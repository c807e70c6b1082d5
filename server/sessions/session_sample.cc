#include "server/sessions/session_sample.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/utf8.h"
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
  // Byte tokens (common/tokenizer's "byte" kind): one id per byte of the prompt.
  std::vector<int32_t> prompt;
  for (char c : spec.sample_prompt) prompt.push_back(static_cast<unsigned char>(c));
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
  // Decoding byte tokens is their bytes made valid UTF-8 (what the byte tokenizer's Decode
  // gives; the tokenizer library itself is not linked into the daemon, see CMakeLists.txt).
  std::string bytes;
  for (int32_t id : out) bytes.push_back(static_cast<char>(id));
  r.text = tokenizer::SanitizeUtf8(bytes);
  r.tokens = static_cast<int64_t>(out.size());
  r.sample_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace anerd::sessions
