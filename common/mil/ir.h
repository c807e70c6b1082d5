// The MIL intermediate representation: a plain value-semantics tree of a MIL text program.
//
// A Program is what the parser returns (unverified: names may be undefined, types may disagree with
// inference) and what the Builder produces. VerifyProgram (verifier.h) checks it and wraps it in a
// VerifiedProgram, the only form backends accept. All shapes are static. SourceLoc is informational
// and ignored by operator==. Types here are cheap to copy except for large inline literals.
// Thread-safety: plain data; concurrent const access is safe.
#ifndef ANERD_COMMON_MIL_IR_H_
#define ANERD_COMMON_MIL_IR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace anerd::mil {

enum class DType : uint8_t { kFp16, kFp32, kInt32, kInt16, kInt8, kUInt8, kUInt64, kBool, kString };

// "fp16", "fp32", "int32", "int16", "int8", "uint8", "uint64", "bool", "string".
absl::string_view DTypeName(DType dtype);
// Inverse of DTypeName; nullopt for an unknown name.
std::optional<DType> DTypeFromName(absl::string_view name);
// Bytes per element in memory and in weight files (bool: 1, string: 0).
int DTypeSize(DType dtype);
bool IsFloat(DType dtype);    // fp16, fp32
bool IsInteger(DType dtype);  // int*, uint*

struct SourceLoc {
  int line = 0;    // 1-based; 0 = unknown (built programmatically)
  int column = 0;  // 1-based
};

// A tensor type with a static shape. Rank 0 (empty shape) is a scalar: printed `fp16`, and the
// verbose `tensor<fp16, []>` spelling parses to the same type.
struct TensorType {
  DType dtype = DType::kFp32;
  std::vector<int64_t> shape;

  int rank() const { return static_cast<int>(shape.size()); }
  bool is_scalar() const { return shape.empty(); }
  // Product of dims (1 for a scalar). Callers bound dims first; see ParseOptions.
  int64_t NumElements() const;
  int64_t NumBytes() const { return NumElements() * DTypeSize(dtype); }
  // "tensor<fp16, [1, 64, 1, 16]>" or "fp16".
  std::string ToString() const;
  bool operator==(const TensorType& o) const { return dtype == o.dtype && shape == o.shape; }
  bool operator!=(const TensorType& o) const { return !(*this == o); }
};

// BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)): `offset` is the file
// offset of the entry's 64-byte metadata record, not of the data (docs/ANE_NOTES.md §2).
struct BlobRef {
  std::string path;  // as written, e.g. "@model_path/weights/w.bin"
  uint64_t offset = 0;
  bool operator==(const BlobRef& o) const { return path == o.path && offset == o.offset; }
};

// A typed constant: a scalar, an inline tensor (row-major), or a tensor stored in a weight file.
// Numeric and bool values are held as doubles, which represent every fp16/fp32/int8/int16/int32/
// uint8 value exactly; uint64 literals are limited to < 2^53 by the parser.
struct Literal {
  TensorType type;
  std::vector<double> values;        // numeric/bool element values; empty for blob and string
  std::vector<std::string> strings;  // dtype string: element values
  std::optional<BlobRef> blob;       // set for BLOBFILE constants (values/strings empty)

  bool operator==(const Literal& o) const;
};

// An operand: a reference to a named value, a literal, or a tuple `(a, b, c)` of operands.
struct Argument {
  enum class Kind { kRef, kLiteral, kTuple };
  Kind kind = Kind::kRef;
  std::string ref;                 // kRef: the value's name
  Literal literal;                 // kLiteral
  std::vector<Argument> elements;  // kTuple
  SourceLoc loc;

  static Argument Ref(std::string name);
  static Argument Lit(Literal literal);
  static Argument Tuple(std::vector<Argument> elements);
  bool operator==(const Argument& o) const;
};

struct NamedArgument {
  std::string name;
  Argument value;
  bool operator==(const NamedArgument& o) const { return name == o.name && value == o.value; }
};

struct NamedType {
  std::string name;
  TensorType type;
  SourceLoc loc;
  bool operator==(const NamedType& o) const { return name == o.name && type == o.type; }
};

// `TYPE out = op(inputs...)[attributes...];` Inputs and attributes keep the order written; lookups
// are by name. constexpr_* ops carry their operands in `attributes` (empty parentheses).
struct Operation {
  std::string op;
  std::vector<NamedArgument> inputs;      // inside ( )
  std::vector<NamedArgument> attributes;  // inside [ ], including name = string("...")
  std::vector<NamedType> outputs;         // declared on the left; usually one
  SourceLoc loc;

  const Argument* FindInput(absl::string_view name) const;
  const Argument* FindAttribute(absl::string_view name) const;
  // An operand wherever it is written: inputs first, then attributes.
  const Argument* FindParam(absl::string_view name) const;
  bool operator==(const Operation& o) const;
};

struct Function {
  std::string name;   // "main" is the entry point
  std::string opset;  // "ios16", "ios17", "ios18"
  std::vector<NamedType> inputs;
  std::vector<Operation> ops;
  std::vector<std::string> outputs;  // names returned by `-> (...)`
  SourceLoc loc;

  bool operator==(const Function& o) const;
};

struct Program {
  std::string version;  // "1.0", "1.3" or "1.5"
  // The optional [buildInfo = dict<string, string>({{"k", "v"}, ...})]; empty when absent.
  std::vector<std::pair<std::string, std::string>> build_info;
  std::vector<Function> functions;

  const Function* FindFunction(absl::string_view name) const;
  const Function* main() const { return FindFunction("main"); }
  bool operator==(const Program& o) const;
};

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_IR_H_
