// Model configurations and the training specification (issue 6; docs/ANE_NOTES.md §5.1, §5.5).
//
// ModelConfig is the shape of a Llama-style decoder: pre-norm RMSNorm, RoPE, causal attention with
// GQA (query head h uses KV head h / (heads/kv_heads), as Hugging Face repeat_kv), SwiGLU FFN, no
// biases. The architecture variants are explicit fields whose defaults are the llama2.c / seed
// model (interleaved-pair RoPE with theta 10000, no QK-norm, RMSNorm eps 1e-5, tied
// embedding/classifier, residual branches unscaled); Hugging Face Qwen3 is rope_style=half,
// rope_theta=1000000, qk_norm=1, norm_eps=1e-6 and, above 4B parameters, tied=0. The named shape
// "qwen3_0_6b" is the seed's and keeps the defaults: it is NOT Hugging Face Qwen3, whose weights
// must be trained with the Qwen3 fields (hfformat's import sets them from config.json).
// TrainSpec is plain data describing one training run; ValidateSpec checks every field.
// Thread-safety: plain value types and pure functions.
#ifndef ANERD_SERVER_TRAINING_CONFIG_H_
#define ANERD_SERVER_TRAINING_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/training_defaults.h"
#include "server/training/kernels.h"

namespace anerd::training {

struct ModelConfig {
  std::string name;  // "tiny", "stories15m", ... or "custom"
  int dim = 0;
  int hidden = 0;
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int vocab = 0;
  int seq = 0;

  // How RoPE pairs the dimensions of a head: kInterleaved rotates (2i, 2i+1) (llama2.c, the seed,
  // Meta's Llama), kHalf rotates (i, i + head_dim/2) (Hugging Face "rotate_half": Qwen3, HF Llama).
  // Pair i turns by position / rope_theta^(2i/head_dim) either way.
  enum class RopeStyle { kInterleaved, kHalf };
  RopeStyle rope_style = RopeStyle::kInterleaved;
  double rope_theta = 10000.0;
  // QK-norm (Qwen3): an RMSNorm over each head's head_dim entries of q and of k, after the
  // projection and before RoPE, with two weight vectors of head_dim shared by all heads
  // (layers.N.q_norm / k_norm; never weight-decayed). Requires dim >= head_dim (see
  // ValidateConfig).
  bool qk_norm = false;
  // Epsilon of every RMSNorm (the block norms, the final norm and the QK-norms).
  double norm_eps = 1e-5;
  // Multiplier of both residual branches: x + residual_scale·attn(x), x + residual_scale·ffn(x).
  // 1 for every published model; TrainSpec::residual_scale "deepnet" is the seed's 1/sqrt(2L).
  double residual_scale = 1.0;
  // true: the classifier is the embedding matrix; false: a separate lm_head [vocab][dim].
  bool tied_embeddings = true;
  // Special token ids carried with the model (-1 = none); the engine itself does not use them.
  int bos_id = -1;
  int eos_id = -1;

