#include "common/mil/blob_file.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anerd::mil {
namespace {

uint32_t LoadU32(absl::string_view file, uint64_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(file[at + i]);
  return v;
}

uint64_t LoadU64(absl::string_view file, uint64_t at) {
  return (static_cast<uint64_t>(LoadU32(file, at + 4)) << 32) | LoadU32(file, at);
}

// a + b, or nullopt on unsigned overflow.
std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  if (a > std::numeric_limits<uint64_t>::max() - b) return std::nullopt;
  return a + b;
}

std::string Where(const BlobRef& ref) {
  return absl::StrCat("weight file \"", ref.path, "\" offset ", ref.offset);
}

absl::Status Invalid(const BlobRef& ref, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(Where(ref), ": ", why));
}

void Warn(std::vector<Diagnostic>* warnings, const BlobRef& ref, absl::string_view why) {
  if (warnings == nullptr) return;
  Diagnostic d;
  d.severity = Diagnostic::Severity::kWarning;
  d.message = absl::StrCat(Where(ref), ": ", why);
  warnings->push_back(std::move(d));
}

// Byte count of `type`, or nullopt when a dim is negative or the product overflows.
std::optional<uint64_t> DeclaredBytes(const TensorType& type) {
  uint64_t bytes = static_cast<uint64_t>(DTypeSize(type.dtype));
  for (int64_t dim : type.shape) {
    if (dim < 0) return std::nullopt;
    const auto d = static_cast<uint64_t>(dim);
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / d) return std::nullopt;
    bytes *= d;
  }
  return bytes;
}

absl::Status CheckStorageHeader(absl::string_view file, const BlobRef& ref) {
  if (file.size() < kBlobHeaderSize) return Invalid(ref, "file shorter than the storage header");
  const uint32_t count = LoadU32(file, 0);
  const uint32_t version = LoadU32(file, 4);
  if (version != kBlobVersion) {
    return Invalid(ref, absl::StrCat("storage version ", version, ", expected 2"));
  }
  if (count == 0) return Invalid(ref, "storage header declares no entries");
  const uint64_t max_entries = (file.size() - kBlobHeaderSize) / kBlobMetadataSize;
  if (count > max_entries) {
    return Invalid(ref, absl::StrCat("storage header declares ", count,
                                     " entries, more than the file can hold"));
  }
  return absl::OkStatus();
}

// Where the entry's data starts (see the rules in blob_file.h).
absl::StatusOr<uint64_t> DataOffset(const BlobRecord& record, const BlobRef& ref,
                                    std::vector<Diagnostic>* warnings) {
  const uint64_t after_record = record.metadata_offset + kBlobMetadataSize;
  if (record.data_offset == 0) {
    Warn(warnings, ref, "data offset unset; reading the data right after the metadata record");
    return after_record;
  }
  if (record.data_offset % kBlobAlignment != 0 || record.data_offset < after_record) {
    return Invalid(ref, absl::StrCat("data offset ", record.data_offset,
                                     " is misaligned or overlaps the metadata record"));
  }
  return record.data_offset;
}

}  // namespace

std::optional<BlobDType> BlobDTypeFor(DType dtype) {
  switch (dtype) {
    case DType::kFp16:
      return BlobDType::kFp16;
    case DType::kFp32:
      return BlobDType::kFp32;
    case DType::kUInt8:
      return BlobDType::kUInt8;
    case DType::kInt8:
      return BlobDType::kInt8;
    default:
      return std::nullopt;
  }
}

absl::StatusOr<BlobRecord> ReadBlobRecord(absl::string_view file, uint64_t metadata_offset) {
  const std::optional<uint64_t> end = CheckedAdd(metadata_offset, kBlobMetadataSize);
  if (!end.has_value() || *end > file.size()) {
    return absl::InvalidArgumentError(absl::StrCat("blob metadata at offset ", metadata_offset,
                                                   " lies past the end of the ", file.size(),
                                                   "-byte file"));
  }
  const uint32_t sentinel = LoadU32(file, metadata_offset);
  if (sentinel != kBlobSentinel) {
    return absl::InvalidArgumentError(absl::StrCat("blob metadata at offset ", metadata_offset,
                                                   " has sentinel 0x", absl::Hex(sentinel),
                                                   ", expected 0xdeadbeef"));
  }
  BlobRecord record;
  record.metadata_offset = metadata_offset;
  record.dtype_code = LoadU32(file, metadata_offset + 4);
  record.size_bytes = LoadU64(file, metadata_offset + 8);
  record.data_offset = LoadU64(file, metadata_offset + 16);
  return record;
}

absl::StatusOr<absl::string_view> ResolveBlob(const WeightFiles& weights, const BlobRef& ref,
                                              const TensorType& declared,
                                              std::vector<Diagnostic>* warnings) {
  const std::string* bytes = weights.Find(ref.path);
  if (bytes == nullptr) return Invalid(ref, "weight file not supplied");
  const absl::string_view file(*bytes);
  ANERD_RETURN_IF_ERROR(CheckStorageHeader(file, ref));
  if (ref.offset < kBlobHeaderSize || ref.offset % kBlobAlignment != 0) {
    return Invalid(ref, "metadata offset must be a multiple of 64 past the storage header");
  }
  auto record = ReadBlobRecord(file, ref.offset);
  if (!record.ok()) return Invalid(ref, record.status().message());
  const std::optional<BlobDType> code = BlobDTypeFor(declared.dtype);
  if (!code.has_value()) {
    return Invalid(
        ref, absl::StrCat("dtype ", DTypeName(declared.dtype), " has no weight-blob encoding"));
  }
  const std::optional<uint64_t> want = DeclaredBytes(declared);
  if (!want.has_value()) return Invalid(ref, "declared tensor size overflows");

  ANERD_ASSIGN_OR_RETURN(const uint64_t data, DataOffset(*record, ref, warnings));
  const std::optional<uint64_t> end = CheckedAdd(data, *want);
  if (!end.has_value() || *end > file.size()) {
    return Invalid(ref,
                   absl::StrCat(declared.ToString(), " (", *want, " bytes at data offset ", data,
                                ") extends past the end of the ", file.size(), "-byte file"));
  }
  if (record->size_bytes != *want) {
    Warn(warnings, ref,
         absl::StrCat("record size ", record->size_bytes, " bytes differs from the ", *want,
                      " bytes of ", declared.ToString()));
  }
  if (record->dtype_code != static_cast<uint32_t>(*code)) {
    Warn(warnings, ref,
         absl::StrCat("record dtype code ", record->dtype_code, " differs from ",
                      DTypeName(declared.dtype), " (code ", static_cast<uint32_t>(*code), ")"));
  }
  return file.substr(data, *want);
}

}  // namespace anerd::mil
