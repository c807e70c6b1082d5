// The one place that picks a generation decoder for a backend (issue 20 item 2): the Generate
// RPC and training's samples ask for a TokenDecoder by backend name and do not know which kind
// they get.
//
//   "cpu"              the CPU fp32 Decoder (decoder.h), unless MakeDecoderOptions::programs
//   "ane-sim", "ane"   the ProgramDecoder (program_decoder.h) on `backend`
//   (any other name)   the ProgramDecoder on `backend`, when one is given
//
// Threading: see program_decoder.h — a ProgramDecoder's calls are device work, to be run where
// the caller runs device work for `backend` (its DeviceExecutor); the fp32 Decoder runs anywhere.
#ifndef ANERD_SERVER_GENERATION_MAKE_DECODER_H_
#define ANERD_SERVER_GENERATION_MAKE_DECODER_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/backend.h"
#include "server/generation/decode_programs.h"
#include "server/generation/decoder.h"
#include "server/generation/token_decoder.h"
#include "server/training/config.h"

namespace anerd::generation {

struct MakeDecoderOptions {
  DecoderOptions decoder;  // context and byte budget (both kinds)
  // Run the programs on "cpu" too (the CPU backend `backend` must then be given): tests and
  // benchmarks of the program path without a device.
  bool programs = false;
  DecodeProgramOptions program_options;
  // Compiled programs to reuse (same config and backend), e.g. across the Generate calls of one
  // session; null = a new set. Ignored by the fp32 Decoder.
  std::shared_ptr<DecodeProgramSet> program_set;
};

// INVALID_ARGUMENT "backend: ..." when a program decoder is asked for without a backend or with
// a backend whose Describe().name is not `backend_name`; otherwise the decoder's own errors
// (Decoder::Create, DecodeProgramSet::Create, ProgramDecoder::Create).
absl::StatusOr<std::unique_ptr<TokenDecoder>> MakeDecoder(
    absl::string_view backend_name, backend::Backend* backend, const training::ModelConfig& config,
    std::shared_ptr<const std::vector<float>> params, const MakeDecoderOptions& options = {});

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_MAKE_DECODER_H_
