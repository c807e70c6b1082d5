// The C interface of the SentencePiece module (libanerd_spm.so / libanerd_spm.dylib), the only
// binary that links libsentencepiece. spm_shim.cc loads it with dlopen and calls it through these
// functions; nothing else includes this header.
//
// Why a module: libsentencepiece bundles and exports its own copy of protobuf (3.14 on Debian 12).
// Linked into a process that also holds libprotobuf (anerd, anectl: gRPC), the dynamic linker
// binds both libraries' protobuf references to whichever copy comes first in the global scope, so
// one of them runs the other's code: libprotobuf's initialisers crash at start-up, or
// libsentencepiece's generated code aborts on protobuf's version check. Loaded with
// RTLD_LOCAL | RTLD_DEEPBIND (Linux; macOS's two-level namespace binds each library to the one it
// was linked against), libsentencepiece's references resolve to its own copy first and its
// symbols never enter the global scope. See docs/ARCHITECTURE.md (process model).
//
// The boundary is C: plain pointers and sizes in, callbacks out, so no C++ object, allocation or
// exception crosses it. Every function is safe from any thread for a loaded model (const use);
// anerd_spm_free must not race other calls on the same model.
#ifndef ANERD_COMMON_TOKENIZER_SPM_MODULE_SPM_MODULE_H_
#define ANERD_COMMON_TOKENIZER_SPM_MODULE_SPM_MODULE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Raised whenever a function's meaning changes; the loader refuses a module of another version.
#define ANERD_SPM_ABI_VERSION 1

// Receives bytes (an error message, a piece, decoded text) or, for anerd_spm_ids_sink, ids.
typedef void (*anerd_spm_bytes_sink)(void* context, const char* data, size_t size);
typedef void (*anerd_spm_ids_sink)(void* context, const int32_t* ids, size_t count);

// Piece flags (anerd_spm_piece_flags).
#define ANERD_SPM_CONTROL 1
#define ANERD_SPM_UNKNOWN 2
#define ANERD_SPM_BYTE 4

int anerd_spm_abi_version(void);
// A model from a serialized ModelProto; NULL with the reason sent to `error` when refused.
void* anerd_spm_load(const char* bytes, size_t size, anerd_spm_bytes_sink error, void* context);
void anerd_spm_free(void* model);
int32_t anerd_spm_size(const void* model);
// bos (0), eos (1) or unk (2) id; -1 when the model has none.
int32_t anerd_spm_special_id(const void* model, int which);
// ANERD_SPM_* flags of `id`, 0 for a normal piece; -1 when `id` is out of range.
int anerd_spm_piece_flags(const void* model, int32_t id);
// Sends piece `id` (nothing when out of range).
void anerd_spm_piece(const void* model, int32_t id, anerd_spm_bytes_sink sink, void* context);
// Encodes `text` (sending the ids in one call); 0 with the reason sent to `error` on failure.
int anerd_spm_encode(const void* model, const char* text, size_t size, anerd_spm_ids_sink ids,
                     anerd_spm_bytes_sink error, void* context);
// Decodes `ids` as libsentencepiece does and sends the text (nothing for ids it refuses).
void anerd_spm_decode(const void* model, const int32_t* ids, size_t count,
                      anerd_spm_bytes_sink sink, void* context);

#ifdef __cplusplus
}
#endif

#endif  // ANERD_COMMON_TOKENIZER_SPM_MODULE_SPM_MODULE_H_
