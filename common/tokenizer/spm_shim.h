// A narrow wrapper of libsentencepiece's SentencePieceProcessor, run in the SentencePiece module
// (spm_module/spm_module.h: libanerd_spm, the only binary that links libsentencepiece, loaded on
// first use with dlopen so that libsentencepiece's bundled protobuf stays apart from the
// libprotobuf anerd and anectl link; see there). Uses std types only.
//
// The module is looked for, in order: next to the running executable, in ../lib/anerd/ from it
// (an installed layout), then in the build tree it was built in (tests).
//
// Thread-safety: a loaded SpModel is immutable; its const methods are safe from any thread. Load
// may be called from any thread (the module is loaded once, never unloaded).
#ifndef ANERD_COMMON_TOKENIZER_SPM_SHIM_H_
#define ANERD_COMMON_TOKENIZER_SPM_SHIM_H_

#include <memory>
#include <string>
#include <vector>

namespace anerd::tokenizer::spm {

class SpModel {
 public:
  // Parses a serialized ModelProto; nullptr with *error set when libsentencepiece refuses it,
  // or *unavailable set (and *error saying why) when the module cannot be loaded.
  static std::unique_ptr<SpModel> Load(const std::string& bytes, std::string* error,
                                       bool* unavailable);
  ~SpModel();
  SpModel(const SpModel&) = delete;
  SpModel& operator=(const SpModel&) = delete;

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

  struct Module;  // the loaded module's entry points (spm_shim.cc)

 private:
  SpModel(const Module* module, void* model) : module_(module), model_(model) {}

  const Module* module_;  // not owned; lives as long as the process
  void* model_;           // owned; freed through the module
};

}  // namespace anerd::tokenizer::spm

#endif  // ANERD_COMMON_TOKENIZER_SPM_SHIM_H_
