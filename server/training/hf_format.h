// Hugging Face checkpoints (issue 19 items 4, 5): `config.json` + `model.safetensors` (or a
// `model.safetensors.index.json` and its shards) for LlamaForCausalLM and Qwen3ForCausalLM.
//
// config.json → ModelConfig: hidden_size → dim, intermediate_size → hidden, num_hidden_layers →
// layers, num_attention_heads → heads, num_key_value_heads → kv_heads (default heads), head_dim
// (default hidden_size / heads), vocab_size → vocab, rope_theta (default 10000), rms_norm_eps →
// norm_eps (default 1e-6), tie_word_embeddings → tied_embeddings (default false, as transformers),
// bos/eos_token_id (an eos list keeps its first id), Qwen3 → qk_norm. seq (a training length, not
// a model property) is min(max_position_embeddings, kHfDefaultSeq). Refused with INVALID_ARGUMENT
// naming config.json and the field: a missing or non-integer size, sizes outside ValidateConfig's
// ranges, another architecture, hidden_act other than silu, attention/MLP biases, rope_scaling.
//
// RoPE pairing: transformers' Llama and Qwen3 rotate (i, i + head_dim/2) ("rotate_half"). Import
// permutes the rows of q_proj and k_proj (and the q_norm/k_norm weights) within each head into the
// interleaved pairing (2i, 2i+1) — exactly the inverse of transformers' convert_llama_weights
// permute — so the imported model is rope_style=interleaved and computes the same function; it
// then also exports to llama2.c. Export inverts the permutation for an interleaved model and
// writes a rope_style=half model's rows as they are. The permutation moves floats, so import →
// export → import is bit-identical.
//
// Tensors (fp32, fp16 or bf16 in the file; fp32 in anerd): model.embed_tokens.weight → embed,
// model.layers.N.self_attn.{q,k,v,o}_proj.weight → wq, wk, wv, wo, mlp.{gate,up,down}_proj.weight
// → w1, w3, w2, input_layernorm / post_attention_layernorm → rms_att / rms_ffn,
// self_attn.{q,k}_norm.weight → q_norm / k_norm (Qwen3), model.norm.weight → rms_final,
// lm_head.weight → lm_head (untied; a tied checkpoint may omit it). A missing tensor, a shape other
// than the config's, or an unexpected tensor is INVALID_ARGUMENT naming it.
// Thread-safety: pure functions over their arguments and the filesystem.
#ifndef ANERD_SERVER_TRAINING_HF_FORMAT_H_
#define ANERD_SERVER_TRAINING_HF_FORMAT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/training/config.h"
#include "server/training/model_io.h"
#include "server/training/safetensors.h"

namespace anerd::training {

inline constexpr int kHfDefaultSeq = 256;
inline constexpr int64_t kMaxHfConfigBytes = int64_t{1} << 20;

// Parses config.json text; `file` names it in errors.
absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json, absl::string_view file);
// Reads and parses `dir`/config.json.
absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& dir);

// True for a path naming a Hugging Face checkpoint: its directory's config.json, or a
// *.safetensors / *.safetensors.index.json file (whose directory holds config.json).
bool IsHfCheckpointPath(absl::string_view path);
// The checkpoint directory of such a path.
std::string HfCheckpointDir(absl::string_view path);

// Loads the checkpoint in `dir` (config.json and its safetensors) into ParamLayout order.
absl::StatusOr<LoadedModel> LoadHfCheckpoint(const std::string& dir);

// The config.json text transformers loads for `config` (AutoModelForCausalLM): Qwen3ForCausalLM
// when qk_norm, else LlamaForCausalLM. INVALID_ARGUMENT naming the field for what the format
// cannot express (residual_scale ≠ 1).
absl::StatusOr<std::string> HfConfigJson(const ModelConfig& config);

// Writes `dir`/config.json and `dir`/model.safetensors (tensors as `dtype`); `dir` must exist.
absl::Status ExportHf(const std::string& dir, const ModelConfig& config,
                      const std::vector<float>& params, StDtype dtype = StDtype::kF32);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_HF_FORMAT_H_
