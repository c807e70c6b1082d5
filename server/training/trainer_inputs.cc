#include "server/training/trainer_inputs.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anerd::training {

absl::StatusOr<TrainerInputs> ReadTrainerInputs(const TrainSpec& spec, bool with_init) {
  ANERD_RETURN_IF_ERROR(ValidateSpec(spec));
  TrainerInputs in;
  if (with_init && !spec.init_model_path.empty()) {
    ANERD_ASSIGN_OR_RETURN(LoadedModel m, LoadModelFile(spec.init_model_path));
    ANERD_RETURN_IF_ERROR(CheckSameArchitecture(m.config, spec.model,
                                                absl::StrCat("init model ", spec.init_model_path),
                                                "the spec's model"));
    in.init = std::move(m);
  }
  ANERD_ASSIGN_OR_RETURN(
      in.data, TokenData::Open(spec.data_path, spec.data_format, spec.model.vocab, spec.model.seq));
  // Held-out tokens at the tail are never trained on (training/validation_split.h).
  if (spec.train_tokens > 0) {
    ANERD_RETURN_IF_ERROR(in.data->KeepFirst(spec.train_tokens, spec.model.seq));
  }
  if (spec.compact_vocab) in.used_ids = in.data->UsedIds();
  if (spec.eval_every > 0 && spec.val_end != 0 && !spec.val_data_path.empty()) {
    ANERD_ASSIGN_OR_RETURN(in.val_data, TokenData::Open(spec.val_data_path, spec.val_data_format,
                                                        spec.model.vocab, spec.model.seq));
  }
  return in;
}

}  // namespace anerd::training
