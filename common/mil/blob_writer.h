// Writing MIL weight-blob files (format: blob_file.h, docs/ANE_NOTES.md §2) and the int8
// quantisation helpers the probes and generators use.
//
// Every file written here is spec-correct: storage header {count = entries, version 2}, and per
// entry a 64-byte metadata record {0xDEADBEEF, real dtype code (Int8 = 4), u64 size in bytes,
// u64 absolute data offset = record offset + 64} followed by the data, zero-padded so the next
// record starts 64-byte aligned. The BLOBFILE offset of an entry is its record's offset (64 for
// the first entry).
// Thread-safety: BlobWriter is a plain value (not synchronised); the free functions are pure.
#ifndef ANERD_COMMON_MIL_BLOB_WRITER_H_
#define ANERD_COMMON_MIL_BLOB_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/mil/blob_file.h"

namespace anerd::mil {

class BlobWriter {
 public:
  BlobWriter();

  // Appends one entry holding `data` (raw little-endian element bytes of `dtype`) and returns the
  // offset of its metadata record, i.e. the value for BLOBFILE(offset = uint64(...)).
  uint64_t Add(BlobDType dtype, absl::string_view data);
  uint64_t AddFp16Bits(absl::Span<const uint16_t> bits);
  // Converts to fp16 (round-to-nearest-even, common/fp16.h).
  uint64_t AddFp16(absl::Span<const float> values);
  uint64_t AddFp32(absl::Span<const float> values);
  uint64_t AddInt8(absl::Span<const int8_t> values);
  uint64_t AddUInt8(absl::Span<const uint8_t> values);

  uint32_t count() const { return count_; }
  // The complete file so far (header count included). Can be called repeatedly.
  const std::string& bytes() const { return bytes_; }
  // Moves the file out; the writer is left empty (no header) and must not be reused.
  std::string Release() && { return std::move(bytes_); }

 private:
  std::string bytes_;
  uint32_t count_ = 0;
};

// One-entry files (BLOBFILE offset 64).
std::string BuildFp16Blob(absl::Span<const float> values);
std::string BuildFp32Blob(absl::Span<const float> values);
std::string BuildInt8Blob(absl::Span<const int8_t> values);

// Symmetric int8 quantisation: q = clamp(round_half_even(x / scale), -127, 127), dequantised as
// q * scale (zero point 0). Scales are max|x| / 127 rounded to fp16 so that a MIL `fp16` scale
// literal holds them exactly; an all-zero (or empty) block gets scale 1.
struct Int8Quantized {
  std::vector<int8_t> data;
  std::vector<float> scales;  // one (per-tensor) or one per channel
};
Int8Quantized QuantizeInt8PerTensor(absl::Span<const float> values);
// Per channel along axis 0: `values` holds `channels` equal contiguous blocks (row-major
// [channels, ...]). INVALID_ARGUMENT unless channels > 0 divides values.size().
absl::StatusOr<Int8Quantized> QuantizeInt8PerChannel(absl::Span<const float> values,
                                                     int64_t channels);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_BLOB_WRITER_H_
