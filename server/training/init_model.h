// `--init FILE` without `--config` (issue 19 item 4): the model's shape comes from the file.
//
// When a TrainSpec has model_from_init set (the request named no model, only an init file),
// ResolveInitModel reads the file's own config (ReadModelFileConfig: the llama2.c or seed header,
// or a Hugging Face config.json) and makes it spec->model; model_overrides ("seq=128", the keys
// of ParseCustomConfig) are applied on top, and any override that changes the architecture (every
// field but seq and the bos/eos ids) is INVALID_ARGUMENT naming the field and both values.
// Thread-safety: pure function over its argument and the filesystem (reads a header only).
#ifndef ANERD_SERVER_TRAINING_INIT_MODEL_H_
#define ANERD_SERVER_TRAINING_INIT_MODEL_H_

#include "absl/status/status.h"
#include "server/training/config.h"

namespace anerd::training {

// No-op unless spec->model_from_init; then fills spec->model as above and clears the flag.
absl::Status ResolveInitModel(TrainSpec* spec);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_INIT_MODEL_H_