  int64_t q_dim() const { return int64_t{heads} * head_dim; }
  int64_t kv_dim() const { return int64_t{kv_heads} * head_dim; }
  // Elements of one layer's parameters (7 matrices + 2 norm vectors [+ 2 QK-norm vectors]).
  int64_t LayerParams() const;
  // All parameters (the embedding, plus lm_head when untied).
  int64_t NumParams() const;
  ModelShape Shape() const;
};

// tiny (tests: dim 64, 2 layers, 4 heads, hidden 192, vocab 256, seq 64), stories15m, stories110m,
// qwen3_0_6b (the seed's shape: GQA 16/8, head_dim 128 — with the default, seed-style fields, NOT
// Hugging Face Qwen3's). NOT_FOUND for other names.
absl::StatusOr<ModelConfig> ModelConfigByName(absl::string_view name);

// "dim=64,hidden=192,layers=2,heads=4,kv_heads=2,head_dim=16,vocab=256,seq=64"; every key
// optional. Defaults are tiny's; kv_heads defaults to heads and head_dim to dim/heads. The
// architecture keys: rope_style=interleaved|half, rope_theta=<number>, qk_norm=0|1,
// norm_eps=<number>, residual_scale=<number>, tied=0|1, bos_id=<id>, eos_id=<id> (-1 = none).
// The result is named "custom" and validated. INVALID_ARGUMENT naming the bad key or value.
absl::StatusOr<ModelConfig> ParseCustomConfig(absl::string_view kv);

// INVALID_ARGUMENT with a message for the first inconsistency: non-positive or oversized sizes,
// heads not divisible by kv_heads, odd head_dim, seq < 2, rope_theta outside (0, 1e12], norm_eps
// outside (0, 0.1], residual_scale outside (0, 1000], qk_norm with dim < head_dim, bos/eos ids
// outside [-1, vocab). (Any vocab up to 2^20 is accepted; uint16 data files hold ids < 65536,
// uint32 ones (".u32.bin", training/data.h) any.)
absl::Status ValidateConfig(const ModelConfig& config);

// Largest model anerd handles: 2^40 parameters (16 TiB of fp32 weights), so byte counts of
// weights, gradients and optimizer state fit in int64 with room to spare.
inline constexpr int64_t kMaxParams = int64_t{1} << 40;
// NumParams() of a valid config without overflow: INVALID_ARGUMENT when it exceeds kMaxParams
// (NumParams() itself overflows for the largest valid configs).
absl::StatusOr<int64_t> CheckedNumParams(const ModelConfig& config);

// Renders the config as ParseCustomConfig input (round-trips exactly, doubles included). The
// architecture keys are written only when they differ from their defaults, so a default config
// renders as it did before they existed (checkpoint SPEC sections and snapshots are unchanged).
std::string ConfigToString(const ModelConfig& config);

// OK when `file` and `want` describe the same architecture (every field but name, seq and the
// bos/eos ids, which do not change the computation);
// otherwise INVALID_ARGUMENT "<what> has <field> <value> but <other> has <value>" for the first
// difference. `what`/`other` name the two sides in the message.
absl::Status CheckSameArchitecture(const ModelConfig& file, const ModelConfig& want,
                                   absl::string_view what, absl::string_view other);

absl::string_view RopeStyleName(ModelConfig::RopeStyle style);

struct TrainSpec {
  ModelConfig model;
  std::string init_model_path;  // "" = from scratch; else a llama2.c model, a seed v4 checkpoint or
                                // a Hugging Face checkpoint (model_io.h LoadModelFile)
  // Set when the request names an init file but no model: `model` is a placeholder until
  // ResolveInitModel (init_model.h) reads the file's own config; model_overrides holds the
  // request's ParseCustomConfig keys to apply on top. Not serialised (resolved before the session
  // exists).
  bool model_from_init = false;
  std::string model_overrides;
  std::string data_path;
  std::string data_format;  // "tokens" (uint16 LE) | "tokens32" (uint32 LE) | "text" (UTF-8,
                            // byte tokens) | "" (by suffix: .u32.bin = tokens32, .bin = tokens,
                            // else text; training/data.h)
  int64_t steps = training_defaults::kSteps;            // optimizer steps
  double lr = training_defaults::kLr;                   // peak learning rate
  double min_lr = training_defaults::kMinLr;            // cosine floor
  std::string schedule = training_defaults::kSchedule;  // "cosine" (linear warmup then cosine) |
                                                        // "constant" (warmup too)
  int64_t warmup = training_defaults::kWarmup;          // optimizer steps of linear warmup
  int accum = training_defaults::kAccum;   // micro-steps (sequences) per optimizer step
  double clip = training_defaults::kClip;  // global grad-norm clip; 0 = off
  double weight_decay =
      training_defaults::kWeightDecay;  // on matrices and the embedding; norms never decay
  double beta1 = training_defaults::kBeta1;
  double beta2 = training_defaults::kBeta2;
  double eps = training_defaults::kEps;
  std::string loss_scale = training_defaults::kLossScale;  // "dynamic" or a positive number
  std::string numerics = training_defaults::kNumerics;     // "ane" | "fp32" (backend NumericsMode)
  std::string sampling = training_defaults::kSampling;     // "random" (seeded) | "sequential"
  uint64_t seed = training_defaults::kSeed;                // init and sampling
  // "1": the model's own residual_scale (1 unless its config says otherwise) | "deepnet"
  // (1/sqrt(2·layers), the seed's; refused together with a model residual_scale other than 1).
  std::string residual_scale = training_defaults::kResidualScale;
  // Vocabulary compaction (docs/ANE_NOTES.md §5.6): the classifier and softmax run over only the
  // token ids present in the data file. Effect on the loss: it is normalised over fewer classes, so
  // the reported loss is lower than the full-vocabulary loss of the same weights by −log(1 − mass
  // the model puts on absent ids) — about ln(256/70) ≈ 1.3 nats at initialisation for byte-level
  // text — and the absent ids' embedding rows get no classifier gradient. Faster for large
  // vocabularies.
  bool compact_vocab = false;
  int64_t checkpoint_every = 0;  // steps between checkpoints (used by the session layer); 0 = off

