#include "common/tokenizer/unicode_nfc.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace anerd::tokenizer {

absl::StatusOr<std::string> ToNfc(absl::string_view text) {
  if (text.size() > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("text of ", text.size(), " bytes is too long to normalize (2 GiB at most)"));
  }
  UErrorCode error = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(error);
  if (U_FAILURE(error) || nfc == nullptr) {
    return absl::InternalError(absl::StrCat("ICU has no NFC normalizer: ", u_errorName(error)));
  }
  const icu::StringPiece in(text.data(), static_cast<int32_t>(text.size()));
  if (nfc->isNormalizedUTF8(in, error) && U_SUCCESS(error)) return std::string(text);
  error = U_ZERO_ERROR;
  std::string out;
  out.reserve(text.size());
  icu::StringByteSink<std::string> sink(&out);
  nfc->normalizeUTF8(0, in, sink, nullptr, error);
  if (U_FAILURE(error)) {
    return absl::InternalError(
        absl::StrCat("ICU cannot normalize the text to NFC: ", u_errorName(error)));
  }
  return out;
}

}  // namespace anerd::tokenizer
