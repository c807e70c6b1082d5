// Token sampling from logits: llama2.c run.c's sampler reproduced exactly, plus top-k and a
// repetition penalty as documented extensions (issue 20 items 1, 5).
//
// run.c (karpathy/llama2.c, `sample`): temperature 0 is greedy argmax (the first maximum).
// Otherwise the logits are divided by the temperature, softmaxed in float (max-subtracted expf, a
// float sum accumulated in index order), one coin is drawn with RandomF32, and
//   * top_p >= 1: the first index whose running float CDF exceeds the coin (sample_mult);
//   * top_p in (0, 1): candidates with probability >= (1 - top_p) / (n - 1) are sorted by
//     descending probability, the list is cut after the first entry whose running sum exceeds
//     top_p, and the first entry whose running CDF exceeds coin·(that sum) is chosen (sample_topp).
// Ties in the sort keep the lower index first (run.c's qsort leaves their order unspecified).
// Same seed, same logits → same tokens as run.c.
//
// Extensions (off by default, so the defaults are run.c exactly):
//   * repetition_penalty p != 1 (CTRL, Keskar et al. 2019, as Hugging Face's
//     RepetitionPenaltyLogitsProcessor): before anything else, each distinct id of the history
//     has its logit divided by p when positive, multiplied by p otherwise. Applies to greedy too.
//   * top_k k > 0: after the temperature, only the k largest logits (ties: lower index) stay
//     candidates; the softmax runs over them, then top-p (if on) over those k in descending
//     order, then the coin as above. k = 1 is greedy whatever the temperature and coin;
//     k >= vocab is off (run.c's path).
// One coin is drawn per sampled token whenever temperature > 0, so the RNG stream does not depend
// on top-k, top-p or the penalty.
// Thread-safety: a Sampler is used by one thread at a time; the free functions are pure (the RNG
// ones mutate only *state).
#ifndef ANERD_SERVER_GENERATION_SAMPLER_H_
#define ANERD_SERVER_GENERATION_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace anerd::generation {

// run.c's xorshift* generator on a 64-bit state: state ^= state >> 12, ^= state << 25,
// ^= state >> 27, then the high 32 bits of state · 0x2545F4914F6CDD1D.
uint32_t RandomU32(uint64_t* state);
// A float in [0, 1): the top 24 bits of RandomU32 / 2^24.
float RandomF32(uint64_t* state);

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy; must be finite and >= 0
  float top_p = 1.0f;               // (0, 1]; 1 = off (run.c's sample_mult)
  int top_k = 0;                    // 0 = off; >= 0
  float repetition_penalty = 1.0f;  // 1 = off; finite and > 0
  uint64_t seed = 0;  // the RNG state; must be nonzero when temperature > 0 (0 is xorshift's fixed
                      // point; run.c replaces it by the time — callers choose a seed instead)
};

// OK, or INVALID_ARGUMENT naming the field: "temperature: must be a finite number >= 0, got nan",
// "top_p: must be in (0, 1], got 1.5", "top_k: must be >= 0, got -1", "repetition_penalty: ...",
// "seed: ...".
absl::Status ValidateSamplingParams(const SamplingParams& params);

// The index of the first maximum (run.c's sample_argmax). n > 0.
int SampleArgmax(const float* values, int n);

// log p(token) under softmax(logits) (the model's own distribution: temperature 1, before the
// penalty and any filtering), computed in double with the max subtracted; what a streamed token
// reports as its logprob. token must be in [0, logits.size()); -inf for a token of zero mass.
double LogProb(absl::Span<const float> logits, int token);

class Sampler {
 public:
  // Validates `params` (above) and vocab in [1, 2^24]; allocates O(vocab) scratch once.
  static absl::StatusOr<Sampler> Create(const SamplingParams& params, int vocab);

  // The next token for `logits` (vocab entries; not modified) given the ids generated or
  // prompted so far (`history`, for the repetition penalty; ids outside [0, vocab) are ignored).
  // INVALID_ARGUMENT when logits.size() != vocab.
  absl::StatusOr<int> Sample(absl::Span<const float> logits,
                             absl::Span<const int32_t> history = {});

  const SamplingParams& params() const { return params_; }
  uint64_t rng_state() const { return state_; }

 private:
  Sampler(const SamplingParams& params, int vocab);
  int SampleTopP(int n0, float coin);  // over cand_[0, n0) sorted descending

  SamplingParams params_;
  int vocab_;
  uint64_t state_;
  std::vector<float> work_;  // the logits, then probabilities
  struct Candidate {
    float prob;
    int index;
  };
  std::vector<Candidate> cand_;
  std::vector<bool> seen_;  // repetition penalty: ids already penalised this call
};

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_SAMPLER_H_
