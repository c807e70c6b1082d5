#include "common/mil/blob_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"

namespace anerd::mil {
namespace {

void StoreU32(std::string* out, uint64_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*out)[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void StoreU64(std::string* out, uint64_t at, uint64_t v) {
  StoreU32(out, at, static_cast<uint32_t>(v));
  StoreU32(out, at + 4, static_cast<uint32_t>(v >> 32));
}

template <typename T>
absl::string_view AsBytes(absl::Span<const T> values) {
  return absl::string_view(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Quantises one block with one scale; appends to `out`.
float QuantizeBlock(absl::Span<const float> block, std::vector<int8_t>* out) {
  float max_abs = 0.0f;
  for (float v : block) max_abs = std::max(max_abs, std::fabs(v));
  float scale = max_abs > 0.0f ? RoundToHalf(max_abs / 127.0f) : 1.0f;
  if (scale == 0.0f) scale = HalfToFloat(1);  // max_abs below fp16's smallest subnormal * 127
  for (float v : block) {
    const float q = std::nearbyint(v / scale);  // default rounding mode: half to even
    out->push_back(static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f)));
  }
  return scale;
}

}  // namespace

BlobWriter::BlobWriter() : bytes_(kBlobHeaderSize, '\0') { StoreU32(&bytes_, 4, kBlobVersion); }

uint64_t BlobWriter::Add(BlobDType dtype, absl::string_view data) {
  const uint64_t record = bytes_.size();
  const uint64_t data_offset = record + kBlobMetadataSize;
  bytes_.resize(data_offset, '\0');
  StoreU32(&bytes_, record, kBlobSentinel);
  StoreU32(&bytes_, record + 4, static_cast<uint32_t>(dtype));
  StoreU64(&bytes_, record + 8, data.size());
  StoreU64(&bytes_, record + 16, data_offset);
  bytes_.append(data.data(), data.size());
  const uint64_t padded = (bytes_.size() + kBlobAlignment - 1) / kBlobAlignment * kBlobAlignment;
  bytes_.resize(padded, '\0');
  StoreU32(&bytes_, 0, ++count_);
  return record;
}

uint64_t BlobWriter::AddFp16Bits(absl::Span<const uint16_t> bits) {
  static_assert(sizeof(uint16_t) == 2);
  // Element bytes are little-endian; every supported host is little-endian.
  return Add(BlobDType::kFp16, AsBytes(bits));
}

uint64_t BlobWriter::AddFp16(absl::Span<const float> values) {
  std::vector<uint16_t> bits(values.size());
  FloatToHalfArray(values.data(), bits.data(), values.size());
  return AddFp16Bits(bits);
}

uint64_t BlobWriter::AddFp32(absl::Span<const float> values) {
  return Add(BlobDType::kFp32, AsBytes(values));
}

uint64_t BlobWriter::AddInt8(absl::Span<const int8_t> values) {
  return Add(BlobDType::kInt8, AsBytes(values));
}

uint64_t BlobWriter::AddUInt8(absl::Span<const uint8_t> values) {
  return Add(BlobDType::kUInt8, AsBytes(values));
}

std::string BuildFp16Blob(absl::Span<const float> values) {
  BlobWriter w;
  w.AddFp16(values);
  return std::move(w).Release();
}

std::string BuildFp32Blob(absl::Span<const float> values) {
  BlobWriter w;
  w.AddFp32(values);
  return std::move(w).Release();
}

std::string BuildInt8Blob(absl::Span<const int8_t> values) {
  BlobWriter w;
  w.AddInt8(values);
  return std::move(w).Release();
}

Int8Quantized QuantizeInt8PerTensor(absl::Span<const float> values) {
  Int8Quantized out;
  out.data.reserve(values.size());
  out.scales.push_back(QuantizeBlock(values, &out.data));
  return out;
}

absl::StatusOr<Int8Quantized> QuantizeInt8PerChannel(absl::Span<const float> values,
                                                     int64_t channels) {
  if (channels <= 0 || values.size() % channels != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot split ", values.size(), " values into ", channels, " channels"));
  }
  Int8Quantized out;
  out.data.reserve(values.size());
  const size_t block = values.size() / channels;
  for (int64_t c = 0; c < channels; ++c) {
    out.scales.push_back(QuantizeBlock(values.subspan(c * block, block), &out.data));
  }
  return out;
}

}  // namespace anerd::mil
