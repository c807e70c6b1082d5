#include "common/tokenizer/hf_pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/utf8.h"

namespace anerd::tokenizer {
namespace {

// Bounds PCRE2's backtracking per match so a hostile pattern cannot stall encoding.
constexpr uint32_t kMatchLimit = 10'000'000;

pcre2_code* Code(void* p) { return static_cast<pcre2_code*>(p); }

std::string Pcre2Message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) return absl::StrCat(code);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pcre2Pattern>> Pcre2Pattern::Compile(absl::string_view pattern,
                                                                    bool literal,
                                                                    absl::string_view field) {
  if (static_cast<int64_t>(pattern.size()) > kMaxPatternBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": the pattern has ", pattern.size(),
                                                   " bytes; the limit is ", kMaxPatternBytes));
  }
  if (pattern.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty pattern"));
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": the pattern does not compile at ",
                                                   "offset ", error_offset, ": ",
                                                   Pcre2Message(error)));
  }
  pcre2_jit_compile(code,
                    PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback
  return std::unique_ptr<Pcre2Pattern>(new Pcre2Pattern(code));
}

Pcre2Pattern::~Pcre2Pattern() { pcre2_code_free(Code(code_)); }

absl::Status Pcre2Pattern::SplitIsolated(absl::string_view text, int64_t base_offset,
                                         std::vector<absl::string_view>* pieces) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(Code(code_), nullptr);
  pcre2_match_context* mc = pcre2_match_context_create(nullptr);
  if (md == nullptr || mc == nullptr) {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    return absl::ResourceExhaustedError("cannot allocate PCRE2 match data");
  }
  pcre2_set_match_limit(mc, kMatchLimit);
  absl::Status status;
  size_t pos = 0, last = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (pos < text.size()) {
    const int rc = pcre2_match(Code(code_), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      status = absl::InvalidArgumentError(
          absl::StrCat("text: the pre-tokenizer pattern fails at byte offset ",
                       base_offset + static_cast<int64_t>(pos), ": ", Pcre2Message(rc)));
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    if (start < pos || end < start || end > text.size()) {  // \K tricks; refuse, never loop
      status = absl::InvalidArgumentError(absl::StrCat(
          "text: the pre-tokenizer pattern reports a match that goes backwards at byte offset ",
          base_offset + static_cast<int64_t>(pos)));
      break;
    }
    if (end == start) {  // an empty match splits nothing: step over one character
      if (start >= text.size()) break;
      pos = start + Utf8SequenceLength(text, start);
      continue;
    }
    if (start > last) pieces->push_back(text.substr(last, start - last));
    pieces->push_back(text.substr(start, end - start));
    last = pos = end;
  }
  if (status.ok() && last < text.size()) pieces->push_back(text.substr(last));
  pcre2_match_data_free(md);
  pcre2_match_context_free(mc);
  return status;
}

absl::Status PreTokenize(const std::vector<PreTokenizerStep>& steps, absl::string_view text,
                         int64_t base_offset, std::vector<std::string>* pieces) {
  std::vector<std::string> current{std::string(text)};
  std::vector<std::string> next;
  std::vector<absl::string_view> split;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (std::string& piece : current) {
      if (step.kind == PreTokenizerStep::Kind::kByteLevel && step.add_prefix_space &&
          (piece.empty() || piece[0] != ' ')) {
        piece.insert(0, 1, ' ');
      }
      if (step.pattern == nullptr) {
        next.push_back(std::move(piece));
        continue;
      }
      split.clear();
      if (absl::Status s = step.pattern->SplitIsolated(piece, base_offset, &split); !s.ok()) {
        return s;
      }
      for (absl::string_view p : split) next.emplace_back(p);
    }
    current.swap(next);
  }
  for (std::string& p : current) {
    if (!p.empty()) pieces->push_back(std::move(p));
  }
  return absl::OkStatus();
}

}  // namespace anerd::tokenizer
