// Held-out data of a training run (issue 19 item 6). A spec names at most one source: the tail
// `val_fraction` of its own data, or a separate file (`val_data_path`). ResolveValidationSplit
// turns it into token ranges from the files' sizes (uint16 tokens: bytes / 2; text: one token per
// byte, the byte-level tokenizer's), before the session starts:
//   val_fraction f: v = floor(n·f) held-out tokens; train_tokens = n − v, [val_begin, val_end) =
//                   [n − v, n) of the data, which the trainer never samples;
//   val_data_path:  [0, m) of that file; the data is trained on whole.
// Both parts must hold a window of seq + 1 tokens (INVALID_ARGUMENT naming the field and the
// counts). The evaluation work reads the ranges from the session's spec.
//
// Thread-safety: a pure function of the spec and the files' sizes.
#ifndef ANERD_SERVER_TRAINING_VALIDATION_SPLIT_H_
#define ANERD_SERVER_TRAINING_VALIDATION_SPLIT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/training/config.h"

namespace anerd::training {

// Tokens in data file `path` read as `format` (training/data.h ResolveDataFormat), from its size.
absl::StatusOr<int64_t> TokenCountOf(const std::string& path, const std::string& format);

// Fills train_tokens, val_begin and val_end of `spec` (all 0 when it names no held-out data).
absl::Status ResolveValidationSplit(TrainSpec* spec);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_VALIDATION_SPLIT_H_
