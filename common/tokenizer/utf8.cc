#include "common/tokenizer/utf8.h"

#include "absl/strings/str_cat.h"

namespace anerd::tokenizer {
namespace {

// Expected length from a lead byte (2..4), 1 for ASCII, 0 for a byte that can never lead.
int LeadLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;  // continuation bytes and the overlong leads C0, C1
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  if (c < 0xF5) return 4;
  return 0;
}

// Whether byte `b` may follow lead `lead` as its second byte (RFC 3629 table).
bool SecondByteOk(unsigned char lead, unsigned char b) {
  if ((b & 0xC0) != 0x80) return false;
  if (lead == 0xE0) return b >= 0xA0;  // overlong
  if (lead == 0xED) return b < 0xA0;   // surrogates
  if (lead == 0xF0) return b >= 0x90;  // overlong
  if (lead == 0xF4) return b < 0x90;   // above U+10FFFF
  return true;
}

// How the bytes at s[i] stand: >0 a whole sequence of that length, 0 invalid, -1 a valid prefix
// cut by the end of `s`.
int Classify(absl::string_view s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const int len = LeadLength(lead);
  if (len <= 1) return len;
  for (int k = 1; k < len; ++k) {
    if (i + k >= s.size()) return -1;
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? !SecondByteOk(lead, b) : (b & 0xC0) != 0x80) return 0;
  }
  return len;
}

}  // namespace

int Utf8SequenceLength(absl::string_view s, size_t i) {
  const int c = Classify(s, i);
  return c < 0 ? 0 : c;
}

absl::Status CheckUtf8(absl::string_view text, absl::string_view what, int64_t base_offset) {
  for (size_t i = 0; i < text.size();) {
    const int len = Utf8SequenceLength(text, i);
    if (len == 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": invalid UTF-8 at byte offset ",
                                                     base_offset + static_cast<int64_t>(i)));
    }
    i += len;
  }
  return absl::OkStatus();
}

void Utf8Assembler::Push(absl::string_view bytes, std::string* out) {
  pending_.append(bytes.data(), bytes.size());
  Drain(/*final=*/false, out);
}

void Utf8Assembler::Finish(std::string* out) {
  Drain(/*final=*/true, out);
  pending_.clear();
}

void Utf8Assembler::Drain(bool final, std::string* out) {
  size_t i = 0;
  while (i < pending_.size()) {
    const int c = Classify(pending_, i);
    if (c < 0 && !final) break;  // wait for the rest of the sequence
    if (c > 0) {
      out->append(pending_, i, c);
      i += c;
    } else {
      out->append(kReplacementChar.data(), kReplacementChar.size());
      ++i;
    }
  }
  pending_.erase(0, i);
}

std::string SanitizeUtf8(absl::string_view bytes) {
  Utf8Assembler a;
  std::string out;
  a.Push(bytes, &out);
  a.Finish(&out);
  return out;
}

}  // namespace anerd::tokenizer
