// A CPU fp32 decoder for generation (issue 20 item 2, its CPU half): the forward pass of a
// training::ModelConfig model over its flat parameters (training::ParamLayout order, as
// LoadModelFile returns them), with a key/value cache so that each new token costs one position.
//
// Architecture: exactly the training engine's (server/training/config.h) in fp32 — pre-norm
// RMSNorm (config.norm_eps), GQA (query head h reads KV head h / (heads / kv_heads)), head_dim
// from the config, QK-norm per head before RoPE (qk_norm), RoPE interleaved or rotate-half with
// rope_theta (tables of training::RopeTables), scores scaled by 1/sqrt(head_dim), SwiGLU,
// both residual branches scaled by config.residual_scale (a checkpoint trained with
// TrainSpec::residual_scale "deepnet" must pass a config with residual_scale =
// training::ResidualAlpha(spec), as model_export does), final RMSNorm, classifier = lm_head when
// untied, else the embedding. With the default fields this is llama2.c run.c's forward.
//
// KV cache: two fp32 arrays, keys and values, each laid out [layer][kv_head][max_context][head_dim]
// — element (l, j, p, d) at ((l·KVH + j)·max_context + p)·HD + d — so one head's keys over all
// positions are one contiguous [p][HD] matrix (the layout of Orion and maderix/ANE PR #26).
// Positions [0, position()) are valid; keys are stored after QK-norm and RoPE.
//
// Bounds (checked in Create, before anything is allocated): the context is the model's seq, or
// DecoderOptions::max_context (an explicit limit, smaller or larger, <= kMaxDecoderContext); the
// cache (2·L·KVH·max_context·HD·4 bytes) plus the RoPE tables (2·max_context·HD·4) within
// DecoderOptions::max_cache_bytes.
//
// Activations are channel-major [C][n] over the n positions of a call, as training/cpu_ops.h.
// Speed: a decoded token (n = 1) is memory bound — every weight is read once — so its products
// are the custom matrix-vector kernel (matvec.h) with rows split over the row pool
// (parallel_rows.h); Q, K and V are one product over ParamLayout's adjacent wq|wk|wv, W1 and W3
// one pass (with SwiGLU), and attention reads each head's contiguous cache, heads split over the
// pool when long. Prefill (n > 1) runs cblas GEMMs on row blocks over the same pool; BLAS itself
// should be single-threaded (the daemon's ConfigureBlasThreading; OPENBLAS_NUM_THREADS=1).
// Results do not depend on the thread count (each output is computed by one thread, in a fixed
// order).
// Thread-safety: one thread at a time per Decoder; several Decoders may share one parameter array
// (held by shared_ptr, read-only).
#ifndef ANERD_SERVER_GENERATION_DECODER_H_
#define ANERD_SERVER_GENERATION_DECODER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/generation/token_decoder.h"
#include "server/training/config.h"
#include "server/training/model.h"

namespace anerd::generation {

// The largest context any decoder accepts (positions; RoPE tables and scores scale with it).
inline constexpr int64_t kMaxDecoderContext = int64_t{1} << 20;

// Prefill runs long prompts in chunks of at most this many positions, so its scratch (scores
// [chunk][context]) stays O(chunk · context) rather than O(context²).
inline constexpr int64_t kPrefillChunk = 128;

struct DecoderOptions {
  // Positions the cache holds. 0 = the model's seq. A value above seq is an explicit limit (RoPE
  // beyond the trained length is the caller's choice), accepted up to kMaxDecoderContext.
  int64_t max_context = 0;
  // Upper bound of the KV cache's and RoPE tables' bytes; RESOURCE_EXHAUSTED above it.
  int64_t max_cache_bytes = int64_t{2} << 30;
};

class Decoder final : public TokenDecoder {
 public:
  // Validates the config (training::ValidateConfig), the parameter count (ParamLayout::total())
  // and the bounds above: INVALID_ARGUMENT naming the field ("params", "max_context") or
  // RESOURCE_EXHAUSTED for the cache budget. `params` must not change while the decoder lives.
  static absl::StatusOr<std::unique_ptr<Decoder>> Create(
      const training::ModelConfig& config, std::shared_ptr<const std::vector<float>> params,
      const DecoderOptions& options = {});

  // Runs `tokens` at positions [position(), position() + n) (n >= 1), appending their keys and
  // values to the cache, and returns the logits [vocab] of the last one. The span stays valid
  // until the next call. Errors leave the decoder unchanged: INVALID_ARGUMENT "tokens[i]: id X
  // outside the vocabulary [0, V)" or "tokens: empty"; OUT_OF_RANGE "context: ..." when the
  // tokens would pass max_context().
  absl::StatusOr<absl::Span<const float>> Prefill(absl::Span<const int32_t> tokens) override;
  // Forgets every position (the cache is kept allocated).
  void Reset() override { pos_ = 0; }

  int64_t position() const override { return pos_; }
  int64_t max_context() const override { return ctx_; }
  const training::ModelConfig& config() const override { return c_; }
  int64_t cache_bytes() const { return static_cast<int64_t>(k_cache_.size() * 2 * sizeof(float)); }

 private:
  Decoder(const training::ModelConfig& config, std::shared_ptr<const std::vector<float>> params,
          int64_t max_context);
  // Runs n <= kPrefillChunk tokens at positions [pos_, pos_ + n) through every layer (x_ [D][n]
  // holds the last layer's output) and advances pos_.
  void RunChunk(absl::Span<const int32_t> tokens);
  void Layer(int l, int64_t n);      // x_ [D][n] at positions pos_.. in place
  void Attention(int l, int64_t n);  // q (qkv_) and the cache -> att_ [QD][n]
  void AttentionStep(int l);         // the same for n = 1, heads split over the row pool
  float* KCache(int l, int64_t j) {
    return k_cache_.data() + (l * c_.kv_heads + j) * ctx_ * c_.head_dim;
  }
  float* VCache(int l, int64_t j) {
    return v_cache_.data() + (l * c_.kv_heads + j) * ctx_ * c_.head_dim;
  }

  training::ModelConfig c_;
  training::ParamLayout layout_;
  std::shared_ptr<const std::vector<float>> params_;
  const float* p_;
  int64_t ctx_;
  int64_t pos_ = 0;
  std::vector<float> k_cache_, v_cache_;
  std::vector<float> rope_cos_, rope_sin_;  // [max_context][HD]
  // Per-call scratch, sized for n positions: x_, xn_ [D][n]; qkv_ = q [QD][n], k [KVD][n],
  // v [KVD][n] back to back; att_ [QD][n]; h1_, h3_ [H][n]; o_ [D][n]; qt_ [n][HD];
  // scores_ [max(n, heads)][ctx]; hout_ [n][HD]; logits_ [V].
  std::vector<float> x_, xn_, qkv_, att_, h1_, h3_, o_, qt_, scores_, hout_, rinv_, xl_;
  std::vector<float> logits_;
};

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_DECODER_H_
