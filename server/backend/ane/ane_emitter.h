// Internal to the ANE lowering (ane_lowering.cc, ane_lowering_ops.cc): appends MIL operations in
// the coremltools style (named const parameters, a `name` attribute on every op) with fresh
// "anerd_*" value names. Not thread-safe; one per lowering.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_EMITTER_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_EMITTER_H_

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/mil/ane_rules.h"
#include "common/mil/ir.h"

namespace anerd::backend::ane {

class Emitter {
 public:
  Emitter(std::set<std::string> used, std::map<std::string, mil::TensorType> types)
      : used_(std::move(used)), types_(std::move(types)) {}

  // A name not used so far: "anerd_<base>", "anerd_<base>_1", ...
  std::string Fresh(const std::string& base);
  // `const()` holding `literal`; returns its name.
  std::string Const(const std::string& base, mil::Literal literal);
  // `out = op_name(inputs)` of type `type` (out: a Fresh name or a name being defined).
  void Op(const std::string& op_name, const std::string& out, const mil::TensorType& type,
          std::vector<mil::NamedArgument> inputs);
  // Shorthands returning the new value's name.
  std::string Reshape(const std::string& x, const mil::TensorType& to, const std::string& out = "");
  std::string Transpose(const std::string& x, const std::vector<int64_t>& perm,
                        const std::string& out = "");
  std::string Slice(const std::string& x, const std::vector<int64_t>& begin,
                    const mil::TensorType& to, const std::string& out = "");

  // The declared type of a value (inputs, original ops, emitted ops).
  const mil::TensorType& TypeOf(const std::string& name) const { return types_.at(name); }
  // Records the type of a value defined elsewhere (a new function parameter).
  void Declare(const std::string& name, const mil::TensorType& type) { types_[name] = type; }
  void Keep(mil::Operation op) { ops_.push_back(std::move(op)); }
  std::vector<mil::Operation>& ops() { return ops_; }

 private:
  std::set<std::string> used_;
  std::map<std::string, mil::TensorType> types_;
  std::vector<mil::Operation> ops_;
};

inline mil::NamedArgument Ref(const std::string& param, const std::string& name) {
  return {param, mil::Argument::Ref(name)};
}

// Op rewrites of ane_lowering_ops.cc. Each appends the replacement for `op` and returns true, or
// returns false (nothing emitted) when `op` needs no rewrite under `rules`.
bool RewriteGelu(const mil::Operation& op, const mil::AneRules& rules, Emitter& e);
bool RewriteConcat(const mil::Operation& op, const mil::AneRules& rules, Emitter& e);
bool RewriteSoftmax(const mil::Operation& op, const mil::AneRules& rules, Emitter& e);
// softmax(q k^T / sqrt(E) + mask) v with explicit ops (docs/ANE_NOTES.md §11: never rely on
// attn_mask); the softmax it emits goes through RewriteSoftmax.
void RewriteAttention(const mil::Operation& op, const mil::AneRules& rules, Emitter& e);

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_EMITTER_H_
