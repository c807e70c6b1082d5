// Held-out loss (issue 20 item 4): the mean cross-entropy of a model on a bounded number of
// fixed windows of token data, with the training engine's forward pass only (Model::Loss: no
// gradient, no parameter or optimizer change). Used by sessions every `eval_every` steps and by
// the Evaluate RPC.
//
// Windows: over the token range [begin, end) the k-th window has inputs tokens[p, p + S) and
// targets tokens[p + 1, p + S + 1) with p = begin + k·S, for k < min(max_sequences,
// floor((end − begin − 1) / S)) — the same windows at every evaluation, so losses of successive
// evaluations compare weights, not data. The loss is the mean over windows of each window's mean
// over its S positions (all windows have S positions, so it is the mean over every token);
// perplexity = exp(loss).
//
// Held-out data of a spec (HeldOutFor): the separate file (`val_data`), the held-out tail of the
// data (`val_split`, TrainSpec::val_fraction), or without either the last windows of the training
// data itself (`data_tail`: tokens that are also trained on, named so in every event).
// Thread-safety: pure functions; the Model is used by the calling thread only.
#ifndef ANERD_SERVER_TRAINING_EVALUATE_H_
#define ANERD_SERVER_TRAINING_EVALUATE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/training/config.h"
#include "server/training/data.h"
#include "server/training/model.h"

namespace anerd::training {

struct EvalReport {
  double loss = 0;        // mean cross-entropy, nats per token
  double perplexity = 0;  // exp(loss)
  int64_t sequences = 0;  // windows evaluated
  int64_t tokens = 0;     // target tokens evaluated (sequences · seq)
  std::string source;     // "val_data" | "val_split" | "data_tail" | "data" (a whole file)
  double eval_ms = 0;     // wall time of the forward passes
};

struct HeldOut {
  bool separate_file = false;  // the tokens are val_data_path's, not data_path's
  int64_t begin = 0, end = 0;  // token range in that file
  std::string source;          // as EvalReport::source
};

// The held-out range of `spec` (ResolveValidationSplit must have run); `data_tokens` is the size
// of the training data in tokens, used for the data_tail case (the last max_sequences windows).
HeldOut HeldOutFor(const TrainSpec& spec, int64_t data_tokens, int max_sequences);

// Windows of [begin, end) evaluated (see the file comment): 0 when not even one fits.
int64_t EvalWindows(int64_t begin, int64_t end, int seq, int max_sequences);

// Mean loss of `params` (staged into `model` already: Model::StageWeights) on the windows of
// data's tokens [begin, end) (end <= data.file_size()). INVALID_ARGUMENT "data: N tokens in [begin, end) is too short for one
// window of seq + 1 = S" when no window fits. Errors of the forward pass as they come.
absl::StatusOr<EvalReport> EvaluateWindows(Model& model, const float* params,
                                           const TokenData& data, int64_t begin, int64_t end,
                                           int max_sequences);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_EVALUATE_H_
