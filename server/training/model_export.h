// Writing a trained model out in the formats `anectl train export --format` offers (issue 19
// item 5): llama2c (the default, as before: one llama2.c model file), hf (config.json +
// model.safetensors, hf_format.h) and native (anerd's checkpoint with optimizer state,
// model_io.h). Each writes into an existing directory; the files it creates are listed by
// ExportFileNames.
// Thread-safety: pure functions over their arguments and the filesystem.
#ifndef ANERD_SERVER_TRAINING_MODEL_EXPORT_H_
#define ANERD_SERVER_TRAINING_MODEL_EXPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/training/config.h"

namespace anerd::training {

class Trainer;

enum class ExportFormat { kLlama2c, kHf, kNative };

// "" and "llama2c" → kLlama2c, "hf", "native"; INVALID_ARGUMENT "format: ..." otherwise.
absl::StatusOr<ExportFormat> ParseExportFormat(absl::string_view name);
// The files an export in `format` writes, in the order they are streamed.
std::vector<std::string> ExportFileNames(ExportFormat format);

// OK when a llama2.c file can hold `config` exactly; otherwise INVALID_ARGUMENT naming the
// field and why the format cannot (its header has no head_dim, no QK-norm weights, interleaved
// RoPE with theta 10000 and RMSNorm eps 1e-5 are implied, no residual scale).
absl::Status CheckLlama2cExportable(const ModelConfig& config);

// Writes the trainer's current model into `dir` (which must exist) in `format`.
absl::Status ExportTrainer(const Trainer& trainer, ExportFormat format, const std::string& dir);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_MODEL_EXPORT_H_
