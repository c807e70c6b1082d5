// The SentencePiece module (spm_module.h): libsentencepiece behind a C interface. No Abseil here:
// sentencepiece_processor.h declares `namespace absl { using std::string_view; }`, which clashes
// with Abseil's own absl::string_view. Every entry point catches what libsentencepiece or the
// standard library may throw (std::bad_alloc) so that nothing unwinds through the C boundary.
#include "common/tokenizer/spm_module/spm_module.h"

#include <sentencepiece_processor.h>

#include <exception>
#include <string>
#include <vector>

#define ANERD_SPM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using Processor = sentencepiece::SentencePieceProcessor;

const Processor& Of(const void* model) { return *static_cast<const Processor*>(model); }

void Send(anerd_spm_bytes_sink sink, void* context, const std::string& s) {
  if (sink != nullptr) sink(context, s.data(), s.size());
}

bool InRange(const void* model, int32_t id) { return id >= 0 && id < Of(model).GetPieceSize(); }

}  // namespace

ANERD_SPM_EXPORT int anerd_spm_abi_version(void) { return ANERD_SPM_ABI_VERSION; }

ANERD_SPM_EXPORT void* anerd_spm_load(const char* bytes, size_t size, anerd_spm_bytes_sink error,
                                      void* context) {
  try {
    auto* processor = new Processor();
    const sentencepiece::util::Status s =
        processor->LoadFromSerializedProto(std::string_view(bytes, size));
    if (s.ok()) return processor;
    delete processor;
    Send(error, context, s.ToString());
  } catch (const std::exception& e) {
    Send(error, context, e.what());
  }
  return nullptr;
}

ANERD_SPM_EXPORT void anerd_spm_free(void* model) { delete static_cast<Processor*>(model); }

ANERD_SPM_EXPORT int32_t anerd_spm_size(const void* model) { return Of(model).GetPieceSize(); }

ANERD_SPM_EXPORT int32_t anerd_spm_special_id(const void* model, int which) {
  switch (which) {
    case 0:
      return Of(model).bos_id();
    case 1:
      return Of(model).eos_id();
    case 2:
      return Of(model).unk_id();
    default:
      return -1;
  }
}

ANERD_SPM_EXPORT int anerd_spm_piece_flags(const void* model, int32_t id) {
  if (!InRange(model, id)) return -1;
  const Processor& p = Of(model);
  return (p.IsControl(id) ? ANERD_SPM_CONTROL : 0) | (p.IsUnknown(id) ? ANERD_SPM_UNKNOWN : 0) |
         (p.IsByte(id) ? ANERD_SPM_BYTE : 0);
}

ANERD_SPM_EXPORT void anerd_spm_piece(const void* model, int32_t id, anerd_spm_bytes_sink sink,
                                      void* context) {
  if (!InRange(model, id)) return;
  try {
    Send(sink, context, Of(model).IdToPiece(id));
  } catch (const std::exception&) {
  }
}

ANERD_SPM_EXPORT int anerd_spm_encode(const void* model, const char* text, size_t size,
                                      anerd_spm_ids_sink ids, anerd_spm_bytes_sink error,
                                      void* context) {
  try {
    std::vector<int> out;
    const sentencepiece::util::Status s = Of(model).Encode(std::string_view(text, size), &out);
    if (!s.ok()) {
      Send(error, context, s.ToString());
      return 0;
    }
    static_assert(sizeof(int) == sizeof(int32_t), "ids cross the boundary as int32_t");
    ids(context, reinterpret_cast<const int32_t*>(out.data()), out.size());
    return 1;
  } catch (const std::exception& e) {
    Send(error, context, e.what());
    return 0;
  }
}

ANERD_SPM_EXPORT void anerd_spm_decode(const void* model, const int32_t* ids, size_t count,
                                       anerd_spm_bytes_sink sink, void* context) {
  try {
    const std::vector<int> in(ids, ids + count);
    for (int id : in) {
      if (!InRange(model, id)) return;
    }
    std::string text;
    if (Of(model).Decode(in, &text).ok()) Send(sink, context, text);
  } catch (const std::exception&) {
  }
}
