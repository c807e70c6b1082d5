// A TokenDecoder whose per-layer projections and FFN run as fixed-shape MIL programs on a device
// backend — cpu, ane-sim, or on macOS the ANE (issue 20 item 2) — while the KV cache, QK-norm,
// RoPE, attention, the norms, the logits and sampling stay on the CPU in fp32.
//
// Per layer and chunk of n positions, in the program width S = DecodeProgramSet::WidthFor(n)
// (decode_programs.h; columns [n, S) are zero padding, and every program is column-wise — a
// matmul per position — so padded columns never reach the real ones and their outputs are
// dropped):
//   xn = rmsnorm(x)            CPU     [D][n]
//   q, k, v = qkvFwd(xn)       device
//   QK-norm, RoPE at [pos, pos + n), append k, v to the cache, attention       CPU (kv_cache.h)
//   o = woFwd(att)             device
//   x2 = x + α·o; x2n = rmsnorm(x2)                                            CPU
//   x = ffnFused(x2n, x2)      device  (x2 + α·W2(silu(W1·x2n)⊙W3·x2n))
// then the final RMSNorm of the last position and the classifier (cblas) on the CPU. A prompt
// longer than the largest bucket runs in chunks of it; Step runs in the decode lane, the token in
// lane 0. The programs compute in fp16 (the backend's NumericsMode): logits differ from the fp32
// Decoder's by fp16 rounding of weights and activations (tests/generation/ justify the bound).
//
// KV cache: fp32 [layer][kv_head][max_context][head_dim] (kv_cache.h), keys after QK-norm and
// RoPE. Weights are staged once per (layer, width) into the programs' fp16 input surfaces, on the
// width's first use.
//
// Bounds (Create, before anything is allocated): context as DecoderOptions::max_context (0 = the
// model's seq, up to kMaxDecoderContext); the cache, the RoPE tables and the staged inputs of
// every width within DecoderOptions::max_cache_bytes (RESOURCE_EXHAUSTED naming "max_context").
//
// Device work and threads: Create compiles nothing; Prefill/Step compile a width's programs on
// its first use and run programs on the calling thread. The decoder holds the backend (through
// its DecodeProgramSet), not owned; it must outlive the decoder. Call Prefill/Step/Reset where
// the caller's device work for that backend runs (the backend's DeviceExecutor task, as the
// Trainer is driven), one call per device task; one thread at a time per decoder. Decoders of
// the same model shape may share one DecodeProgramSet (one compile per program for all).
#ifndef ANERD_SERVER_GENERATION_PROGRAM_DECODER_H_
#define ANERD_SERVER_GENERATION_PROGRAM_DECODER_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/generation/decode_programs.h"
#include "server/generation/decoder.h"
#include "server/generation/kv_cache.h"
#include "server/generation/token_decoder.h"
#include "server/training/config.h"
#include "server/training/model.h"

namespace anerd::generation {

class ProgramDecoder final : public TokenDecoder {
 public:
  // `programs` must have been created for `config` (same architecture; INVALID_ARGUMENT
  // "programs: ..." otherwise). Validates as Decoder::Create: INVALID_ARGUMENT naming "params" or
  // "max_context", RESOURCE_EXHAUSTED for the byte budget. `params` must not change while the
  // decoder lives.
  static absl::StatusOr<std::unique_ptr<ProgramDecoder>> Create(
      std::shared_ptr<DecodeProgramSet> programs, std::shared_ptr<const std::vector<float>> params,
      const DecoderOptions& options = {});

  // As TokenDecoder (token_decoder.h); device errors (compile, run) are returned as the backend
  // gave them and leave position() unchanged, but the cache beyond position() may be
  // overwritten.
  absl::StatusOr<absl::Span<const float>> Prefill(absl::Span<const int32_t> tokens) override;
  void Reset() override { pos_ = 0; }
  int64_t position() const override { return pos_; }
  int64_t max_context() const override { return cache_.max_context(); }
  const training::ModelConfig& config() const override { return c_; }

  const DecodeProgramSet& programs() const { return *programs_; }
  // Bytes of staged fp16 weights of every width used (the rest of the budget is the cache).
  int64_t staged_bytes() const;
  // Milliseconds inside the programs' Run calls since creation (device time plus copies).
  double device_ms() const { return device_ms_; }

 private:
  // One width's program inputs [kind][layer] (each the one input "x": weights staged,
  // activations written per call).
  using Inputs =
      std::array<std::vector<std::vector<backend::NamedTensor>>, WidthPrograms::kNumKinds>;

  ProgramDecoder(std::shared_ptr<DecodeProgramSet> programs,
                 std::shared_ptr<const std::vector<float>> params, int64_t max_context);
  // The programs and staged inputs of `width`, staging the weights on first use.
  absl::StatusOr<Inputs*> Prepare(const WidthPrograms& w);
  // Runs n tokens at [pos_, pos_ + n) through every layer (x_ [D][n] holds the last layer's
  // output); does not advance pos_.
  absl::Status RunChunk(absl::Span<const int32_t> tokens);
  absl::Status Layer(int l, int64_t n, const WidthPrograms& w, Inputs* in);
  // Runs program `kind` (WidthPrograms::Kind) of layer l on its staged input; its one output.
  absl::StatusOr<backend::Tensor> RunProgram(const WidthPrograms& w, Inputs* in, int kind, int l);

  training::ModelConfig c_;
  training::ParamLayout layout_;
  std::shared_ptr<DecodeProgramSet> programs_;
  std::shared_ptr<const std::vector<float>> params_;
  const float* p_;
  int64_t pos_ = 0;
  KvCache cache_;
  std::vector<float> rope_cos_, rope_sin_;  // [max_context][HD]
  std::map<int64_t, Inputs> inputs_;        // by width
  double device_ms_ = 0;
  // Per-call scratch [C][n]: x_, xn_, x2_, o_ [D][n]; q_, att_ [QD][n]; k_, v_ [KVD][n].
  std::vector<float> x_, xn_, x2_, o_, q_, att_, k_, v_, rinv_, xl_, logits_;
};

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_PROGRAM_DECODER_H_
