// The constructors of each tokenizer kind, one .cc per kind. Call them through LoadTokenizer
// (tokenizer.h), which checks the file-size bound and picks the kind; they are public for tests.
// Each returns INVALID_ARGUMENT naming `source` and the field or byte offset for malformed bytes.
#ifndef ANERD_COMMON_TOKENIZER_KINDS_H_
#define ANERD_COMMON_TOKENIZER_KINDS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tokenizer/tokenizer.h"

namespace anerd::tokenizer {

// byte_tokenizer.cc: token = byte value, vocab 256.
std::unique_ptr<Tokenizer> MakeByteTokenizer();

// llama2c_tokenizer.cc: llama2.c's tokenizer.bin. The file has no vocabulary size: entries are
// read to the end of the file (kMaxVocab at most), at least 3 (unk 0, bos 1, eos 2).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(absl::string_view bytes,
                                                                absl::string_view source);

// sentencepiece_tokenizer.cc: a serialized SentencePiece ModelProto (.model).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(absl::string_view bytes,
                                                                      absl::string_view source);

// hf_tokenizer.cc: a Hugging Face tokenizer.json (byte-level BPE).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(absl::string_view bytes,
                                                           absl::string_view source);

}  // namespace anerd::tokenizer

#endif  // ANERD_COMMON_TOKENIZER_KINDS_H_
