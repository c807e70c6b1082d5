// Model files and checkpoints (docs/ANE_NOTES.md §5.8, §5.9).
//
// * llama2.c model files (stories15M/42M/110M.bin): 7 int32 header {dim, hidden, layers, heads,
//   kv_heads, vocab (negative = untied classifier), seq}, then float32 embed [V][D], rms_att
//   [L][D], wq [L][QD][D], wk, wv [L][KVD][D], wo [L][D][QD], rms_ffn [L][D], w1 [L][H][D], w2
//   [L][D][H], w3 [L][H][D], rms_final [D], optionally the legacy freq_cis_real/imag [seq][HD/2]
//   each, optionally wcls [V][D]. The header is validated against the file size before anything is
//   allocated; an untied classifier (negative vocab_size) loads as tied_embeddings = false, its
//   wcls after the freq_cis tables. Export writes the legacy freq_cis tables (RoPE θ 10000) so
//   every llama2.c reader accepts the file, then wcls when untied.
// * The seed's dynamic checkpoint (version 4): 96-byte header (magic 0x424C5A54), then per layer
//   Wq, Wk, Wv, Wo, W1, W2, W3, rms_att, rms_ffn followed by that layer's Adam (m, v) pairs in the
//   same order, then rms_final (+m, v) and embed (+m, v). Imported weights and Adam moments; the
//   exact file size is checked first.
// * Our checkpoint: "ANERDCKP", uint32 version 1, uint32 section count, then sections {char tag[8],
//   uint64 length, uint32 crc32 (IEEE), uint32 0, payload}: SPEC (TrainSpec text), STATE (fixed
//   little-endian fields), PARAMS, ADAM_M, ADAM_V (float32). The SPEC's `model=` line is
//   ConfigToString: the architecture fields (rope_style, rope_theta, qk_norm, norm_eps,
//   residual_scale, tied, bos/eos) appear only when not default, so checkpoints of default
//   configs are byte-identical to those written before the fields existed and old ones read as
//   the defaults; a binary that predates a field refuses a SPEC naming it (unknown key) instead
//   of silently training another architecture. Written to a temporary file, fsynced,
//   renamed over the destination, directory fsynced. Every CRC and size is verified on load.
// Thread-safety: pure functions over their arguments and the filesystem.
#ifndef ANERD_SERVER_TRAINING_MODEL_IO_H_
#define ANERD_SERVER_TRAINING_MODEL_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/training/config.h"

namespace anerd::training {

struct LoadedModel {
  ModelConfig config;
  std::vector<float> params;          // ParamLayout order (model.h)
  std::vector<float> adam_m, adam_v;  // empty unless the file carries optimizer state
  int64_t adam_t = 0;
};

// Recognises the file: a Hugging Face checkpoint by its path (config.json, *.safetensors,
// *.safetensors.index.json: the directory's checkpoint, hf_format.h), else by content our
// checkpoint ("ANERDCKP": its SPEC's model config, with every architecture field, weights and Adam
// state), the seed's v4 checkpoint (magic) or a llama2.c model (both: the default architecture
// fields). INVALID_ARGUMENT (DATA_LOSS for a damaged checkpoint) with a clear message for
// malformed, truncated or inconsistent files. Callers compare the config with the one they expect
// (CheckSameArchitecture, config.h).
absl::StatusOr<LoadedModel> LoadModelFile(const std::string& path);
// The model config such a file declares, reading only its header (or config.json): what `--init`
// without `--config` trains. The same errors as LoadModelFile for the header.
absl::StatusOr<ModelConfig> ReadModelFileConfig(const std::string& path);
absl::StatusOr<LoadedModel> LoadLlama2c(const std::string& path);
absl::StatusOr<LoadedModel> LoadSeedV4(const std::string& path);
// OK when a llama2.c file can describe `config` exactly; else INVALID_ARGUMENT naming what it
// cannot hold (rope_style half, rope_theta ≠ 1e4, qk_norm, norm_eps ≠ 1e-5, residual_scale ≠ 1,
// head_dim ≠ dim/heads); an untied lm_head is written as llama2.c's wcls.
absl::Status CheckLlama2cCanHold(const ModelConfig& config);
// Writes a llama2.c model file (freq_cis included, then wcls when untied), atomically; refuses
// configs CheckLlama2cCanHold refuses.
absl::Status ExportLlama2c(const std::string& path, const ModelConfig& config,
                           const std::vector<float>& params);

struct TrainState {
  int64_t step = 0;  // optimizer steps completed
  int64_t total_steps = 0;
  int64_t adam_t = 0;      // AdamW updates applied (skipped steps do not count)
  double loss_scale = 1;   // current scale
  int64_t good_steps = 0;  // finite steps since the last scale change (dynamic scaling)
  int64_t micro_step = 0;  // data cursor: micro-steps consumed
  uint64_t rng_seed = 0;   // sampling seed (random sampling is a function of seed and cursor)
  double last_loss = 0;
  int64_t skipped_steps = 0;
};

struct Checkpoint {
  TrainSpec spec;
  TrainState state;
  std::vector<float> params, adam_m, adam_v;
};

// What a checkpoint holds, borrowed from its owner (the trainer's live arrays: no copy of the
// parameters and moments, which for stories110m would be 1.3 GB more at every checkpoint). The
// pointed-to data must not change while WriteCheckpoint runs.
struct CheckpointView {
  const TrainSpec* spec = nullptr;
  const TrainState* state = nullptr;
  absl::Span<const float> params, adam_m, adam_v;
};

absl::Status WriteCheckpoint(const std::string& path, const CheckpointView& ckpt);
absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& ckpt);
// NOT_FOUND, or DATA_LOSS for a bad magic/version/CRC/size, naming the section.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

// CRC-32 (IEEE 802.3, reflected, as zlib), continuing from `crc`.
uint32_t Crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_MODEL_IO_H_
