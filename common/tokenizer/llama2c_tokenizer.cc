// llama2.c's tokenizer.bin (karpathy/llama2.c tokenizer.py writes it, run.c reads it):
//   int32 max_token_length, then per token: float32 score, int32 len, len bytes (no NUL);
// little-endian, no vocabulary size (read to the end of the file). Ids 0, 1, 2 are <unk>, bos
// and eos; byte-fallback ids are byte + 3. Encoding follows run.c's encode(): a dummy " " before
// non-empty text, each UTF-8 code point its own token when the vocabulary has it, else one id
// per byte (byte + 3), then the greedy merge of the best-scoring adjacent pair (leftmost among
// equal scores; scores ≤ −1e10 never merge). Where run.c's lookup of a duplicated piece is
// unspecified (bsearch), the lowest id wins here. Decoding follows run.c's decode(): "<0xXX>"
// pieces are their byte, bos and eos render nothing, and the first piece of a sequence or the
// piece after bos loses one leading space (run.c only decodes after bos; the start-of-sequence
// case makes Decode(Encode(text)) == text without bos too).
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/bpe_merge.h"
#include "common/tokenizer/kinds.h"
#include "common/tokenizer/utf8.h"

namespace anerd::tokenizer {
namespace {

constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;
constexpr int32_t kByteOffset = 3;
constexpr float kNoMergeScore = -1e10f;

class Llama2cTokenizer : public Tokenizer {
 public:
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores)
      : pieces_(std::move(pieces)), scores_(std::move(scores)) {
    ids_.reserve(pieces_.size());
    for (int32_t id = 0; id < static_cast<int32_t>(pieces_.size()); ++id) {
      ids_.emplace(pieces_[id], id);  // keeps the first (lowest) id of a duplicate
    }
  }

  absl::string_view kind() const override { return "llama2c"; }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  bool IsSpecial(int32_t id) const override { return id == kBos || id == kEos; }

  void AppendTokenBytes(int32_t id, DecodeContext* context, std::string* out) const override {
    const bool strip = context->prev == kBos || context->prev < 0;
    context->prev = id;
    if (IsSpecial(id)) return;
    absl::string_view piece = pieces_[id];
    if (strip && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
    int byte = 0;
    if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>' &&
        absl::SimpleHexAtoi(piece.substr(3, 2), &byte)) {
      out->push_back(static_cast<char>(byte));
      context->emitted = true;
      return;
    }
    out->append(piece.data(), piece.size());
    context->emitted = context->emitted || !piece.empty();
  }

 protected:
  absl::Status EncodeText(absl::string_view text, std::vector<int32_t>* ids) const override {
    if (text.empty()) return absl::OkStatus();
    std::vector<int32_t> symbols;
    symbols.reserve(text.size() + 1);
    // The dummy prefix is the code point " ", offset -1 in errors.
    if (absl::Status s = AddCodePoint(" ", -1, &symbols); !s.ok()) return s;
    for (size_t i = 0; i < text.size();) {
      const int len = Utf8SequenceLength(text, i);  // text is valid UTF-8 (checked by Encode)
      if (absl::Status s = AddCodePoint(text.substr(i, len), static_cast<int64_t>(i), &symbols);
          !s.ok()) {
        return s;
      }
      i += len;
    }
    std::string joined;
    MergePairs(&symbols, [&](int32_t a, int32_t b, double* priority, int32_t* merged) {
      joined.assign(pieces_[a]);
      joined.append(pieces_[b]);
      const auto it = ids_.find(joined);
      if (it == ids_.end() || !(scores_[it->second] > kNoMergeScore)) return false;
      *priority = -static_cast<double>(scores_[it->second]);
      *merged = it->second;
      return true;
    });
    ids->insert(ids->end(), symbols.begin(), symbols.end());
    return absl::OkStatus();
  }

 private:
  absl::Status AddCodePoint(absl::string_view cp, int64_t offset,
                            std::vector<int32_t>* symbols) const {
    const auto it = ids_.find(std::string(cp));
    if (it != ids_.end()) {
      symbols->push_back(it->second);
      return absl::OkStatus();
    }
    for (size_t k = 0; k < cp.size(); ++k) {
      const int32_t id = static_cast<unsigned char>(cp[k]) + kByteOffset;
      if (id >= vocab_size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "text: the byte at offset ", offset < 0 ? offset : offset + static_cast<int64_t>(k),
            " is not in the llama2.c vocabulary and its byte-fallback id ", id, " is outside it (",
            vocab_size(), ")"));
      }
      symbols->push_back(id);
    }
    return absl::OkStatus();
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
};

class Reader {
 public:
  Reader(absl::string_view bytes, absl::string_view source) : bytes_(bytes), source_(source) {}
  bool done() const { return offset_ == bytes_.size(); }
  size_t offset() const { return offset_; }
  absl::Status Read(void* out, size_t n, absl::string_view field) {
    if (bytes_.size() - offset_ < n) {
      return Error(field, absl::StrCat("truncated (needs ", n, " bytes, ", bytes_.size() - offset_,
                                       " left)"));
    }
    std::memcpy(out, bytes_.data() + offset_, n);
    offset_ += n;
    return absl::OkStatus();
  }
  absl::Status Error(absl::string_view field, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("llama2.c tokenizer ", source_, ": ", field,
                                                   " at byte offset ", offset_, ": ", what));
  }

 private:
  absl::string_view bytes_;
  absl::string_view source_;
  size_t offset_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(absl::string_view bytes,
                                                                absl::string_view source) {
  Reader r(bytes, source);
  int32_t max_len = 0;
  if (absl::Status s = r.Read(&max_len, 4, "max_token_length"); !s.ok()) return s;
  if (max_len < 1 || max_len > kMaxTokenBytes) {
    return r.Error("max_token_length", absl::StrCat(max_len, " is outside 1 .. ", kMaxTokenBytes));
  }
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (!r.done()) {
    const std::string field = absl::StrCat("token ", pieces.size());
    if (static_cast<int64_t>(pieces.size()) >= kMaxVocab) {
      return r.Error(field, absl::StrCat("more than ", kMaxVocab, " tokens"));
    }
    float score = 0;
    int32_t len = 0;
    if (absl::Status s = r.Read(&score, 4, field + " score"); !s.ok()) return s;
    if (!std::isfinite(score)) return r.Error(field + " score", "not a finite number");
    if (absl::Status s = r.Read(&len, 4, field + " length"); !s.ok()) return s;
    if (len < 0 || len > max_len) {
      return r.Error(field + " length",
                     absl::StrCat(len, " is outside 0 .. max_token_length (", max_len, ")"));
    }
    std::string piece(len, '\0');
    if (absl::Status s = r.Read(piece.data(), len, field + " bytes"); !s.ok()) return s;
    pieces.push_back(std::move(piece));
    scores.push_back(score);
  }
  if (pieces.size() < 3) {
    return r.Error("tokens", absl::StrCat("the file has ", pieces.size(),
                                          " tokens; llama2.c needs at least <unk>, bos, eos"));
  }
  return std::unique_ptr<Tokenizer>(new Llama2cTokenizer(std::move(pieces), std::move(scores)));
}

}  // namespace anerd::tokenizer
