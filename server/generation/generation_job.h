// GenerationJob: one text generation over a TokenDecoder (issue 20 item 1), with no threads and no
// RPC: the prompt (text through a tokenizer, or ids), run.c's sampler, stop tokens and limits, and
// the per-token events and summary that the Generate RPC streams.
//
// Prompt: text is encoded with the tokenizer (its bos first when it has one, as run.c); ids are
// taken as they are. Every prompt id must lie in the model's vocabulary; a prompt longer than the
// decoder's context is INVALID_ARGUMENT unless truncate_prompt drops its first tokens (so that
// the rest and max_tokens fit, at least one token kept).
// Run: prefill the prompt, then per token: sample from the logits (run.c's Sampler), stop on a
// stop token (not streamed) or max_tokens, stream the token (its text delta from a
// tokenizer::StreamDecoder primed with the prompt, so the deltas are whole UTF-8 and concatenate,
// with the summary's text_tail, to the decoded ids), feed it back. A full context stops it, or
// with slide_context the decoder restarts on the last half of the ids so far (the slide's prefill
// counts in the next token's time).
// Timing: prefill_ms is the prompt's Prefill; a token's ms is its sampling plus the Step that
// produced its logits (none for the first); decode_ms their sum.
// Thread-safety: one thread at a time; the tokenizer must outlive the job and is only read.
#ifndef ANERD_SERVER_GENERATION_GENERATION_JOB_H_
#define ANERD_SERVER_GENERATION_GENERATION_JOB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "server/generation/sampler.h"
#include "server/generation/token_decoder.h"

namespace anerd::generation {

struct GenerationSpec {
  std::string prompt_text;  // used when prompt_tokens is empty
  std::vector<int32_t> prompt_tokens;
  bool truncate_prompt = false;
  // When the context is full: false stops ("context"); true keeps its last half (re-running
  // those positions) and goes on.
  bool slide_context = false;
  SamplingParams sampling;
  int max_tokens = 128;              // >= 1
  std::vector<int32_t> stop_tokens;  // plus the model's and the tokenizer's eos
};

struct TokenEvent {
  int32_t id = 0;
  std::string text;    // whole UTF-8 (may be empty)
  double logprob = 0;  // LogProb under the model's own distribution
  double ms = 0;
  int index = 0;
};

struct GenerationSummary {
  int prompt_tokens = 0;  // after truncation
  int dropped_prompt_tokens = 0;
  int generated_tokens = 0;
  std::string stop_reason;  // "max_tokens" | "stop_token" | "context" | "cancelled"
  double prefill_ms = 0, decode_ms = 0;
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
  std::string text;       // every delta concatenated, then text_tail
  std::string text_tail;  // what the stream decoder still held at the end (normally empty)
  uint64_t seed = 0;
};

class GenerationJob {
 public:
  // `tokenizer` may be null (then prompt_text must be empty, FAILED_PRECONDITION "tokenizer: ..."
  // otherwise, and tokens stream without text). INVALID_ARGUMENT naming the field:
  // "prompt: empty", "prompt_tokens[i]: id X outside the vocabulary [0, V)", "prompt: N tokens
  // do not fit the context of C positions", "stop_tokens[i]: ...", "max_tokens: ...", and the
  // sampler's (ValidateSamplingParams).
  static absl::StatusOr<std::unique_ptr<GenerationJob>> Create(
      std::unique_ptr<TokenDecoder> decoder, const tokenizer::Tokenizer* tokenizer,
      GenerationSpec spec);

  // Runs to the end. `emit` receives each token and returns false to stop (the summary then
  // says "cancelled"). Decoder errors are returned as they are.
  absl::StatusOr<GenerationSummary> Run(const std::function<bool(const TokenEvent&)>& emit);

  const std::vector<int32_t>& prompt() const { return prompt_; }

 private:
  GenerationJob(std::unique_ptr<TokenDecoder> decoder, const tokenizer::Tokenizer* tokenizer,
                GenerationSpec spec, std::vector<int32_t> prompt, int dropped, Sampler sampler);
  bool IsStop(int32_t id) const;
  // The text delta of `id` (empty without a tokenizer).
  std::string TextOf(int32_t id);

  std::unique_ptr<TokenDecoder> decoder_;
  const tokenizer::Tokenizer* tokenizer_;
  GenerationSpec spec_;
  std::vector<int32_t> prompt_;
  int dropped_;
  Sampler sampler_;
  std::unique_ptr<tokenizer::StreamDecoder> stream_;
  std::vector<int32_t> history_;
};

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_GENERATION_JOB_H_
