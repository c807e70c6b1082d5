// The MIL op registry: one OpSpec per op (parameter signature, where its operands are written, and
// a PURE shape/type inference function). Inference sees only operand types plus the values of
// constant operands (reshape shape, transpose perm, slice begin/size, ...), so it is testable
// without a Program: fill an OpArgs and call InferOutputTypes.
//
// Semantics follow coremltools' iOS15-iOS18 op definitions (docs/ANE_NOTES.md §3.4).
// Thread-safety: the registry is immutable after construction; DefaultOpRegistry() is safe to call
// from any thread. OpArgs is a plain value used by one thread.
#ifndef ANERD_COMMON_MIL_OP_REGISTRY_H_
#define ANERD_COMMON_MIL_OP_REGISTRY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ir.h"

namespace anerd::mil {

// A set of dtypes as a bit mask.
using DTypeSet = uint32_t;
constexpr DTypeSet DTypeBit(DType d) { return DTypeSet{1} << static_cast<int>(d); }
inline constexpr DTypeSet kFloatDTypes = DTypeBit(DType::kFp16) | DTypeBit(DType::kFp32);
inline constexpr DTypeSet kIndexDTypes = DTypeBit(DType::kInt32) | DTypeBit(DType::kInt16) |
                                         DTypeBit(DType::kInt8) | DTypeBit(DType::kUInt8);
inline constexpr DTypeSet kQuantDTypes = DTypeBit(DType::kInt8) | DTypeBit(DType::kUInt8);
inline constexpr DTypeSet kArithDTypes = kFloatDTypes | DTypeBit(DType::kInt32);
inline constexpr DTypeSet kAnyDType = ~DTypeSet{0};

// One parameter of an op.
struct ParamSpec {
  std::string name;
  bool required = true;
  bool tuple = false;  // takes a tuple `(a, b, ...)` of tensors
  DTypeSet dtypes = kAnyDType;
  bool constant = false;  // must be a compile-time constant (literal, const or constexpr)
};

// What inference knows about one operand.
struct Operand {
  TensorType type;                 // tensors (unused for tuples)
  bool is_const = false;           // compile-time constant
  const Literal* value = nullptr;  // its inline value when known; not owned; null for BLOBFILE
  bool is_tuple = false;
  std::vector<Operand> elements;  // tuples

  static Operand Tensor(TensorType type);
  static Operand Tuple(std::vector<Operand> elements);
};

// The operands of one op instance, by parameter name. Move-only: it may own literals (SetConst)
// that its operands point at.
class OpArgs {
 public:
  OpArgs() = default;
  OpArgs(OpArgs&&) = default;
  OpArgs& operator=(OpArgs&&) = default;
  OpArgs(const OpArgs&) = delete;
  OpArgs& operator=(const OpArgs&) = delete;

  void Set(std::string name, Operand operand);
  // Conveniences (tests, backends): a runtime tensor, an owned constant, a tuple of tensors.
  void SetTensor(std::string name, TensorType type);
  void SetConst(std::string name, Literal value);
  void SetTuple(std::string name, std::vector<TensorType> types);

  const Operand* Find(absl::string_view name) const;
  bool Has(absl::string_view name) const { return Find(name) != nullptr; }
  const std::map<std::string, Operand, std::less<>>& operands() const { return operands_; }

  // Typed accessors used by inference functions. A missing parameter yields `fallback` when given,
  // else INVALID_ARGUMENT; values must be inline constants.
  absl::StatusOr<TensorType> Type(absl::string_view name) const;
  absl::StatusOr<std::vector<int64_t>> Ints(
      absl::string_view name, std::optional<std::vector<int64_t>> fallback = std::nullopt) const;
  absl::StatusOr<int64_t> Int(absl::string_view name,
                              std::optional<int64_t> fallback = std::nullopt) const;
  absl::StatusOr<bool> Bool(absl::string_view name,
                            std::optional<bool> fallback = std::nullopt) const;
  absl::StatusOr<double> Float(absl::string_view name,
                               std::optional<double> fallback = std::nullopt) const;
  absl::StatusOr<std::string> String(absl::string_view name,
                                     std::optional<std::string> fallback = std::nullopt) const;

 private:
  absl::StatusOr<const Literal*> ConstValue(absl::string_view name) const;

  std::map<std::string, Operand, std::less<>> operands_;
  std::deque<Literal> owned_;  // stable addresses for SetConst
};

// Output types of one op instance (one per output, in order).
using InferFn = absl::StatusOr<std::vector<TensorType>> (*)(const OpArgs& args);

struct OpSpec {
  std::string name;
  std::vector<ParamSpec> params;
  // const and constexpr_* write their operands in the attribute list `[...]` with empty `()`;
  // every other op writes operands in `(...)` and has only `name` in `[...]`.
  bool params_in_attributes = false;
  InferFn infer = nullptr;
  // Test-only ops (anerd_test_abort, anerd_test_hang) verify like any op but no backend supports
  // them; only a worker started with --testonly_ops runs them (to exercise crash isolation).
  // OpNames()/KnownOps() leave them out.
  bool test_only = false;

  const ParamSpec* FindParam(absl::string_view param) const;
};

class OpRegistry {
 public:
  // Adds (or replaces) an op.
  void Register(OpSpec spec);
  const OpSpec* Find(absl::string_view op) const;
  // Every registered op name except test-only ones, sorted.
  std::vector<std::string> OpNames() const;

 private:
  absl::flat_hash_map<std::string, OpSpec> ops_;
};

// The registry of every op anerd understands; built once (function-local static, never destroyed)
// by RegisterMilOps (shape_inference.h).
const OpRegistry& DefaultOpRegistry();
// DefaultOpRegistry().OpNames(): what backends enumerate to decide which ops they support.
std::vector<std::string> KnownOps();

// Checks `args` against `spec` (unknown or missing parameters, tuple-ness, dtypes, constness), then
// runs its inference function. Errors are INVALID_ARGUMENT without a location.
absl::StatusOr<std::vector<TensorType>> InferOutputTypes(const OpSpec& spec, const OpArgs& args);

// Shape helpers shared by inference functions and backends.
// "[1, 64, 1, 16]".
std::string ShapeToString(const std::vector<int64_t>& shape);
// `axis` in [-rank, rank) -> [0, rank).
absl::StatusOr<int> NormalizeAxis(int64_t axis, int rank);
// NumPy broadcasting of two shapes.
absl::StatusOr<std::vector<int64_t>> BroadcastShapes(const std::vector<int64_t>& a,
                                                     const std::vector<int64_t>& b);

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_OP_REGISTRY_H_
