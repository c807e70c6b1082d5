// A narrow wrapper of libsentencepiece's SentencePieceProcessor. sentencepiece_processor.h
// declares `namespace absl { using std::string_view; }`, which clashes with Debian's Abseil
// (its own absl::string_view class), so that header is included by spm_shim.cc alone and this
// interface uses std types only — never include Abseil here or in spm_shim.cc.
//
// Thread-safety: a loaded SpModel is immutable; its const methods are safe from any thread.
#ifndef ANERD_COMMON_TOKENIZER_SPM_SHIM_H_
#define ANERD_COMMON_TOKENIZER_SPM_SHIM_H_

#include <memory>
#include <string>
#include <vector>

namespace anerd::tokenizer::spm {

class SpModel {
 public:
  // Parses a serialized ModelProto; nullptr with *error set when libsentencepiece refuses it.
  static std::unique_ptr<SpModel> Load(const std::string& bytes, std::string* error);
  ~SpModel();

  int size() const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;
  int unk_id() const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  bool IsByte(int id) const;
  std::string Piece(int id) const;
  // false with *error set on failure.
  bool Encode(const std::string& text, std::vector<int>* ids, std::string* error) const;
  std::string Decode(const std::vector<int>& ids) const;

 private:
  struct Impl;
  explicit SpModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace anerd::tokenizer::spm

#endif  // ANERD_COMMON_TOKENIZER_SPM_SHIM_H_
