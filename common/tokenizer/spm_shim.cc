// No Abseil in this file (see spm_shim.h).
#include "common/tokenizer/spm_shim.h"

#include <sentencepiece_processor.h>

namespace anerd::tokenizer::spm {

struct SpModel::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

SpModel::SpModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpModel::~SpModel() = default;

std::unique_ptr<SpModel> SpModel::Load(const std::string& bytes, std::string* error) {
  auto impl = std::make_unique<Impl>();
  const sentencepiece::util::Status s = impl->processor.LoadFromSerializedProto(bytes);
  if (!s.ok()) {
    *error = s.ToString();
    return nullptr;
  }
  return std::unique_ptr<SpModel>(new SpModel(std::move(impl)));
}

int SpModel::size() const { return impl_->processor.GetPieceSize(); }
int SpModel::bos_id() const { return impl_->processor.bos_id(); }
int SpModel::eos_id() const { return impl_->processor.eos_id(); }
int SpModel::unk_id() const { return impl_->processor.unk_id(); }
bool SpModel::IsControl(int id) const { return impl_->processor.IsControl(id); }
bool SpModel::IsUnknown(int id) const { return impl_->processor.IsUnknown(id); }
bool SpModel::IsByte(int id) const { return impl_->processor.IsByte(id); }
std::string SpModel::Piece(int id) const { return impl_->processor.IdToPiece(id); }

bool SpModel::Encode(const std::string& text, std::vector<int>* ids, std::string* error) const {
  const sentencepiece::util::Status s = impl_->processor.Encode(text, ids);
  if (!s.ok()) {
    *error = s.ToString();
    return false;
  }
  return true;
}

std::string SpModel::Decode(const std::vector<int>& ids) const {
  std::string text;
  impl_->processor.Decode(ids, &text).IgnoreError();
  return text;
}

}  // namespace anerd::tokenizer::spm
