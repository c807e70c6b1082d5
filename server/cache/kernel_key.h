// Kernel identity: the one function that names a compiled kernel (KernelKey::Make) and the codecs
// of the compile options and signatures stored with it (KernelRecord::options / ::signature).
//
// A kernel id is the SHA-256 (64 lowercase hex) of
//   "anerd-kernel-v1\n" <canonical MIL text>
//   { "\nweight " <canonical path> " " <sha256 of the file> }   (sorted by path)
//   "\nbackend " <name> " " <version> "\noptions " <EncodeCompileOptions(options)>
// so the same program, weights, backend build and options always give the same id, and anything
// that can change the compiled result gives another. Kernel ids are stored in anerd.db and held
// by clients: this format never changes without a new "v" tag. The front's kernel manager and
// the worker pool (quarantine) both name programs with it.
//
// Thread-safety: pure functions; safe from any thread.
#ifndef ANERD_SERVER_CACHE_KERNEL_KEY_H_
#define ANERD_SERVER_CACHE_KERNEL_KEY_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/verifier.h"
#include "server/backend/backend.h"

namespace anerd::cache {

struct KernelKey {
  std::string id;              // the kernel id (64 hex)
  std::string canonical_text;  // mil::PrintProgram of the program
  std::string mil_sha;         // SHA-256 hex of canonical_text (its blob name)
  std::string options;         // EncodeCompileOptions(options)
  // Canonical weight path -> SHA-256 hex of its bytes, sorted by path.
  std::vector<std::pair<std::string, std::string>> weights;
  uint64_t weight_bytes = 0;  // all weight files together

  // Computes the key. `known_weight_sha256` (canonical path -> hex digest) holds digests the
  // caller already computed (e.g. while the bytes streamed in); they are trusted, and the other
  // files are hashed here.
  static KernelKey Make(const mil::VerifiedProgram& program,
                        const backend::BackendDescription& backend,
                        const backend::CompileOptions& options,
                        const std::map<std::string, std::string>& known_weight_sha256 = {});
};

// Compile options as stored and shown to users: "numerics=ane" or "numerics=fp32", then
// ",ignore_attn_mask", ",reference_mode" and ",qos=N" (N in 0..63) when set, in that order; a
// kernel without a QoS encodes exactly as before QoS existed, so its id is unchanged. Only the
// options that can change a compiled result are encoded (max_memory_bytes and stop are not).
std::string EncodeCompileOptions(const backend::CompileOptions& options);
// The inverse: DATA_LOSS naming the text for anything EncodeCompileOptions does not produce.
absl::StatusOr<backend::CompileOptions> DecodeCompileOptions(absl::string_view text);

// A compiled kernel's interface as stored in KernelRecord::signature:
// "x:fp16[1,64,1,16];m:fp32[]->y:fp16[1,64,1,16]" (inputs "->" outputs, each "name:dtype[dims]").
struct KernelSignature {
  std::vector<backend::TensorSignature> inputs;
  std::vector<backend::TensorSignature> outputs;
};
std::string EncodeSignature(const KernelSignature& signature);
// The inverse: DATA_LOSS naming the malformed part.
absl::StatusOr<KernelSignature> DecodeSignature(absl::string_view text);

}  // namespace anerd::cache

#endif  // ANERD_SERVER_CACHE_KERNEL_KEY_H_
