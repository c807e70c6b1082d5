// The byte-level tokenizer: token = byte value (0..255), the ids of server/training/data.h's text
// data. Any bytes encode; decoding assembles them into UTF-8 (tokenizer.h).
#include "absl/strings/ascii.h"
#include "common/tokenizer/kinds.h"

namespace anerd::tokenizer {
namespace {

class ByteTokenizer : public Tokenizer {
 public:
  absl::string_view kind() const override { return "byte"; }
  int32_t vocab_size() const override { return 256; }
  int32_t bos_id() const override { return -1; }
  int32_t eos_id() const override { return -1; }
  bool IsSpecial(int32_t) const override { return false; }
  bool AcceptsAnyBytes() const override { return true; }
  void AppendTokenBytes(int32_t id, DecodeContext* context, std::string* out) const override {
    out->push_back(static_cast<char>(id));
    context->prev = id;
    context->emitted = true;
  }

 protected:
  absl::Status EncodeText(absl::string_view text, std::vector<int32_t>* ids) const override {
    ids->reserve(ids->size() + text.size());
    for (char c : text) ids->push_back(static_cast<unsigned char>(c));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Tokenizer> MakeByteTokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace anerd::tokenizer
