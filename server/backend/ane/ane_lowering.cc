#include "server/backend/ane/ane_lowering.h"

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mil/builder.h"
#include "common/mil/printer.h"
#include "common/mil/weights.h"
#include "common/status_macros.h"

namespace anerd::backend::ane {
namespace {

using mil::Argument;
using mil::DType;
using mil::Literal;
using mil::Operation;
using mil::TensorType;

// Appends ops in the coremltools style (named const parameters, `name` attribute).
class Emitter {
 public:
  explicit Emitter(std::set<std::string> used) : used_(std::move(used)) {}

  std::string Fresh(const std::string& base) {
    std::string name = "anerd_" + base;
    for (int i = 1; used_.count(name) != 0; ++i) name = absl::StrCat("anerd_", base, "_", i);
    used_.insert(name);
    return name;
  }
  std::string Const(const std::string& base, Literal literal) {
    const std::string name = Fresh(base);
    Operation op;
    op.op = "const";
    op.attributes.push_back({"name", Argument::Lit(mil::StringLiteral(name))});
    TensorType type = literal.type;
    op.attributes.push_back({"val", Argument::Lit(std::move(literal))});
    op.outputs.push_back({name, type, {}});
    ops_.push_back(std::move(op));
    return name;
  }
  // Emits `out = op(inputs)` (out must already be reserved or be a name being redefined).
  void Op(const std::string& op_name, const std::string& out, const TensorType& type,
          std::vector<mil::NamedArgument> inputs) {
    Operation op;
    op.op = op_name;
    op.inputs = std::move(inputs);
    op.attributes.push_back({"name", Argument::Lit(mil::StringLiteral(out))});
    op.outputs.push_back({out, type, {}});
    ops_.push_back(std::move(op));
  }
  std::vector<Operation>& ops() { return ops_; }

