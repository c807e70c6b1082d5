// The pre-tokenizer steps of a Hugging Face tokenizer.json that byte-level BPE models use:
//   Split{pattern: {Regex|String}, behavior: "Isolated", invert: false} — every match is its own
//     piece and so is every stretch between matches; the regex runs in PCRE2 with UTF and
//     Unicode properties (\p{L}, \p{N}, Unicode \s), as the Qwen2/3 and Llama 3 patterns need;
//   ByteLevel{add_prefix_space, use_regex} — a space before each piece that lacks one (when
//     add_prefix_space), then the GPT-2 pattern split (when use_regex).
// Steps apply in order, each to every piece the previous ones produced.
// Thread-safety: immutable after Make; Split is safe from any thread (match data per call).
#ifndef ANERD_COMMON_TOKENIZER_HF_PRETOKENIZER_H_
#define ANERD_COMMON_TOKENIZER_HF_PRETOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::tokenizer {

// GPT-2's pre-tokenizer pattern (ByteLevel with use_regex).
inline constexpr absl::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A compiled PCRE2 pattern (UTF, UCP), owned.
class Pcre2Pattern {
 public:
  // `literal` matches the text as is. INVALID_ARGUMENT naming `field`, PCRE2's message and the
  // pattern offset when it does not compile, or when it is longer than kMaxPatternBytes.
  static absl::StatusOr<std::unique_ptr<Pcre2Pattern>> Compile(absl::string_view pattern,
                                                               bool literal,
                                                               absl::string_view field);
  ~Pcre2Pattern();
  // Appends the Isolated split of `text` (valid UTF-8) to `pieces`. INVALID_ARGUMENT naming the
  // byte offset (+ base_offset) when PCRE2 fails there (e.g. its match limit).
  absl::Status SplitIsolated(absl::string_view text, int64_t base_offset,
                             std::vector<absl::string_view>* pieces) const;

 private:
  explicit Pcre2Pattern(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*
};

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  std::shared_ptr<const Pcre2Pattern> pattern;  // kSplit, or kByteLevel with use_regex
  bool add_prefix_space = false;                // kByteLevel
};

// Applies `steps` to `text` (valid UTF-8) and appends the non-empty pieces to `pieces`;
// base_offset is added to byte offsets in errors.
absl::Status PreTokenize(const std::vector<PreTokenizerStep>& steps, absl::string_view text,
                         int64_t base_offset, std::vector<std::string>* pieces);

}  // namespace anerd::tokenizer

#endif  // ANERD_COMMON_TOKENIZER_HF_PRETOKENIZER_H_
