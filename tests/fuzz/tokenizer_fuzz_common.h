// Shared body of the tokenizer file fuzz targets: whatever loads must encode and decode without
// crashing, give ids inside its vocabulary, decode to valid UTF-8, and stream exactly what Decode
// returns.
#ifndef ANERD_TESTS_FUZZ_TOKENIZER_FUZZ_COMMON_H_
#define ANERD_TESTS_FUZZ_TOKENIZER_FUZZ_COMMON_H_

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/utf8.h"

namespace anerd::fuzz {

inline void CheckText(const tokenizer::Tokenizer& t, const std::string& text) {
  absl::StatusOr<std::vector<int32_t>> ids = t.Encode(text);
  if (!ids.ok()) return;
  for (int32_t id : *ids) {
    if (id < 0 || id >= t.vocab_size()) std::abort();
  }
  absl::StatusOr<std::string> decoded = t.Decode(*ids);
  if (!decoded.ok() || !tokenizer::CheckUtf8(*decoded, "decoded").ok()) std::abort();
  tokenizer::StreamDecoder stream(&t);
  std::string joined;
  for (int32_t id : *ids) {
    absl::StatusOr<std::string> delta = stream.Push(id);
    if (!delta.ok() || !tokenizer::CheckUtf8(*delta, "delta").ok()) std::abort();
    joined += *delta;
  }
  joined += stream.Finish();
  if (joined != *decoded) std::abort();
}

inline void FuzzTokenizerFile(const char* kind, const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> t =
      tokenizer::LoadTokenizer(kind, bytes, "fuzz");
  if (!t.ok()) return;
  if ((*t)->vocab_size() <= 0 || (*t)->vocab_size() > tokenizer::kMaxVocab) std::abort();
  for (const char* text : {"", "Hello, world! don't 123\n\n  x", "日本語 é 😀", "<|endoftext|>a"}) {
    CheckText(**t, text);
  }
  CheckText(**t, bytes.substr(0, 256));  // the input's own bytes (often not UTF-8: refused)
  std::vector<int32_t> all;
  for (int32_t id = 0; id < (*t)->vocab_size() && id < 512; ++id) all.push_back(id);
  absl::StatusOr<std::string> decoded = (*t)->Decode(all);
  if (!decoded.ok() || !tokenizer::CheckUtf8(*decoded, "decoded").ok()) std::abort();
}

}  // namespace anerd::fuzz

#endif  // ANERD_TESTS_FUZZ_TOKENIZER_FUZZ_COMMON_H_
