#include "server/training/model_export.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/training/hf_format.h"
#include "server/training/model_io.h"
#include "server/training/trainer.h"

namespace anerd::training {
namespace {

absl::Status Cannot(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("llama2c export: ", field, ": ", why, " (use --format hf or native)"));
}

}  // namespace

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

absl::Status CheckLlama2cExportable(const ModelConfig& c) {
  if (int64_t{c.heads} * c.head_dim != c.dim) {
    return Cannot("head_dim", absl::StrCat(c.head_dim, " is not dim/heads = ", c.dim, "/", c.heads,
                                           "; the llama2.c header has no head_dim"));
  }
  if (c.qk_norm) return Cannot("qk_norm", "llama2.c files have no QK-norm weights");
  if (c.rope_style != ModelConfig::RopeStyle::kInterleaved) {
    return Cannot("rope_style", "llama2.c readers pair RoPE dimensions interleaved, not half");
  }
  if (c.rope_theta != 10000.0) {
    return Cannot("rope_theta", absl::StrCat(c.rope_theta, "; llama2.c readers use 10000"));
  }
  if (c.norm_eps != 1e-5) {
    return Cannot("norm_eps", absl::StrCat(c.norm_eps, "; llama2.c readers use 1e-5"));
  }
  if (c.residual_scale != 1.0) {
    return Cannot("residual_scale", absl::StrCat(c.residual_scale, "; llama2.c has none"));
  }
  return absl::OkStatus();
}

absl::Status ExportTrainer(const Trainer& trainer, ExportFormat format, const std::string& dir) {
  ModelConfig config = trainer.spec().model;
  config.residual_scale = ResidualAlpha(trainer.spec());  // "deepnet" is part of the function
  const std::string file = dir + "/" + ExportFileNames(format)[0];
  switch (format) {
    case ExportFormat::kLlama2c:
      return ExportLlama2c(file, config, trainer.params());
    case ExportFormat::kHf:
      return ExportHf(dir, config, trainer.params());
    case ExportFormat::kNative:
      return trainer.SaveCheckpoint(file);
  }
  return absl::InvalidArgumentError("unknown export format");
}

}  // namespace anerd::training
