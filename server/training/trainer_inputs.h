// The files a Trainer reads before it is built, read apart from building it so that the reads can
// run off the device executor ("no blocking I/O on a device executor thread"): the session I/O
// thread reads them (ReadTrainerInputs), the executor then compiles and computes
// (Trainer::Create / Trainer::Resume with the inputs) without touching a file.
//
// Thread-safety: ReadTrainerInputs is a pure function over its argument and the filesystem; the
// inputs are handed from the reading thread to the building one whole (moved), never shared.
#ifndef ANERD_SERVER_TRAINING_TRAINER_INPUTS_H_
#define ANERD_SERVER_TRAINING_TRAINER_INPUTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "server/training/config.h"
#include "server/training/data.h"
#include "server/training/model_io.h"

namespace anerd::training {

struct TrainerInputs {
  // The training tokens, already cut to spec.train_tokens (the held-out tail stays readable
  // through TokenData::file_size()).
  std::unique_ptr<TokenData> data;
  // val_data_path's tokens when the spec evaluates in training (eval_every > 0) on a separate
  // file; else null (Trainer::EvalHeldOut opens it at its first call).
  std::unique_ptr<TokenData> val_data;
  // The --init model (init_model_path) for a new run, its architecture already checked against
  // spec.model; unset for a resume or a model initialised from the seed.
  std::optional<LoadedModel> init;
  // With spec.compact_vocab: the ids present in the training tokens (TokenData::UsedIds).
  std::vector<uint32_t> used_ids;
};

// Reads what `spec` trains on: the data (and held-out data, see above) and, when `with_init` and
// the spec names one, the init model. The same errors as Trainer::Create gives for them, in the
// same order: ValidateSpec's, the init model's (unreadable, or INVALID_ARGUMENT when its shape
// differs from spec.model), the data's (TokenData::Open, train_tokens).
absl::StatusOr<TrainerInputs> ReadTrainerInputs(const TrainSpec& spec, bool with_init);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_TRAINER_INPUTS_H_
