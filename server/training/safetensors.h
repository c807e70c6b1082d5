// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
// {"<tensor name>": {"dtype": "F32"|"F16"|"BF16", "shape": [..], "data_offsets": [begin, end]},
// ..., "__metadata__": {"<key>": "<string>"}}, then the data section; offsets are relative to
// the data section's start, tensors are row-major little-endian.
//
// Every header is checked before any tensor byte is read or allocated: N ≤
// kMaxSafetensorsHeaderBytes and within the file; the JSON is an object (non-throwing parse;
// duplicate names refused); each entry has exactly a known dtype, a shape of at most
// kMaxSafetensorsRank non-negative dims whose element count is ≤ kMaxSafetensorsElements, and
// offsets with begin ≤ end ≤ data-section size and end − begin = elements × dtype size; no two
// tensors overlap (gaps are tolerated). Each violation is INVALID_ARGUMENT "safetensors <file>:
// tensor '<name>': <field>: <why>".
//
// Sharded checkpoints: `model.safetensors.index.json` {"weight_map": {"<tensor>": "<shard file>"}}
// next to the shards; shard names must be plain file names in the same directory.
// Thread-safety: the parse functions are pure; a SafetensorsReader/SafetensorsSet may be read from
// several threads at once (positional reads only).
#ifndef ANERD_SERVER_TRAINING_SAFETENSORS_H_
#define ANERD_SERVER_TRAINING_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/training/file_io.h"

namespace anerd::training {

enum class StDtype { kF32, kF16, kBF16 };

// "F32", "F16", "BF16"; bytes per element 4, 2, 2.
absl::string_view StDtypeName(StDtype dtype);
int64_t StDtypeSize(StDtype dtype);

inline constexpr int64_t kMaxSafetensorsHeaderBytes = int64_t{16} << 20;
inline constexpr int kMaxSafetensorsRank = 8;
inline constexpr int64_t kMaxSafetensorsElements = int64_t{1} << 40;
inline constexpr int64_t kMaxSafetensorsTensors = int64_t{1} << 20;
inline constexpr int64_t kMaxSafetensorsShards = 4096;

struct StTensorInfo {
  StDtype dtype = StDtype::kF32;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // bytes, relative to the data section
  int64_t elements() const;
};

struct StHeader {
  std::map<std::string, StTensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  int64_t data_start = 0;  // file offset of the data section: 8 + N
};

// Parses and checks header JSON `json` for a data section of `data_bytes` bytes. `file` names the
// file in errors. data_start is left 0.
absl::StatusOr<StHeader> ParseSafetensorsHeader(absl::string_view json, int64_t data_bytes,
                                                absl::string_view file);

// Parses the header at the start of a whole file image `bytes` (what the fuzz target feeds).
absl::StatusOr<StHeader> ParseSafetensorsImage(absl::string_view bytes, absl::string_view file);

// One open safetensors file.
class SafetensorsReader {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> Open(const std::string& path);
  const StHeader& header() const { return header_; }
  const std::string& path() const { return file_.path(); }
  // Reads tensor `name`, whose shape must equal `shape`, converted to fp32 into `dst`
  // (elements of `shape`). NOT_FOUND naming the tensor and file when absent; INVALID_ARGUMENT
  // naming both shapes when they differ.
  absl::Status ReadF32(const std::string& name, const std::vector<int64_t>& shape,
                       float* dst) const;

 private:
  InFile file_;
  StHeader header_;
};

// The tensors of a checkpoint directory: `model.safetensors.index.json` and its shards when the
// index exists, else `model.safetensors`.
class SafetensorsSet {
 public:
  static absl::StatusOr<SafetensorsSet> Open(const std::string& dir);
  bool Has(const std::string& name) const { return where_.count(name) != 0; }
  // The info of `name`, or nullptr.
  const StTensorInfo* Find(const std::string& name) const;
  absl::Status ReadF32(const std::string& name, const std::vector<int64_t>& shape,
                       float* dst) const;
  // Every tensor name, sorted.
  std::vector<std::string> Names() const;

 private:
  std::vector<std::shared_ptr<SafetensorsReader>> shards_;
  std::map<std::string, const SafetensorsReader*> where_;
};

// One tensor to write: fp32 values stored as `dtype` (round to nearest even for F16/BF16).
struct StWriteTensor {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // elements of `shape`; not owned
};

// Writes a safetensors file atomically (temporary, fsync, rename), tensors in the given order, the
// header space-padded to a multiple of 8 bytes. INVALID_ARGUMENT for duplicate or empty names.
absl::Status WriteSafetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                              const std::map<std::string, std::string>& metadata);

// bfloat16 conversions (round to nearest even; NaN stays NaN).
uint16_t FloatToBf16(float f);
float Bf16ToFloat(uint16_t b);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_SAFETENSORS_H_
