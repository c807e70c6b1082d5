// NumPy .npy files (format versions 1.0 and 2.0), C order only.
//
// Supported dtypes (descr strings, exactly as NumPy writes them): "<f2" (fp16), "<f4" (fp32),
// "<i4" (int32), "<i2" (int16), "|i1" (int8), "|u1" (uint8), "|b1" (bool, one byte 0/1).
// Everything else is rejected with INVALID_ARGUMENT naming the problem: Fortran order, big-endian
// descrs, object arrays, structured dtypes, unknown dtypes, malformed headers, headers longer than
// kMaxNpyHeaderBytes, negative or overflowing shapes, and a data section whose size differs from
// what the shape implies. Sizes are checked before anything is allocated.
//
// Thread-safety: pure functions; safe from any thread.
#ifndef ANERD_COMMON_NPY_H_
#define ANERD_COMMON_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd {

// An array as stored in a .npy file.
struct NpyArray {
  std::string descr;           // one of the supported descrs above, e.g. "<f4"
  std::vector<int64_t> shape;  // empty = a scalar (one element)
  std::string data;            // raw little-endian element bytes, C order
};

// Longest header (the Python dict literal, padding included) accepted when parsing.
inline constexpr int64_t kMaxNpyHeaderBytes = 64 * 1024;
// Most dimensions accepted (NumPy's own limit).
inline constexpr int kMaxNpyDims = 64;

// Bytes per element of a supported descr, or 0 for an unsupported one.
int64_t NpyItemSize(absl::string_view descr);

// OK when `array` has a supported descr, non-negative dims and data.size() equal to the element
// count times the item size; INVALID_ARGUMENT naming the problem otherwise.
absl::Status ValidateNpyArray(const NpyArray& array);

// Parses a whole .npy file image. `max_data_bytes` bounds the data section (INVALID_ARGUMENT
// naming the limit when the header declares more).
absl::StatusOr<NpyArray> ParseNpy(absl::string_view bytes,
                                  int64_t max_data_bytes = int64_t{1} << 32);

// Serialises `array`, which must satisfy ValidateNpyArray (checked by WriteNpyFile; here a
// precondition). Writes version 1.0, or 2.0 when the header does not fit 1.0's 16-bit length; the
// header is space-padded and newline-terminated so the data starts at a multiple of 64 bytes.
std::string SerializeNpy(const NpyArray& array);

// Reads and parses `path`. NOT_FOUND if it is missing; the file size is bounded by
// max_data_bytes plus the largest header before it is read; parse errors name the path.
absl::StatusOr<NpyArray> ReadNpyFile(const std::string& path,
                                     int64_t max_data_bytes = int64_t{1} << 32);

// Validates and writes `array` to `path` atomically (temporary file, fsync, rename).
absl::Status WriteNpyFile(const std::string& path, const NpyArray& array);

}  // namespace anerd

#endif  // ANERD_COMMON_NPY_H_