  // Artifacts (issue 19): the ids `data_path`, `init_model_path` and `val_data_path` were resolved
  // from by the service ("" = a path the client named). Such paths point into the state dir's
  // artifact blobs, so the data-root check does not apply to them.
  std::string data_artifact;
  std::string init_artifact;
  std::string val_artifact;
  // Held-out data (issue 19 item 6; training/validation_split.h): the tail fraction of the data
  // (0 = none) or a separate file, and what the session layer resolved them to.
  double val_fraction = 0;
  std::string val_data_path;
  std::string val_data_format;  // as data_format, for val_data_path
  int64_t train_tokens = 0;     // tokens of data_path trained on (0 = all of them)
  int64_t val_begin = 0;        // held-out tokens [val_begin, val_end) of the data (val_fraction)
  int64_t val_end = 0;          // or of val_data_path; 0/0 = no held-out data

  // Evaluation in training (issue 20 item 4; training/evaluate.h). Every `eval_every` steps (0 =
  // off) the session computes the loss of the current weights on at most `eval_batches`
  // sequences of held-out data (the range above, or without one the tail of the data), and
  // keeps the checkpoint of the lowest such loss beside the latest. Every `sample_every` steps
  // (0 = off) it generates `sample_tokens` tokens greedily after `sample_prompt` with the CPU
  // decoder from a copy of the weights.
  int64_t eval_every = 0;
  int eval_batches = 8;
  int64_t sample_every = 0;
  std::string sample_prompt;
  int sample_tokens = 48;

  // Data-parallel training over MPI ranks (issue 24; training/gradient_reducer.h,
  // server/distributed/). `ranks` processes each run `accum` micro-steps per optimizer step; their
  // gradients are summed by `reduce`: "sum" (MPI_Allreduce; bit-equal to accum·ranks on one rank
  // for 2 ranks) or "ordered" (gathered and summed in rank order on every rank count). Every
  // `digest_every` steps (0 = never) the ranks compare a digest of their weights. `hostfile` (MPI's
  // own format; "" = this host only) and `max_restarts` (relaunches from the last checkpoint after
  // a rank fails) are the session layer's.
  int ranks = 1;
  std::string reduce = "sum";
  int64_t digest_every = 10;
  std::string hostfile;
  int max_restarts = 0;
  // overlap (issue 24 item 2; training/bucketed_reducer.h): with ranks > 1 the gradients are
  // reduced in buckets of `allreduce_bucket_kb` KiB (0 = 4096) on a communication thread while the
  // backward pass runs (`allreduce_overlap`), else in one reduction after it. The same bits
  // either way.
  int allreduce_bucket_kb = 0;
  bool allreduce_overlap = true;
};

// Bounds of the distributed fields (ValidateSpec).
inline constexpr int kMaxRanks = 256;
inline constexpr int kMaxRestarts = 100;
inline constexpr int kMaxBucketKb = 1 << 20;  // 1 GiB

// Bounds of the evaluation fields (ValidateSpec).
inline constexpr int kMaxEvalBatches = 4096;
inline constexpr int kMaxSampleTokens = 1024;
inline constexpr size_t kMaxSamplePromptBytes = 4096;

// OK or INVALID_ARGUMENT naming the first bad field ("steps: must be positive", ...). Also
// validates the model config. Does not touch the filesystem.
absl::Status ValidateSpec(const TrainSpec& spec);
// Data-parallel resume (issue 24): makes `spec` run on `ranks` ranks while every step keeps its
// ranks x accum sequences, by changing accum (the same sequences in the same order, so the run
// continues exactly); a hostfile is dropped at one rank. INVALID_ARGUMENT naming both counts when
// `ranks` cannot share them evenly; the result is validated.
absl::Status ResumeOnRanks(int ranks, TrainSpec* spec);

// Serialises every field as "key=value" lines / parses them back (used by checkpoints).
std::string SpecToText(const TrainSpec& spec);
absl::StatusOr<TrainSpec> SpecFromText(absl::string_view text);

// The residual branch multiplier for `spec` (model.residual_scale, or 1/sqrt(2·layers) for
// "deepnet").
double ResidualAlpha(const TrainSpec& spec);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_CONFIG_H_
