// GenerationJob: prompt checks, the prefill and the token loop (generation_job.h).
#include "server/generation/generation_job.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anerd::generation {
namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double PerSecond(int n, double ms) { return ms > 0 ? n * 1000.0 / ms : 0; }

absl::Status CheckIds(absl::Span<const int32_t> ids, int vocab, const char* field) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: id ", ids[i],
                                                     " outside the vocabulary [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> PromptIds(const tokenizer::Tokenizer* tok,
                                               const GenerationSpec& spec) {
  if (!spec.prompt_tokens.empty()) return spec.prompt_tokens;
  if (tok == nullptr) {
    if (spec.prompt_text.empty()) return absl::InvalidArgumentError("prompt: empty");
    return absl::FailedPreconditionError(
        "tokenizer: the model's tokenizer is unknown; name one (tokenizer_artifact, "
        "tokenizer_path or tokenizer_kind) or give prompt_tokens");
  }
  tokenizer::EncodeOptions options;
  options.add_bos = tok->bos_id() >= 0;
  absl::StatusOr<std::vector<int32_t>> ids = tok->Encode(spec.prompt_text, options);
  if (!ids.ok()) {
    return absl::Status(ids.status().code(), absl::StrCat("prompt: ", ids.status().message()));
  }
  if (ids->empty()) return absl::InvalidArgumentError("prompt: empty");
  return ids;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GenerationJob>> GenerationJob::Create(
    std::unique_ptr<TokenDecoder> decoder, const tokenizer::Tokenizer* tokenizer,
    GenerationSpec spec) {
  const int vocab = decoder->config().vocab;
  const int64_t ctx = decoder->max_context();
  if (spec.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be >= 1, got ", spec.max_tokens));
  }
  ANERD_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, PromptIds(tokenizer, spec));
  ANERD_RETURN_IF_ERROR(CheckIds(prompt, vocab, "prompt_tokens"));
  ANERD_RETURN_IF_ERROR(CheckIds(spec.stop_tokens, vocab, "stop_tokens"));
  int dropped = 0;
  if (static_cast<int64_t>(prompt.size()) > ctx) {
    if (!spec.truncate_prompt) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt: ", prompt.size(), " tokens do not fit the context of ", ctx,
                       " positions (shorten it, raise max_context, or set truncate_prompt)"));
    }
  }
  if (spec.truncate_prompt) {
    const int64_t keep = std::max<int64_t>(1, ctx - spec.max_tokens + 1);
    if (static_cast<int64_t>(prompt.size()) > keep) {
      dropped = static_cast<int>(prompt.size() - keep);
      prompt.erase(prompt.begin(), prompt.begin() + dropped);
    }
  }
  ANERD_ASSIGN_OR_RETURN(Sampler sampler, Sampler::Create(spec.sampling, vocab));
  return std::unique_ptr<GenerationJob>(new GenerationJob(std::move(decoder), tokenizer,
                                                          std::move(spec), std::move(prompt),
                                                          dropped, std::move(sampler)));
}

GenerationJob::GenerationJob(std::unique_ptr<TokenDecoder> decoder,
                             const tokenizer::Tokenizer* tokenizer, GenerationSpec spec,
                             std::vector<int32_t> prompt, int dropped, Sampler sampler)
    : decoder_(std::move(decoder)),
      tokenizer_(tokenizer),
      spec_(std::move(spec)),
      prompt_(std::move(prompt)),
      dropped_(dropped),
      sampler_(std::move(sampler)) {
  const training::ModelConfig& c = decoder_->config();
  if (c.eos_id >= 0) spec_.stop_tokens.push_back(c.eos_id);
  if (tokenizer_ != nullptr && tokenizer_->eos_id() >= 0 && tokenizer_->eos_id() < c.vocab) {
    spec_.stop_tokens.push_back(tokenizer_->eos_id());
  }
  if (tokenizer_ != nullptr) {
    // Primed with the prompt so that the first generated piece renders in its context.
    stream_ = std::make_unique<tokenizer::StreamDecoder>(tokenizer_);
    for (int32_t id : prompt_) {
      if (id < tokenizer_->vocab_size()) (void)stream_->Push(id);
    }
  }
  history_ = prompt_;
}

bool GenerationJob::IsStop(int32_t id) const {
  return std::find(spec_.stop_tokens.begin(), spec_.stop_tokens.end(), id) !=
         spec_.stop_tokens.end();
}

std::string GenerationJob::TextOf(int32_t id) {
  if (stream_ == nullptr || id >= tokenizer_->vocab_size()) return "";
  absl::StatusOr<std::string> text = stream_->Push(id);
  return text.ok() ? *std::move(text) : "";
}

absl::StatusOr<GenerationSummary> GenerationJob::Run(
    const std::function<bool(const TokenEvent&)>& emit) {
  GenerationSummary summary;
  summary.prompt_tokens = static_cast<int>(prompt_.size());
  summary.dropped_prompt_tokens = dropped_;
  summary.seed = spec_.sampling.seed;
  auto t0 = std::chrono::steady_clock::now();
  ANERD_ASSIGN_OR_RETURN(absl::Span<const float> logits, decoder_->Prefill(prompt_));
  summary.prefill_ms = MsSince(t0);
  summary.stop_reason = "max_tokens";
  double step_ms = 0;  // the Step that produced `logits`
  for (int i = 0; i < spec_.max_tokens; ++i) {
    t0 = std::chrono::steady_clock::now();
    ANERD_ASSIGN_OR_RETURN(const int id, sampler_.Sample(logits, history_));
    if (IsStop(id)) {
      summary.stop_reason = "stop_token";
      break;
    }
    TokenEvent event;
    event.id = id;
    event.index = i;
    event.logprob = LogProb(logits, id);
    event.text = TextOf(id);
    event.ms = step_ms + MsSince(t0);
    summary.decode_ms += event.ms;
    summary.text += event.text;
    ++summary.generated_tokens;
    history_.push_back(id);
    if (!emit(event)) {
      summary.stop_reason = "cancelled";
      break;
    }
    if (i + 1 == spec_.max_tokens) break;
    t0 = std::chrono::steady_clock::now();
    if (decoder_->position() >= decoder_->max_context()) {
      if (!spec_.slide_context) {
        summary.stop_reason = "context";
        break;
      }
      const size_t keep = std::max<size_t>(1, static_cast<size_t>(decoder_->max_context() / 2));
      decoder_->Reset();
      ANERD_ASSIGN_OR_RETURN(
          logits,
          decoder_->Prefill(absl::MakeConstSpan(history_).last(std::min(keep, history_.size()))));
      step_ms = MsSince(t0);
      continue;
    }
    ANERD_ASSIGN_OR_RETURN(logits, decoder_->Step(id));
    step_ms = MsSince(t0);
  }
  if (stream_ != nullptr) summary.text_tail = stream_->Finish();
  summary.text += summary.text_tail;
  summary.prefill_tokens_per_s = PerSecond(summary.prompt_tokens, summary.prefill_ms);
  summary.decode_tokens_per_s = PerSecond(summary.generated_tokens, summary.decode_ms);
  return summary;
}

}  // namespace anerd::generation
