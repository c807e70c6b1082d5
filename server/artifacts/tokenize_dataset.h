// Tokenizing a text dataset artifact into a new token dataset artifact (issue 19 item 3; the
// TokenizeDataset RPC). The caller (the service) has already checked that the caller may see
// both artifacts and that their kinds are right; this is the blocking part: read the tokenizer's
// blob, run common/tokenizer TokenizeFile from the text's blob into a temporary in the artifact
// directory, and commit the result as a `dataset` owned by `owner`.
//
// Token file naming (the one rule, also read by server/training/data.h): raw little-endian ids,
// no header; a name ending ".u32.bin" holds uint32 ids, any other ".bin" uint16 ids (llama2.c's
// format). The width is uint16 when the vocabulary has at most 65536 ids, else uint32.
//
// Errors: INVALID_ARGUMENT naming the text artifact (id and name) and the byte offset for text
// that is not UTF-8 (any tokenizer but "byte", which takes any bytes), or naming `name` when it
// does not end as the width needs; the tokenizer's load errors naming it (a SentencePiece model
// runs in the SentencePiece module, common/tokenizer/spm_shim.h); CANCELLED when
// `progress` returns false; the store's errors (quota: RESOURCE_EXHAUSTED). On any error nothing
// is stored and no file is left.
//
// Thread-safety: blocking file I/O; call from a worker thread, never a gRPC or device executor
// thread. `progress` is called on the calling thread.
#ifndef ANERD_SERVER_ARTIFACTS_TOKENIZE_DATASET_H_
#define ANERD_SERVER_ARTIFACTS_TOKENIZE_DATASET_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tokenizer/tokenize_file.h"
#include "server/artifacts/artifact_store.h"

namespace anerd::artifacts {

struct TokenizeDatasetJob {
  ArtifactRecord text;       // a dataset the owner may see
  ArtifactRecord tokenizer;  // a tokenizer artifact; ignored when byte_tokenizer
  bool byte_tokenizer = false;
  bool add_bos = false;
  bool add_eos = false;
  std::string name;  // "" = TokenFileName(text's name for owner, width)
  std::string owner;
  ArtifactQuota quota;
};

struct TokenizeDatasetOutcome {
  ArtifactRecord artifact;
  tokenizer::TokenizeFileResult file;
  int32_t vocab_size = 0;
};

// "<text name without .txt>.tokens.bin" (id_bytes 2) or ".tokens.u32.bin" (4).
std::string TokenFileName(absl::string_view text_name, int id_bytes);

absl::StatusOr<TokenizeDatasetOutcome> TokenizeDataset(ArtifactStore& store,
                                                       const TokenizeDatasetJob& job,
                                                       const tokenizer::TokenizeProgress& progress);

}  // namespace anerd::artifacts

#endif  // ANERD_SERVER_ARTIFACTS_TOKENIZE_DATASET_H_
