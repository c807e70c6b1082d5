// Unicode Normalization Form C (canonical composition) of UTF-8 text, through ICU's Normalizer2
// (Debian libicu-dev, Homebrew icu4c): the "NFC" normalizer of a Hugging Face tokenizer.json,
// applied before pre-tokenization as the tokenizers library does ("e" + U+0301 becomes U+00E9).
//
// Thread-safety: safe from any thread (ICU's NFC instance is shared and immutable).
#ifndef ANERD_COMMON_TOKENIZER_UNICODE_NFC_H_
#define ANERD_COMMON_TOKENIZER_UNICODE_NFC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::tokenizer {

// `text` (valid UTF-8, which callers have checked) in NFC. Text that is already NFC — most text —
// is returned after a quick check, without being rewritten. INVALID_ARGUMENT beyond 2 GiB;
// INTERNAL when ICU fails (no data).
absl::StatusOr<std::string> ToNfc(absl::string_view text);

}  // namespace anerd::tokenizer

#endif  // ANERD_COMMON_TOKENIZER_UNICODE_NFC_H_
