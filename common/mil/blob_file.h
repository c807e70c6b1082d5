// The MIL weight-blob file format (Core ML "MIL blob storage", docs/ANE_NOTES.md §2): a 64-byte
// storage header {u32 count; u32 version = 2; 7 x u64 reserved} followed by entries, each a 64-byte
// metadata record {u32 sentinel 0xDEADBEEF; u32 dtype; u64 size_bytes; u64 data_offset (absolute);
// 5 x u64 reserved} and its data, every record 64-byte aligned. Little-endian throughout.
// Pure functions; thread-safe.
#ifndef ANERD_COMMON_MIL_BLOB_FILE_H_
#define ANERD_COMMON_MIL_BLOB_FILE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/mil/diagnostic.h"
#include "common/mil/ir.h"
#include "common/mil/weights.h"

namespace anerd::mil {

inline constexpr uint32_t kBlobSentinel = 0xDEADBEEFu;
inline constexpr uint64_t kBlobAlignment = 64;
inline constexpr uint64_t kBlobHeaderSize = 64;    // storage header
inline constexpr uint64_t kBlobMetadataSize = 64;  // one metadata record
inline constexpr uint32_t kBlobVersion = 2;

// Blob dtype codes.
enum class BlobDType : uint32_t { kFp16 = 1, kFp32 = 2, kUInt8 = 3, kInt8 = 4 };

// The blob encoding of a MIL dtype (fp16, fp32, uint8, int8), or nullopt when it has none.
std::optional<BlobDType> BlobDTypeFor(DType dtype);

// One metadata record as stored in a file.
struct BlobRecord {
  uint64_t metadata_offset = 0;
  uint32_t dtype_code = 0;
  uint64_t size_bytes = 0;
  uint64_t data_offset = 0;
};

// Reads the metadata record at `metadata_offset`: INVALID_ARGUMENT if it lies outside the file or
// the sentinel is wrong.
absl::StatusOr<BlobRecord> ReadBlobRecord(absl::string_view file, uint64_t metadata_offset);

// Resolves a BLOBFILE reference for a constant of type `declared`: returns the declared type's
// bytes. The data starts at the record's data_offset when that is plausible, else right after the
// record (the seed's benchmark files leave it unset); a record whose size or dtype disagrees with
// the declaration adds a warning to `warnings` (may be null). Errors name the file and offset.
//
// Exact rules (all arithmetic overflow-checked):
//  * errors (INVALID_ARGUMENT): file not supplied; file shorter than the 64-byte storage header;
//    storage version != 2; count == 0 or more entries than the file could hold; metadata offset
//    not a multiple of 64, inside the storage header, or its record past end of file; bad sentinel;
//    declared dtype without a blob encoding (only fp16, fp32, uint8, int8 have one); declared byte
//    count overflowing; a non-zero data_offset that is not 64-aligned or lies before the end of the
//    record; the declared bytes extending past end of file.
//  * data offset: the record's data_offset if non-zero, else metadata_offset + 64 (with a warning).
//  * warnings: data_offset == 0; size_bytes != declared bytes; dtype code != the declared dtype's.
// The returned view points into `weights` and lives as long as its file.
absl::StatusOr<absl::string_view> ResolveBlob(const WeightFiles& weights, const BlobRef& ref,
                                              const TensorType& declared,
                                              std::vector<Diagnostic>* warnings);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_BLOB_FILE_H_
