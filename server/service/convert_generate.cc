// Generate request and event conversions (convert.h).
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/service/convert.h"

namespace anerd::service {
namespace {

// A nonzero seed from the clock (xorshift's state must not be 0).
uint64_t ClockSeed() {
  const uint64_t t =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return t == 0 ? 1 : t;
}

}  // namespace

absl::StatusOr<engine::GenerateCall> FromProto(const v1::GenerateRequest& r) {
  engine::GenerateCall call;
  call.session_id = r.session_id();
  call.weights = r.weights();
  call.model_file = r.model_path();
  call.tokenizer_kind = r.tokenizer_kind();
  call.tokenizer_file = r.tokenizer_path();
  call.backend = r.backend();
  call.max_context = r.max_context();
  generation::GenerationSpec& spec = call.spec;
  spec.prompt_text = r.prompt();
  spec.prompt_tokens.assign(r.prompt_tokens().begin(), r.prompt_tokens().end());
  if (!spec.prompt_text.empty() && !spec.prompt_tokens.empty()) {
    return absl::InvalidArgumentError("prompt: give the text or prompt_tokens, not both");
  }
  spec.truncate_prompt = r.truncate_prompt();
  spec.slide_context = true;  // a full context slides (keeps its last half) rather than stopping
  spec.sampling.temperature = r.has_temperature() ? r.temperature() : 1.0f;
  spec.sampling.top_p = r.has_top_p() ? r.top_p() : 0.9f;
  spec.sampling.top_k = r.top_k();
  spec.sampling.repetition_penalty = r.has_repetition_penalty() ? r.repetition_penalty() : 1.0f;
  spec.sampling.seed = r.has_seed() ? r.seed() : ClockSeed();
  spec.max_tokens = r.max_tokens() == 0 ? kDefaultGenerateTokens : r.max_tokens();
  spec.stop_tokens.assign(r.stop_tokens().begin(), r.stop_tokens().end());
  return call;
}

void ToProto(const generation::TokenEvent& token, v1::GeneratedToken* out) {
  out->set_id(token.id);
  out->set_text(token.text);
  out->set_logprob(token.logprob);
  out->set_ms(token.ms);
  out->set_index(token.index);
}

void ToProto(const engine::GenerateResult& result, v1::GenerateSummary* out) {
  const generation::GenerationSummary& s = result.summary;
  out->set_prompt_tokens(s.prompt_tokens);
  out->set_generated_tokens(s.generated_tokens);
  out->set_stop_reason(s.stop_reason);
  out->set_load_ms(result.load_ms);
  out->set_prefill_ms(s.prefill_ms);
  out->set_decode_ms(s.decode_ms);
  out->set_prefill_tokens_per_s(s.prefill_tokens_per_s);
  out->set_decode_tokens_per_s(s.decode_tokens_per_s);
  out->set_backend(result.backend);
  out->set_text(s.text);
  out->set_dropped_prompt_tokens(s.dropped_prompt_tokens);
  out->set_seed(s.seed);
  out->set_text_tail(s.text_tail);
}

}  // namespace anerd::service
