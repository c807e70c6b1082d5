// Tokenizing a UTF-8 text file into a token file, streaming: what the daemon's `data tokenize`
// runs. Memory stays bounded by max_document_bytes plus one read block, whatever the file size.
//
// Documents: the text is cut after every blank line (a run of two or more '\n', which stays with
// the document before it) and, when a document would exceed max_document_bytes, after its last
// '\n' within the bound (or, with no '\n', at the last character boundary within it). Each
// document is encoded on its own (with bos/eos when asked), so the output equals the
// concatenation of Encode(document) over the documents. For the byte tokenizer this is exactly
// Encode(whole text); for the Qwen2/3 and Llama 3 pre-tokenizers too (their patterns never match
// across a maximal newline run followed by other text); for SentencePiece and llama2.c each
// document gets its own dummy-prefix space, as llama2.c's pretokenization of TinyStories does.
//
// Output: ids little-endian, uint16 (today's training token files, server/training/data.h) when
// the vocabulary has at most 65536 ids; a larger vocabulary (Qwen3's 151k, Llama 3's 128k) is
// INVALID_ARGUMENT unless uint32 ids are asked for explicitly (IdWidth::kUint32; the training
// loader reads such a file when it is named ".u32.bin" or given format "tokens32"). The file is written to a temporary next to the destination,
// fsynced and renamed: on any error or cancellation nothing is left behind.
//
// Thread-safety: TokenizeFile may run on any thread (blocking file I/O: never on a device
// executor); `progress` is called on the caller's thread.
#ifndef ANERD_COMMON_TOKENIZER_TOKENIZE_FILE_H_
#define ANERD_COMMON_TOKENIZER_TOKENIZE_FILE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace anerd::tokenizer {

inline constexpr int64_t kMaxDocumentBytes = int64_t{64} << 20;

struct TokenizeFileOptions {
  enum class IdWidth { kAuto, kUint16, kUint32 };
  bool add_bos = false;  // per document; FAILED_PRECONDITION when the tokenizer has no bos
  bool add_eos = false;
  int64_t max_document_bytes = int64_t{1} << 20;  // 1 .. kMaxDocumentBytes
  IdWidth id_width = IdWidth::kAuto;
};

struct TokenizeFileResult {
  int64_t bytes_read = 0;
  int64_t documents = 0;
  int64_t tokens = 0;
  int id_bytes = 2;  // 2 (uint16) or 4 (uint32)
};

// Called after each block read with the bytes consumed so far and the file's size; returning
// false cancels (CANCELLED).
using TokenizeProgress = std::function<bool(int64_t done, int64_t total)>;

// Tokenizes `text_path` (a regular file) into `token_path`. Errors: those of OpenRegularFile;
// INVALID_ARGUMENT "<text_path>: invalid UTF-8 at byte offset N" (except the byte tokenizer),
// other encoding errors prefixed with the path and the document's byte offset, a vocabulary too
// large for the id width, bad options; CANCELLED; errno statuses naming token_path.
absl::StatusOr<TokenizeFileResult> TokenizeFile(const Tokenizer& tokenizer,
                                                const std::string& text_path,
                                                const std::string& token_path,
                                                const TokenizeFileOptions& options,
                                                const TokenizeProgress& progress = nullptr);

}  // namespace anerd::tokenizer

#endif  // ANERD_COMMON_TOKENIZER_TOKENIZE_FILE_H_
