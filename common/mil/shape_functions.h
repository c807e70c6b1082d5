// The shape functions of the MIL ops with non-trivial shape rules, public and typed (as XLA's
// ShapeInference): operand types and parameter values in, the output type out, testable without a
// Program or an OpArgs. shape_inference.cc adapts them to the op registry; backends may call them
// to reason about a shape before lowering. Errors are INVALID_ARGUMENT naming the op and the
// offending operand or parameter, without a source location. Pure functions; thread-safe.
#ifndef ANERD_COMMON_MIL_SHAPE_FUNCTIONS_H_
#define ANERD_COMMON_MIL_SHAPE_FUNCTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ir.h"

namespace anerd::mil {

// INVALID_ARGUMENT "WHAT dtypes differ: A vs B" unless a and b share a dtype.
absl::Status CheckSameDType(const TensorType& a, const TensorType& b, absl::string_view what);
// Normalizes a list of distinct axes of a rank-`rank` tensor ("axis A repeated" otherwise).
absl::StatusOr<std::vector<int>> NormalizeAxes(const std::vector<int64_t>& axes, int rank);

struct ConvParams {
  // Per spatial dimension (x rank - 2 of them); unset = 1 each.
  std::optional<std::vector<int64_t>> strides, dilations;
  std::optional<std::vector<int64_t>> pad;  // (lo, hi) per spatial dimension; unset = 0 each
  std::string pad_type = "valid";  // valid, same, same_lower, custom (pad only counts for custom)
  int64_t groups = 1;
};
// conv: x [N, C, spatial...] (rank 3..5), weight [Cout, C/groups, kernel...], bias [Cout] or null.
absl::StatusOr<TensorType> InferConvShape(const TensorType& x, const TensorType& weight,
                                          const ConvParams& params,
                                          const TensorType* bias = nullptr);
// matmul with NumPy batch broadcasting; rank-1 operands are vectors.
absl::StatusOr<TensorType> InferMatmulShape(const TensorType& x, const TensorType& y,
                                            bool transpose_x = false, bool transpose_y = false);
// linear: x [..., K], weight [N, K], bias [N] or null -> [..., N].
absl::StatusOr<TensorType> InferLinearShape(const TensorType& x, const TensorType& weight,
                                            const TensorType* bias = nullptr);
// Elementwise binary ops (add, mul, ...): same dtype, NumPy broadcast shape.
absl::StatusOr<TensorType> InferBroadcastShape(const TensorType& x, const TensorType& y);
// reshape: `shape` may hold one -1 (inferred) and 0s (copy x's dim).
absl::StatusOr<TensorType> InferReshapeShape(const TensorType& x,
                                             const std::vector<int64_t>& shape);
// transpose: out.shape[i] = x.shape[perm[i]] (negative axes allowed).
absl::StatusOr<TensorType> InferTransposeShape(const TensorType& x,
                                               const std::vector<int64_t>& perm);
// reduce_*: `axes` (distinct, negative allowed) dropped, or kept as 1 with keep_dims.
absl::StatusOr<TensorType> InferReduceShape(const TensorType& x, const std::vector<int64_t>& axes,
                                            bool keep_dims);
// concat of `values` (at least one) along `axis`.
absl::StatusOr<TensorType> InferConcatShape(const std::vector<TensorType>& values, int64_t axis,
                                            bool interleave = false);
// scaled_dot_product_attention: query [..., L, E], key [..., S, E], value [..., S, Ev], mask
// broadcastable to [..., L, S] or null -> [..., L, Ev].
absl::StatusOr<TensorType> InferSdpaShape(const TensorType& query, const TensorType& key,
                                          const TensorType& value,
                                          const TensorType* attn_mask = nullptr);
// gather of `indices` along `axis` of x with `batch_dims` leading batch dimensions.
absl::StatusOr<TensorType> InferGatherShape(const TensorType& x, const TensorType& indices,
                                            int64_t axis, int64_t batch_dims = 0);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_SHAPE_FUNCTIONS_H_
