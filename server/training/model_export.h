// Writing a trained model out in the formats `anectl train export --format` offers (issue 19
// item 5): llama2c (the default, as before: one llama2.c model file), hf (config.json +
// model.safetensors, hf_format.h) and native (anerd's checkpoint with optimizer state,
// model_io.h). Each writes into an existing directory; the files it creates are listed by
// ExportFileNames. llama2c refuses what the format cannot hold (model_io.h CheckLlama2cCanHold).
// Thread-safety: pure functions over their arguments and the filesystem.
#ifndef ANERD_SERVER_TRAINING_MODEL_EXPORT_H_
#define ANERD_SERVER_TRAINING_MODEL_EXPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/training/config.h"
#include "server/training/model_io.h"

namespace anerd::training {

enum class ExportFormat { kLlama2c, kHf, kNative };

// "" and "llama2c" → kLlama2c, "hf", "native"; INVALID_ARGUMENT "format: ..." otherwise.
absl::StatusOr<ExportFormat> ParseExportFormat(absl::string_view name);
// The files an export in `format` writes, in the order they are streamed.
std::vector<std::string> ExportFileNames(ExportFormat format);

// Writes `model` (a trainer's weights as Trainer::CopyCheckpoint copies them, or a checkpoint as
// ReadCheckpoint reads it; kNative needs the Adam moments) into `dir` (which must exist) in
// `format`. Blocking file I/O: never call it on a device executor.
absl::Status ExportModel(const Checkpoint& model, ExportFormat format, const std::string& dir);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_MODEL_EXPORT_H_
