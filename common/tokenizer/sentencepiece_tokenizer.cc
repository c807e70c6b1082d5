// SentencePiece .model through libsentencepiece (spm_shim.h). Encoding is libsentencepiece's
// own; decoding renders each id as SentencePiece does — control ids render nothing, byte pieces
// <0xXX> their byte, the unknown id the model's unknown surface, other pieces with U+2581 as a
// space, the first non-control piece without its leading space when the model adds a dummy prefix —
// so that it can stream (tokenizer.h).
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/tokenizer/kinds.h"
#include "common/tokenizer/spm_shim.h"

namespace anerd::tokenizer {
namespace {

constexpr absl::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(std::unique_ptr<spm::SpModel> model, std::string source)
      : model_(std::move(model)), source_(std::move(source)) {
    const int n = model_->size();
    rendered_.resize(n);
    kind_.resize(n, kNormal);
    for (int id = 0; id < n; ++id) {
      const std::string piece = model_->Piece(id);
      if (model_->IsControl(id)) {
        kind_[id] = kControl;
      } else if (model_->IsUnknown(id)) {
        kind_[id] = kUnknown;
        rendered_[id] = model_->Decode({id});
      } else if (model_->IsByte(id) && piece.size() == 6 && absl::StartsWith(piece, "<0x")) {
        int value = 0;
        absl::SimpleHexAtoi(absl::string_view(piece).substr(3, 2), &value);
        kind_[id] = kByte;
        rendered_[id] = std::string(1, static_cast<char>(value));
      } else {
        rendered_[id] = absl::StrReplaceAll(piece, {{kSpaceSymbol, " "}});
      }
    }
    // Whether decoding drops the first piece's leading space (add_dummy_prefix or
    // remove_extra_whitespaces in the normalizer spec, which the shim cannot read): ask the
    // library with a normal piece that starts with U+2581.
    for (int id = 0; id < n; ++id) {
      if (kind_[id] == kNormal && rendered_[id].size() > 1 && rendered_[id][0] == ' ') {
        strip_first_space_ = model_->Decode({id}) == rendered_[id].substr(1);
        break;
      }
    }
  }

  absl::string_view kind() const override { return "sentencepiece"; }
  int32_t vocab_size() const override { return static_cast<int32_t>(rendered_.size()); }
  int32_t bos_id() const override { return model_->bos_id(); }
  int32_t eos_id() const override { return model_->eos_id(); }
  bool IsSpecial(int32_t id) const override { return kind_[id] == kControl; }

  void AppendTokenBytes(int32_t id, DecodeContext* context, std::string* out) const override {
    absl::string_view bytes = rendered_[id];
    if (kind_[id] == kNormal && !context->emitted && strip_first_space_) {
      absl::ConsumePrefix(&bytes, " ");
    }
    out->append(bytes.data(), bytes.size());
    context->prev = id;
    // Only the first piece after the controls can be the dummy prefix (even when it renders
    // to nothing: a lone U+2581).
    if (kind_[id] != kControl) context->emitted = true;
  }

 protected:
  absl::Status EncodeText(absl::string_view text, std::vector<int32_t>* ids) const override {
    std::vector<int> out;
    std::string error;
    if (!model_->Encode(std::string(text), &out, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("SentencePiece model ", source_, " cannot encode the text: ", error));
    }
    ids->insert(ids->end(), out.begin(), out.end());
    return absl::OkStatus();
  }

 private:
  enum PieceKind : uint8_t { kNormal, kControl, kUnknown, kByte };
  std::unique_ptr<spm::SpModel> model_;
  std::string source_;
  std::vector<std::string> rendered_;  // bytes of each id (before the first-space rule)
  std::vector<PieceKind> kind_;
  bool strip_first_space_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceTokenizer(absl::string_view bytes,
                                                                      absl::string_view source) {
  std::string error;
  bool unavailable = false;
  std::unique_ptr<spm::SpModel> model =
      spm::SpModel::Load(std::string(bytes), &error, &unavailable);
  if (unavailable) {
    return absl::FailedPreconditionError(
        absl::StrCat("SentencePiece model ", source, " cannot be loaded here: ", error));
  }
  if (model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("SentencePiece model ", source, " is malformed: ", error));
  }
  if (model->size() <= 0 || model->size() > kMaxVocab) {
    return absl::InvalidArgumentError(absl::StrCat("SentencePiece model ", source, " has ",
                                                   model->size(), " pieces; expected 1 .. ",
                                                   kMaxVocab));
  }
  return std::unique_ptr<Tokenizer>(
      new SentencePieceTokenizer(std::move(model), std::string(source)));
}

}  // namespace anerd::tokenizer
