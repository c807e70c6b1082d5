// MakeDecoder: the backend name -> decoder kind table (make_decoder.h).
#include "server/generation/make_decoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/generation/program_decoder.h"

namespace anerd::generation {

absl::StatusOr<std::unique_ptr<TokenDecoder>> MakeDecoder(
    absl::string_view backend_name, backend::Backend* backend, const training::ModelConfig& config,
    std::shared_ptr<const std::vector<float>> params, const MakeDecoderOptions& options) {
  if (backend_name == "cpu" && !options.programs) {
    ANERD_ASSIGN_OR_RETURN(std::unique_ptr<Decoder> d,
                           Decoder::Create(config, std::move(params), options.decoder));
    return std::unique_ptr<TokenDecoder>(std::move(d));
  }
  if (backend == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend: the ", backend_name, " decoder runs programs and needs a backend"));
  }
  const std::string name = backend->Describe().name;
  if (name != backend_name) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend: asked for ", backend_name, " but given the ", name, " backend"));
  }
  std::shared_ptr<DecodeProgramSet> set = options.program_set;
  if (set == nullptr) {
    ANERD_ASSIGN_OR_RETURN(set, DecodeProgramSet::Create(config, backend, options.program_options));
  } else {
    if (set->backend() != backend) {
      return absl::InvalidArgumentError("program_set: compiled for another backend");
    }
    ANERD_RETURN_IF_ERROR(
        training::CheckSameArchitecture(set->config(), config, "program_set", "the model config"));
  }
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<ProgramDecoder> d,
      ProgramDecoder::Create(std::move(set), std::move(params), options.decoder));
  return std::unique_ptr<TokenDecoder>(std::move(d));
}

}  // namespace anerd::generation