 private:
  std::set<std::string> used_;
  std::vector<Operation> ops_;
};

bool SurfaceDType(DType d) { return d == DType::kFp16 || d == DType::kFp32; }

bool SizeOk(int64_t bytes, const LoweringOptions& o) {
  if (bytes <= 0) return false;
  if (o.surface_alignment > 0 && bytes % o.surface_alignment != 0) return false;
  return bytes >= o.min_surface_bytes;
}

// Whether these tensors can each have their own surface as they are.
bool FitsAsIs(const std::vector<TensorType>& types, int max_count, const LoweringOptions& o) {
  if (max_count > 0 && static_cast<int>(types.size()) > max_count) return false;
  for (const TensorType& t : types) {
    if (!SurfaceDType(t.dtype) || !SizeOk(t.NumBytes(), o)) return false;
  }
  return true;
}

DType PackDType(const std::vector<TensorType>& types) {
  for (const TensorType& t : types) {
    if (t.dtype != DType::kFp16) return DType::kFp32;
  }
  return DType::kFp16;
}

// Elements of a flat surface holding `elements`, padded up to the size rules.
int64_t PaddedElements(int64_t elements, DType dtype, const LoweringOptions& o) {
  const int64_t size = mil::DTypeSize(dtype);
  int64_t bytes = std::max<int64_t>(elements * size, std::max<int64_t>(o.min_surface_bytes, size));
  if (o.surface_alignment > 0) {
    bytes = (bytes + o.surface_alignment - 1) / o.surface_alignment * o.surface_alignment;
  }
  return (bytes + size - 1) / size;
}

absl::Status CheckPackable(const std::vector<mil::NamedType>& io) {
  for (const mil::NamedType& t : io) {
    if (t.type.dtype == DType::kString || t.type.dtype == DType::kUInt64) {
      return absl::UnimplementedError(absl::StrCat("the ANE backend cannot carry ", t.name, " (",
                                                   t.type.ToString(), ") in a surface"));
    }
  }
  return absl::OkStatus();
}

mil::NamedArgument Ref(const std::string& param, const std::string& name) {
  return {param, Argument::Ref(name)};
}

// Inputs packed into one flat [1,1,1,N] surface: slice -> reshape -> cast back to each name.
absl::Status PackInputs(mil::Function& f, Emitter& e, const LoweringOptions& o,
                        LoweredProgram& out) {
  ANERD_RETURN_IF_ERROR(CheckPackable(f.inputs));
  std::vector<TensorType> types;
  for (const mil::NamedType& in : f.inputs) types.push_back(in.type);
  const DType pack = PackDType(types);
  int64_t total = 0;
  for (const mil::NamedType& in : f.inputs) {
    out.inputs.push_back({in.name, in.type, 0, total});
    total += in.type.NumElements();
  }
  const TensorType surface{pack, {1, 1, 1, PaddedElements(total, pack, o)}};
  const std::string packed = e.Fresh("in");
  for (const SurfaceSlot& s : out.inputs) {
    const int64_t n = s.type.NumElements();
    const TensorType flat{pack, {1, 1, 1, n}};
    const std::string begin = e.Const("begin", mil::Int32VectorLiteral({0, 0, 0, s.offset}));
    const std::string size = e.Const("size", mil::Int32VectorLiteral({1, 1, 1, n}));
    const bool cast = s.type.dtype != pack;
    const std::string sliced = e.Fresh("slice");
    e.Op("slice_by_size", sliced, flat, {Ref("begin", begin), Ref("size", size), Ref("x", packed)});
    const std::string shape = e.Const("shape", mil::Int32VectorLiteral(s.type.shape));
    const std::string shaped = cast ? e.Fresh("shaped") : s.name;
    e.Op("reshape", shaped, TensorType{pack, s.type.shape},
         {Ref("shape", shape), Ref("x", sliced)});
    if (cast) {
      const std::string dtype =
          e.Const("dtype", mil::StringLiteral(std::string(mil::DTypeName(s.type.dtype))));
      e.Op("cast", s.name, s.type, {Ref("dtype", dtype), Ref("x", shaped)});
    }
  }
  f.inputs = {mil::NamedType{packed, surface, {}}};
  out.input_surfaces = {surface};
  out.packed_inputs = true;
  return absl::OkStatus();
}

// Outputs cast to one dtype, flattened and concatenated (plus padding) into one surface.
absl::Status PackOutputs(mil::Function& f, const std::map<std::string, TensorType>& types,
                         Emitter& e, const LoweringOptions& o, LoweredProgram& out) {
  std::vector<mil::NamedType> io;
  std::vector<TensorType> ts;
  for (const std::string& name : f.outputs) {
    io.push_back({name, types.at(name), {}});
    ts.push_back(types.at(name));
  }
  ANERD_RETURN_IF_ERROR(CheckPackable(io));
  const DType pack = PackDType(ts);
  int64_t total = 0;
  std::vector<Argument> parts;
  for (const mil::NamedType& t : io) {
    out.outputs.push_back({t.name, t.type, 0, total});
    const int64_t n = t.type.NumElements();
    total += n;
    std::string value = t.name;
    if (t.type.dtype != pack) {
      const std::string dtype =
          e.Const("dtype", mil::StringLiteral(std::string(mil::DTypeName(pack))));
      const std::string cast = e.Fresh("cast");
      e.Op("cast", cast, TensorType{pack, t.type.shape}, {Ref("dtype", dtype), Ref("x", value)});
      value = cast;
    }
    const std::string shape = e.Const("shape", mil::Int32VectorLiteral({1, 1, 1, n}));
    const std::string flat = e.Fresh("flat");
    e.Op("reshape", flat, TensorType{pack, {1, 1, 1, n}}, {Ref("shape", shape), Ref("x", value)});
    parts.push_back(Argument::Ref(flat));
  }
  const int64_t padded = PaddedElements(total, pack, o);
  if (padded > total) {
    const TensorType pad_type{pack, {1, 1, 1, padded - total}};
    parts.push_back(Argument::Ref(
        e.Const("pad", mil::TensorLiteral(pad_type, std::vector<double>(padded - total, 0.0)))));
  }
  const TensorType surface{pack, {1, 1, 1, padded}};
  const std::string result = e.Fresh("out");
  if (parts.size() == 1) {
    const std::string shape = e.Const("shape", mil::Int32VectorLiteral({1, 1, 1, padded}));
    e.Op("reshape", result, surface, {{"shape", Argument::Ref(shape)}, {"x", parts[0]}});
  } else {
    const std::string axis = e.Const("axis", mil::ScalarLiteral(DType::kInt32, 3));
    const std::string interleave = e.Const("interleave", mil::ScalarLiteral(DType::kBool, 0));
    e.Op("concat", result, surface,
         {Ref("axis", axis), Ref("interleave", interleave), {"values", Argument::Tuple(parts)}});
  }
  f.outputs = {result};
  out.output_surfaces = {surface};
  out.packed_outputs = true;
  return absl::OkStatus();
}

// softmax(q k^T / sqrt(E) + mask) v with explicit ops (spec 11: never rely on attn_mask).
void RewriteAttention(const Operation& op, const std::map<std::string, TensorType>& types,
                      Emitter& e) {
  const std::string q = op.FindInput("query")->ref, k = op.FindInput("key")->ref,
                    v = op.FindInput("value")->ref, m = op.FindInput("attn_mask")->ref;
  const TensorType& qt = types.at(q);
  const TensorType& kt = types.at(k);
  TensorType scores{qt.dtype, qt.shape};
  scores.shape.back() = kt.shape[kt.rank() - 2];
  const std::string f = e.Const("false", mil::ScalarLiteral(DType::kBool, 0));
  const std::string t = e.Const("true", mil::ScalarLiteral(DType::kBool, 1));
  const std::string s = e.Fresh("scores");
  e.Op("matmul", s, scores,
       {Ref("transpose_x", f), Ref("transpose_y", t), Ref("x", q), Ref("y", k)});
  const double scale = 1.0 / std::sqrt(static_cast<double>(qt.shape.back()));
  const std::string sc = e.Const("scale", mil::ScalarLiteral(qt.dtype, scale));
  const std::string scaled = e.Fresh("scaled");
  e.Op("mul", scaled, scores, {Ref("x", s), Ref("y", sc)});
  const std::string masked = e.Fresh("masked");
  if (types.at(m).dtype == DType::kBool) {
    const double lowest = qt.dtype == DType::kFp16
                              ? -65504.0
                              : -static_cast<double>(std::numeric_limits<float>::max());
    const std::string low = e.Const("lowest", mil::ScalarLiteral(qt.dtype, lowest));
    e.Op("select", masked, scores, {Ref("a", scaled), Ref("b", low), Ref("cond", m)});
  } else {
    e.Op("add", masked, scores, {Ref("x", scaled), Ref("y", m)});
  }
  const std::string axis = e.Const("axis", mil::ScalarLiteral(DType::kInt32, -1));
  const std::string probs = e.Fresh("probs");
  e.Op("softmax", probs, scores, {Ref("axis", axis), Ref("x", masked)});
  e.Op("matmul", op.outputs[0].name, op.outputs[0].type,
       {Ref("transpose_x", f), Ref("transpose_y", f), Ref("x", probs), Ref("y", v)});
}

bool NeedsAttentionRewrite(const Operation& op, const LoweringOptions& o) {
  if (op.op != "scaled_dot_product_attention" || o.device_honors_attn_mask || !o.honor_attn_mask) {
    return false;
  }
  const Argument* m = op.FindInput("attn_mask");
  return m != nullptr && m->kind == Argument::Kind::kRef &&
         op.FindInput("query")->kind == Argument::Kind::kRef &&
         op.FindInput("key")->kind == Argument::Kind::kRef &&
         op.FindInput("value")->kind == Argument::Kind::kRef;
}

// Rewrites BLOBFILE paths to the canonical "@model_path/weights/<file>" spelling.
absl::Status CanonicalBlobPaths(Argument& a) {
  if (a.kind == Argument::Kind::kTuple) {
    for (Argument& el : a.elements) ANERD_RETURN_IF_ERROR(CanonicalBlobPaths(el));
  } else if (a.kind == Argument::Kind::kLiteral && a.literal.blob.has_value()) {
    ANERD_ASSIGN_OR_RETURN(std::string key, mil::CanonicalWeightPath(a.literal.blob->path));
    a.literal.blob->path = "@model_path/" + key;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoweredProgram> LowerForAne(const mil::VerifiedProgram& program,
                                           const LoweringOptions& options) {
  LoweredProgram out;
  out.program = program.program();
  mil::Function* f = nullptr;
  for (mil::Function& fn : out.program.functions) {
    if (fn.name == "main") f = &fn;
  }
  std::map<std::string, TensorType> types;
  std::set<std::string> used;
  for (const mil::NamedType& in : f->inputs) types[in.name] = in.type;
  for (const Operation& op : f->ops) {
    for (const mil::NamedType& o : op.outputs) types[o.name] = o.type;
  }
  for (const auto& [name, type] : types) used.insert(name);
  Emitter e(used);
  std::vector<TensorType> in_types, out_types;
  for (const mil::NamedType& in : f->inputs) in_types.push_back(in.type);
  for (const std::string& name : f->outputs) out_types.push_back(types.at(name));
  const bool pack_in = !FitsAsIs(in_types, options.max_inputs, options);
  const bool pack_out = !FitsAsIs(out_types, options.max_outputs, options);
  if (pack_in) {
    ANERD_RETURN_IF_ERROR(PackInputs(*f, e, options, out));
  } else {
    for (size_t i = 0; i < f->inputs.size(); ++i) {
      out.inputs.push_back({f->inputs[i].name, f->inputs[i].type, static_cast<int>(i), 0});
    }
    out.input_surfaces = in_types;
  }
  for (Operation& op : f->ops) {
    for (auto& a : op.inputs) ANERD_RETURN_IF_ERROR(CanonicalBlobPaths(a.value));
    for (auto& a : op.attributes) ANERD_RETURN_IF_ERROR(CanonicalBlobPaths(a.value));
    if (NeedsAttentionRewrite(op, options)) {
      RewriteAttention(op, types, e);
      out.attention_rewritten = true;
    } else {
      e.ops().push_back(std::move(op));
    }
  }
  if (pack_out) {
    ANERD_RETURN_IF_ERROR(PackOutputs(*f, types, e, options, out));
  } else {
    for (size_t i = 0; i < f->outputs.size(); ++i) {
      out.outputs.push_back({f->outputs[i], out_types[i], static_cast<int>(i), 0});
    }
    out.output_surfaces = out_types;
  }
  f->ops = std::move(e.ops());
  out.mil_text = mil::PrintProgram(out.program);
  for (const auto& [key, bytes] : program.weights().files()) {
    out.weights.push_back({"@model_path/" + key, bytes});
  }
  return out;
}

}  // namespace anerd::backend::ane
