#include "server/training/model_export.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/training/hf_format.h"
#include "server/training/model_io.h"

namespace anerd::training {

absl::StatusOr<ExportFormat> ParseExportFormat(absl::string_view name) {
  if (name.empty() || name == "llama2c") return ExportFormat::kLlama2c;
  if (name == "hf") return ExportFormat::kHf;
  if (name == "native") return ExportFormat::kNative;
  return absl::InvalidArgumentError(
      absl::StrCat("format: '", name, "' is not one of llama2c, hf, native"));
}

std::vector<std::string> ExportFileNames(ExportFormat format) {
  switch (format) {
    case ExportFormat::kLlama2c:
      return {"model.bin"};
    case ExportFormat::kHf:
      return {"config.json", "model.safetensors"};
    case ExportFormat::kNative:
      return {"checkpoint.anerd"};
  }
  return {};
}

absl::Status ExportModel(const Checkpoint& model, ExportFormat format, const std::string& dir) {
  ModelConfig config = model.spec.model;
  config.residual_scale = ResidualAlpha(model.spec);  // "deepnet" is part of the function
  const std::string file = dir + "/" + ExportFileNames(format)[0];
  switch (format) {
    case ExportFormat::kLlama2c:
      return ExportLlama2c(file, config, model.params);
    case ExportFormat::kHf:
      return ExportHf(dir, config, model.params);
    case ExportFormat::kNative:
      return WriteCheckpoint(file, model);
  }
  return absl::InvalidArgumentError("unknown export format");
}

}  // namespace anerd::training
