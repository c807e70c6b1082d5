// Tensor: a dense, row-major, little-endian host tensor that owns its bytes. The unit of data that
// crosses the backend boundary (CompiledProgram::Run) and, later, the service layer. fp16 elements
// are stored as their IEEE binary16 bit patterns (uint16), bool as one byte (0/1). Thread-safety:
// plain value type; concurrent const access is safe.
#ifndef ANERD_SERVER_BACKEND_TENSOR_H_
#define ANERD_SERVER_BACKEND_TENSOR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/mil/ir.h"

namespace anerd::backend {

class Tensor {
 public:
  Tensor() = default;
  // A zero-filled tensor of `type`. The caller bounds the element count first.
  explicit Tensor(mil::TensorType type);
  // Takes `bytes` as the tensor contents; INVALID_ARGUMENT unless bytes.size() == type.NumBytes()
  // and the dtype has a fixed size (not string).
  static absl::StatusOr<Tensor> FromBytes(mil::TensorType type, std::string bytes);
  // Convenience constructors (values converted to the dtype; fp16 rounds to nearest even).
  static Tensor FromFloats(mil::DType dtype, std::vector<int64_t> shape,
                           absl::Span<const float> values);
  static Tensor FromInt32(std::vector<int64_t> shape, absl::Span<const int32_t> values);

  const mil::TensorType& type() const { return type_; }
  mil::DType dtype() const { return type_.dtype; }
  const std::vector<int64_t>& shape() const { return type_.shape; }
  int64_t num_elements() const { return type_.NumElements(); }
  const std::string& bytes() const { return bytes_; }
  std::string& mutable_bytes() { return bytes_; }
  const void* data() const { return bytes_.data(); }
  void* mutable_data() { return bytes_.data(); }

  // Element values converted to float (fp16 decoded exactly; integers/bool converted).
  std::vector<float> ToFloats() const;
  // Element values converted to double (exact for every supported dtype).
  std::vector<double> ToDoubles() const;

 private:
  mil::TensorType type_;
  std::string bytes_;
};

// A tensor with the name of the program input or output it binds to.
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Reads element `i` of raw little-endian data of `dtype` as double / writes it (fp16 rounds RNE,
// integers saturate after rounding half to even). `dtype` must not be string.
double LoadElement(mil::DType dtype, const void* data, int64_t i);
void StoreElement(mil::DType dtype, void* data, int64_t i, double value);

}  // namespace anerd::backend

#endif  // ANERD_SERVER_BACKEND_TENSOR_H_
