// Fuzzes the weight-blob reader: ReadBlobRecord and ResolveBlob on arbitrary file bytes. The first
// 8 input bytes choose the metadata offset and the declared element count; the rest is the file.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/mil/blob_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace anerd::mil;
  if (size < 8) return 0;
  uint32_t offset = 0, count = 0;
  std::memcpy(&offset, data, 4);
  std::memcpy(&count, data + 4, 4);
  std::string file(reinterpret_cast<const char*>(data + 8), size - 8);
  (void)ReadBlobRecord(file, offset);
  (void)ReadBlobRecord(file, static_cast<uint64_t>(offset) << 32 | count);

  WeightFiles weights;
  if (!weights.Add("weights/w.bin", file).ok()) return 0;
  const DType dtypes[] = {DType::kFp16, DType::kFp32, DType::kInt8, DType::kUInt8, DType::kInt32};
  TensorType declared{dtypes[count % 5], {static_cast<int64_t>(count >> 3), 1}};
  std::vector<Diagnostic> warnings;
  auto bytes =
      ResolveBlob(weights, BlobRef{"@model_path/weights/w.bin", offset}, declared, &warnings);
  if (bytes.ok() && bytes->size() != static_cast<size_t>(declared.NumBytes())) __builtin_trap();
  return 0;
}
