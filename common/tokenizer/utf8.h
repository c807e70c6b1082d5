// UTF-8 checks shared by the tokenizers: validation naming the first bad byte offset, and the
// assembler that turns token bytes into whole, valid UTF-8 text for decoding and streaming.
//
// "Valid" is RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
// Thread-safety: the functions are pure; a Utf8Assembler is a value owned by one thread at a time.
#ifndef ANERD_COMMON_TOKENIZER_UTF8_H_
#define ANERD_COMMON_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anerd::tokenizer {

// Length (1..4) of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not
// one (including a sequence cut by the end of `s`). Requires i < s.size().
int Utf8SequenceLength(absl::string_view s, size_t i);

// OK when `text` is valid UTF-8. Otherwise INVALID_ARGUMENT "<what>: invalid UTF-8 at byte
// offset N" with N = base_offset + the offset of the first byte that starts no valid sequence.
absl::Status CheckUtf8(absl::string_view text, absl::string_view what, int64_t base_offset = 0);

// U+FFFD, the replacement for each byte that starts no valid sequence.
inline constexpr absl::string_view kReplacementChar = "\xEF\xBF\xBD";

// Turns a stream of bytes into valid UTF-8 text pieces: whole sequences pass through, each byte
// that cannot start a valid sequence becomes U+FFFD, and a sequence cut at the end of what was
// pushed so far is held back until the next Push decides it (or Finish replaces it, one U+FFFD
// per held byte). Because each decision depends only on the bytes of that one sequence, the
// concatenated output is the same however the input is split across Push calls.
class Utf8Assembler {
 public:
  // Appends to `out` the text that `bytes` (after any held bytes) completes.
  void Push(absl::string_view bytes, std::string* out);
  // Appends the held bytes' replacements to `out` and resets the assembler.
  void Finish(std::string* out);

 private:
  void Drain(bool final, std::string* out);
  std::string pending_;
};

// Whole-buffer form of Utf8Assembler: `bytes` with every invalid byte replaced by U+FFFD.
std::string SanitizeUtf8(absl::string_view bytes);

}  // namespace anerd::tokenizer

#endif  // ANERD_COMMON_TOKENIZER_UTF8_H_
