#include "server/training/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anerd::training {

HeldOut HeldOutFor(const TrainSpec& spec, int64_t data_tokens, int max_sequences) {
  HeldOut h;
  if (spec.val_end > 0) {
    h.separate_file = !spec.val_data_path.empty();
    h.begin = spec.val_begin;
    h.end = spec.val_end;
    h.source = h.separate_file ? "val_data" : "val_split";
    return h;
  }
  const int64_t span = int64_t{max_sequences} * spec.model.seq + 1;
  h.begin = std::max<int64_t>(0, data_tokens - span);
  h.end = data_tokens;
  h.source = "data_tail";
  return h;
}

int64_t EvalWindows(int64_t begin, int64_t end, int seq, int max_sequences) {
  if (end - begin < int64_t{seq} + 1) return 0;
  return std::min<int64_t>(max_sequences, (end - begin - 1) / seq);
}

absl::StatusOr<EvalReport> EvaluateWindows(Model& model, const float* params,
                                           const TokenData& data, int64_t begin, int64_t end,
                                           int max_sequences) {
  const int seq = model.config().seq;
  const int64_t n = EvalWindows(begin, end, seq, max_sequences);
  if (n == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: ", std::max<int64_t>(0, end - begin), " tokens in [", begin, ", ", end,
                     ") is too short for one window of seq + 1 = ", seq + 1, " tokens"));
  }
  const auto start = std::chrono::steady_clock::now();
  PhaseTimes times;
  double sum = 0;
  std::vector<uint32_t> window(seq + 1);
  for (int64_t k = 0; k < n; ++k) {
    data.Copy(begin + k * seq, seq + 1, window.data());
    ANERD_ASSIGN_OR_RETURN(const double loss,
                           model.Loss(params, window.data(), window.data() + 1, &times));
    sum += loss;
  }
  EvalReport r;
  r.loss = sum / static_cast<double>(n);
  r.perplexity = std::exp(r.loss);
  r.sequences = n;
  r.tokens = n * seq;
  r.eval_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace anerd::training
