// The interface every generation decoder implements: the CPU fp32 Decoder (decoder.h) and the
// fixed-shape program decoders that run on a device backend (cpu, ane-sim, ane). The Generate
// service and training's sample events hold a TokenDecoder and do not know which one it is.
//
// Contract: a decoder owns a key/value cache of max_context() positions of one model; Prefill
// runs tokens at positions [position(), position() + n) and returns the logits [vocab] of the last
// one (valid until the next call). Errors leave the decoder unchanged: INVALID_ARGUMENT for ids
// outside the vocabulary or an empty span, OUT_OF_RANGE when the context would overflow.
// Thread-safety: one thread at a time per decoder.
#ifndef ANERD_SERVER_GENERATION_TOKEN_DECODER_H_
#define ANERD_SERVER_GENERATION_TOKEN_DECODER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/training/config.h"

namespace anerd::generation {

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;

  virtual absl::StatusOr<absl::Span<const float>> Prefill(absl::Span<const int32_t> tokens) = 0;
  // Prefill of one token.
  absl::StatusOr<absl::Span<const float>> Step(int32_t token) {
    return Prefill(absl::Span<const int32_t>(&token, 1));
  }
  // Forgets every position (buffers stay allocated).
  virtual void Reset() = 0;

  virtual int64_t position() const = 0;
  virtual int64_t max_context() const = 0;
  virtual const training::ModelConfig& config() const = 0;
};

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_TOKEN_DECODER_H_
