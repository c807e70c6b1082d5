#include "server/training/init_model.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/training/model_io.h"

namespace anerd::training {

absl::Status ResolveInitModel(TrainSpec* spec) {
  if (!spec->model_from_init) return absl::OkStatus();
  ANERD_ASSIGN_OR_RETURN(const ModelConfig file, ReadModelFileConfig(spec->init_model_path));
  ModelConfig model = file;
  if (!spec->model_overrides.empty()) {
    // Later keys win in ParseCustomConfig: the file's config, then the client's keys.
    absl::StatusOr<ModelConfig> merged =
        ParseCustomConfig(absl::StrCat(ConfigToString(file), ",", spec->model_overrides));
    if (!merged.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", merged.status().message()));
    }
    ANERD_RETURN_IF_ERROR(CheckSameArchitecture(
        *merged, file, "--config", absl::StrCat("the init model ", spec->init_model_path)));
    model = *merged;
    model.name = file.name;
  }
  spec->model = model;
  spec->model_from_init = false;
  spec->model_overrides.clear();
  return absl::OkStatus();
}

}  // namespace anerd::training
