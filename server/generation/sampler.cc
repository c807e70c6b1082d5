// Sampler: run.c's sampling path, then the top-k and repetition-penalty extensions (sampler.h).
#include "server/generation/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace anerd::generation {
namespace {

absl::Status Invalid(const char* field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// run.c's softmax: max-subtracted expf, a float sum in index order, then division.
void Softmax(float* x, int n) {
  float max_val = x[0];
  for (int i = 1; i < n; ++i) max_val = std::max(max_val, x[i]);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  for (int i = 0; i < n; ++i) x[i] /= sum;
}

// run.c's sample_mult: the first index whose running CDF exceeds the coin; the last on rounding.
int SampleMult(const float* probs, int n, float coin) {
  float cdf = 0.0f;
  for (int i = 0; i < n; ++i) {
    cdf += probs[i];
    if (coin < cdf) return i;
  }
  return n - 1;
}

}  // namespace

uint32_t RandomU32(uint64_t* state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return static_cast<uint32_t>((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

float RandomF32(uint64_t* state) { return (RandomU32(state) >> 8) / 16777216.0f; }

int SampleArgmax(const float* values, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (values[i] > values[best]) best = i;
  }
  return best;
}

double LogProb(absl::Span<const float> logits, int token) {
  double max_val = logits[0];
  for (float v : logits) max_val = std::max(max_val, static_cast<double>(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(v - max_val);
  return logits[token] - max_val - std::log(sum);
}

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!(std::isfinite(p.temperature) && p.temperature >= 0)) {
    return Invalid("temperature",
                   absl::StrCat("must be a finite number >= 0, got ", p.temperature));
  }
  if (!(p.top_p > 0 && p.top_p <= 1)) {
    return Invalid("top_p", absl::StrCat("must be in (0, 1], got ", p.top_p));
  }
  if (p.top_k < 0) return Invalid("top_k", absl::StrCat("must be >= 0, got ", p.top_k));
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0)) {
    return Invalid("repetition_penalty",
                   absl::StrCat("must be a finite number > 0, got ", p.repetition_penalty));
  }
  if (p.temperature > 0 && p.seed == 0) {
    return Invalid("seed", "must be nonzero when temperature > 0 (0 is the RNG's fixed point)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Sampler> Sampler::Create(const SamplingParams& params, int vocab) {
  if (absl::Status s = ValidateSamplingParams(params); !s.ok()) return s;
  if (vocab < 1 || vocab > (1 << 24)) {
    return Invalid("vocab", absl::StrCat("must be in [1, 2^24], got ", vocab));
  }
  return Sampler(params, vocab);
}

Sampler::Sampler(const SamplingParams& params, int vocab)
    : params_(params), vocab_(vocab), state_(params.seed), work_(vocab), cand_(vocab) {}

int Sampler::SampleTopP(int n0, float coin) {
  float cumulative = 0.0f;
  int last = n0 - 1;  // rounding: consider every candidate
  for (int i = 0; i < n0; ++i) {
    cumulative += cand_[i].prob;
    if (cumulative > params_.top_p) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (int i = 0; i <= last; ++i) {
    cdf += cand_[i].prob;
    if (r < cdf) return cand_[i].index;
  }
  return cand_[last].index;
}

absl::StatusOr<int> Sampler::Sample(absl::Span<const float> logits,
                                    absl::Span<const int32_t> history) {
  if (logits.size() != static_cast<size_t>(vocab_)) {
    return Invalid("logits",
                   absl::StrCat("has ", logits.size(), " entries, the vocabulary ", vocab_));
  }
  float* x = work_.data();
  std::copy(logits.begin(), logits.end(), x);
  if (params_.repetition_penalty != 1.0f) {
    const float p = params_.repetition_penalty;
    // An id repeated in the history is penalised once.
    seen_.assign(vocab_, false);
    for (int32_t id : history) {
      if (id < 0 || id >= vocab_ || seen_[id]) continue;
      seen_[id] = true;
      x[id] = x[id] > 0 ? x[id] / p : x[id] * p;
    }
  }
  if (params_.temperature == 0.0f) return SampleArgmax(x, vocab_);
  for (int i = 0; i < vocab_; ++i) x[i] /= params_.temperature;
  const auto descending = [](const Candidate& a, const Candidate& b) {
    return a.prob > b.prob || (a.prob == b.prob && a.index < b.index);
  };
  if (params_.top_k > 0 && params_.top_k < vocab_) {
    const int k = params_.top_k;
    for (int i = 0; i < vocab_; ++i) cand_[i] = {x[i], i};
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), descending);
    for (int i = 0; i < k; ++i) x[i] = cand_[i].prob;  // logits, descending
    Softmax(x, k);
    for (int i = 0; i < k; ++i) cand_[i].prob = x[i];
    const float coin = RandomF32(&state_);
    if (params_.top_p < 1.0f) return SampleTopP(k, coin);
    float cdf = 0.0f;
    for (int i = 0; i < k; ++i) {
      cdf += cand_[i].prob;
      if (coin < cdf) return cand_[i].index;
    }
    return cand_[k - 1].index;
  }
  Softmax(x, vocab_);
  const float coin = RandomF32(&state_);
  if (params_.top_p >= 1.0f || vocab_ == 1) return SampleMult(x, vocab_, coin);
  // run.c's crop: probabilities below (1 - top_p) / (n - 1) cannot be in the nucleus.
  const float cutoff = (1.0f - params_.top_p) / (vocab_ - 1);
  int n0 = 0;
  for (int i = 0; i < vocab_; ++i) {
    if (x[i] >= cutoff) cand_[n0++] = {x[i], i};
  }
  std::sort(cand_.begin(), cand_.begin() + n0, descending);
  return SampleTopP(n0, coin);
}

}  // namespace anerd::generation
