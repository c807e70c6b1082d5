// Tokenizers: text <-> token ids for datasets, generation and the live view (issue 19 item 3).
//
// Kinds (one file each; LoadTokenizer in tokenizer.cc is the one factory that lists them):
//   "byte"          token = byte value, vocab 256, no bos/eos; the ids of today's text data
//                   (server/training/data.h). It encodes ANY bytes (a byte tokenizer has no reason
//                   to refuse them; the training loader still checks UTF-8 on its own).
//   "llama2c"       llama2.c's tokenizer.bin (llama2c_tokenizer.cc).
//   "sentencepiece" a SentencePiece .model through libsentencepiece.
//   "hf"            a Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, Llama 3,
//                   Qwen2/3), its pre-tokenizer regex run by PCRE2.
// Every kind but "byte" refuses text that is not valid UTF-8 with INVALID_ARGUMENT naming the
// byte offset of the first bad byte.
//
// Decoding renders each id to bytes in the context of the ids before it (llama2.c and
// SentencePiece drop the leading space of the first piece of a sequence or after bos), skips
// special/control ids (bos, eos, HF special added tokens), and assembles the bytes into valid
// UTF-8: whole sequences pass, each byte that starts no valid sequence becomes U+FFFD
// (byte-fallback ids can produce such bytes). StreamDecoder yields the same text in deltas that are
// always whole UTF-8, so generation can stream them: concat(deltas) + Finish() == Decode(all ids).
//
// Bounds (checked before allocating): files up to kMaxTokenizerFileBytes, vocabularies up to
// kMaxVocab ids, tokens up to kMaxTokenBytes bytes, up to kMaxMerges merges, regexes up to
// kMaxPatternBytes. A malformed file is INVALID_ARGUMENT naming the source and the field or
// byte offset.
//
// Thread-safety: a loaded Tokenizer is immutable; its const methods are safe from any thread.
// A StreamDecoder belongs to one thread at a time and must not outlive its Tokenizer.
#ifndef ANERD_COMMON_TOKENIZER_TOKENIZER_H_
#define ANERD_COMMON_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tokenizer/utf8.h"

namespace anerd::tokenizer {

inline constexpr int64_t kMaxTokenizerFileBytes = int64_t{64} << 20;
inline constexpr int32_t kMaxVocab = 1 << 20;
inline constexpr int32_t kMaxTokenBytes = 1024;
inline constexpr int32_t kMaxMerges = 1 << 21;
inline constexpr int32_t kMaxPatternBytes = 4096;

struct EncodeOptions {
  bool add_bos = false;  // prepend bos_id(); FAILED_PRECONDITION when the tokenizer has none
  bool add_eos = false;  // append eos_id(); same
};

// Where a sequence being decoded stands; rendering a token may depend on it.
struct DecodeContext {
  int32_t prev = -1;     // the previous id, -1 at the start
  bool emitted = false;  // whether text began (the kind decides; the first-space rules use it)
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "byte", "llama2c", "sentencepiece" or "hf".
  virtual absl::string_view kind() const = 0;
  // Ids are 0 .. vocab_size() - 1.
  virtual int32_t vocab_size() const = 0;
  // -1 when the tokenizer has no such token.
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  // Control/special ids that Decode skips (bos, eos, HF special added tokens, spm control).
  virtual bool IsSpecial(int32_t id) const = 0;

  // Token ids of `text`. INVALID_ARGUMENT "text: invalid UTF-8 at byte offset N" for non-UTF-8
  // text (except "byte"); errors of the kind (e.g. a byte with no byte-fallback id) name the
  // byte offset too.
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              const EncodeOptions& options = {}) const;
  // Text of `ids` (see the file comment). INVALID_ARGUMENT naming the index of an id outside
  // 0 .. vocab_size() - 1.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const;

  // Appends the bytes token `id` renders to in `context` (already range-checked) and advances
  // the context. Implemented by each kind; Decode and StreamDecoder are built on it.
  virtual void AppendTokenBytes(int32_t id, DecodeContext* context, std::string* out) const = 0;

  // Whether Encode takes any bytes (only "byte"); the others need valid UTF-8.
  virtual bool AcceptsAnyBytes() const { return false; }

 protected:
  // The kind's encoding of `text` (UTF-8 already checked unless AcceptsAnyBytes()), appended to
  // `ids`.
  virtual absl::Status EncodeText(absl::string_view text, std::vector<int32_t>* ids) const = 0;
};

// Incremental decoding for generation: Push(id) returns the text that id completes (possibly
// empty: a multi-byte character whose bytes are spread over several byte-fallback ids is held
// until it is whole). Finish() returns what is still held (as U+FFFD) and resets.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  // INVALID_ARGUMENT for an id outside the vocabulary (the decoder is unchanged).
  absl::StatusOr<std::string> Push(int32_t id);
  std::string Finish();

 private:
  const Tokenizer* tokenizer_;  // not owned
  DecodeContext context_;
  Utf8Assembler assembler_;
};

// The kind LoadTokenizer("") picks for a file's `bytes` named `source_name` (by extension, then
// by the bytes), "" when neither suggests one. Never calls into libsentencepiece.
std::string DetectTokenizerKind(absl::string_view bytes, absl::string_view source_name);

// The kinds LoadTokenizer knows, in autodetection order.
std::vector<std::string> TokenizerKinds();

// Builds a tokenizer of `kind` ("" = detect from `source_name`'s extension — .json hf, .model
// sentencepiece, .bin llama2c — then from the bytes) from a file's `bytes`; `source_name` names
// the file in errors. "byte" takes no bytes (they must be empty). Errors: INVALID_ARGUMENT for
// an unknown kind, undetectable or malformed bytes (naming source_name and the field/offset),
// bytes over kMaxTokenizerFileBytes.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(absl::string_view kind,
                                                         absl::string_view bytes,
                                                         absl::string_view source_name);

// Reads `path` (a regular file, at most kMaxTokenizerFileBytes) and calls LoadTokenizer.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFile(absl::string_view kind,
                                                             const std::string& path);

}  // namespace anerd::tokenizer

#endif  // ANERD_COMMON_TOKENIZER_TOKENIZER_H_
