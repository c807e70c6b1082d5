#include "server/backend/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/fp16.h"

namespace anerd::backend {
namespace {

template <typename T>
T Load(const void* data, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const char*>(data) + i * sizeof(T), sizeof(T));
  return v;
}

template <typename T>
void Store(void* data, int64_t i, T v) {
  std::memcpy(static_cast<char*>(data) + i * sizeof(T), &v, sizeof(T));
}

template <typename T>
T SaturateInt(double v) {
  if (std::isnan(v)) return 0;
  const double r = std::nearbyint(v);  // default rounding mode: half to even
  if (r <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
  if (r >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(r);
}

}  // namespace

Tensor::Tensor(mil::TensorType type)
    : type_(std::move(type)), bytes_(static_cast<size_t>(type_.NumBytes()), '\0') {}

absl::StatusOr<Tensor> Tensor::FromBytes(mil::TensorType type, std::string bytes) {
  if (type.dtype == mil::DType::kString) {
    return absl::InvalidArgumentError("string tensors have no byte representation");
  }
  if (static_cast<int64_t>(bytes.size()) != type.NumBytes()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", type.ToString(), " needs ",
                                                   type.NumBytes(), " bytes, got ", bytes.size()));
  }
  Tensor t;
  t.type_ = std::move(type);
  t.bytes_ = std::move(bytes);
  return t;
}

Tensor Tensor::FromFloats(mil::DType dtype, std::vector<int64_t> shape,
                          absl::Span<const float> values) {
  Tensor t(mil::TensorType{dtype, std::move(shape)});
  const int64_t n = std::min<int64_t>(t.num_elements(), values.size());
  for (int64_t i = 0; i < n; ++i) StoreElement(dtype, t.mutable_data(), i, values[i]);
  return t;
}

Tensor Tensor::FromInt32(std::vector<int64_t> shape, absl::Span<const int32_t> values) {
  Tensor t(mil::TensorType{mil::DType::kInt32, std::move(shape)});
  const int64_t n = std::min<int64_t>(t.num_elements(), values.size());
  std::memcpy(t.mutable_data(), values.data(), n * sizeof(int32_t));
  return t;
}

std::vector<float> Tensor::ToFloats() const {
  std::vector<float> out(num_elements());
  if (dtype() == mil::DType::kFp16) {
    HalfToFloatArray(reinterpret_cast<const uint16_t*>(data()), out.data(), out.size());
    return out;
  }
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<float>(LoadElement(dtype(), data(), i));
  return out;
}

std::vector<double> Tensor::ToDoubles() const {
  std::vector<double> out(num_elements());
  for (size_t i = 0; i < out.size(); ++i) out[i] = LoadElement(dtype(), data(), i);
  return out;
}

double LoadElement(mil::DType dtype, const void* data, int64_t i) {
  switch (dtype) {
    case mil::DType::kFp16:
      return HalfToFloat(Load<uint16_t>(data, i));
    case mil::DType::kFp32:
      return Load<float>(data, i);
    case mil::DType::kInt32:
      return Load<int32_t>(data, i);
    case mil::DType::kInt16:
      return Load<int16_t>(data, i);
    case mil::DType::kInt8:
      return Load<int8_t>(data, i);
    case mil::DType::kUInt8:
      return Load<uint8_t>(data, i);
    case mil::DType::kUInt64:
      return static_cast<double>(Load<uint64_t>(data, i));
    case mil::DType::kBool:
      return Load<uint8_t>(data, i) != 0 ? 1.0 : 0.0;
    case mil::DType::kString:
      return 0;
  }
  return 0;
}

void StoreElement(mil::DType dtype, void* data, int64_t i, double value) {
  switch (dtype) {
    case mil::DType::kFp16:
      return Store(data, i, FloatToHalf(static_cast<float>(value)));
    case mil::DType::kFp32:
      return Store(data, i, static_cast<float>(value));
    case mil::DType::kInt32:
      return Store(data, i, SaturateInt<int32_t>(value));
    case mil::DType::kInt16:
      return Store(data, i, SaturateInt<int16_t>(value));
    case mil::DType::kInt8:
      return Store(data, i, SaturateInt<int8_t>(value));
    case mil::DType::kUInt8:
      return Store(data, i, SaturateInt<uint8_t>(value));
    case mil::DType::kUInt64:
      return Store(data, i, static_cast<uint64_t>(value < 0 ? 0 : std::nearbyint(value)));
    case mil::DType::kBool:
      return Store(data, i, static_cast<uint8_t>(value != 0));
    case mil::DType::kString:
      return;
  }
}

}  // namespace anerd::backend
