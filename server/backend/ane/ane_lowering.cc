// The ANE lowering's I/O layout and driver (ane_lowering.h); op rewrites in ane_lowering_ops.cc.
#include "server/backend/ane/ane_lowering.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mil/builder.h"
#include "common/mil/printer.h"
#include "common/mil/weights.h"
#include "common/status_macros.h"
#include "server/backend/ane/ane_emitter.h"

namespace anerd::backend::ane {
namespace {

using mil::Argument;
using mil::DType;
using mil::Operation;
using mil::TensorType;

bool SurfaceDType(DType d) { return d == DType::kFp16 || d == DType::kFp32; }

// Whether `t` can be bound as its own surface as declared.
bool OwnSurface(const TensorType& t, const mil::AneRules& r) {
  if (!SurfaceDType(t.dtype) || t.rank() != 4) return false;
  return r.surface_width_multiple <= 0 || t.shape.back() % r.surface_width_multiple == 0;
}

bool AllOwnSurfaces(const std::vector<TensorType>& types, bool multi_ok, const mil::AneRules& r) {
  if (types.size() > 1 && !multi_ok) return false;
  return std::all_of(types.begin(), types.end(),
                     [&](const TensorType& t) { return OwnSurface(t, r); });
}

absl::StatusOr<DType> PackDType(const std::vector<mil::NamedType>& io, const mil::AneRules& r) {
  bool all_fp16 = true;
  for (const mil::NamedType& t : io) {
    if (t.type.dtype == DType::kString || t.type.dtype == DType::kUInt64) {
      return absl::UnimplementedError(absl::StrCat("the ANE backend cannot carry ", t.name, " (",
                                                   t.type.ToString(), ") in a surface"));
    }
    all_fp16 = all_fp16 && t.type.dtype == DType::kFp16;
  }
  if (all_fp16) return DType::kFp16;
  if (!r.cast_supported) {
    return absl::UnimplementedError(absl::StrCat(
        "this chip cannot run cast (rules profile ", r.profile,
        ": cast_supported=false), so packed I/O must be fp16; make every input and output fp16"));
  }
  return DType::kFp32;
}

// [1, C, 1, W] holding `elements` (W = the width multiple, C >= min_pack_channels).
TensorType PackedType(int64_t elements, DType dtype, const mil::AneRules& r) {
  const int64_t w = std::max<int64_t>(r.surface_width_multiple, 1);
  const int64_t c =
      std::max<int64_t>((elements + w - 1) / w, std::max<int64_t>(1, r.min_pack_channels));
  return TensorType{dtype, {1, c, 1, w}};
}

std::vector<size_t> BindingOrder(const std::vector<std::string>& names, const mil::AneRules& r) {
  std::vector<size_t> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  if (r.alphabetical_binding) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return names[a] < names[b]; });
  }
  return order;
}

void SeparateInputs(mil::Function& f, const mil::AneRules& r, LoweredProgram& out) {
  std::vector<std::string> names;
  for (const mil::NamedType& in : f.inputs) names.push_back(in.name);
  const std::vector<size_t> order = BindingOrder(names, r);
  std::vector<mil::NamedType> sorted;
  out.inputs.resize(f.inputs.size());
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const mil::NamedType& in = f.inputs[order[pos]];
    out.inputs[order[pos]] = {in.name, in.type, static_cast<int>(pos), 0};
    sorted.push_back(in);
    out.input_surfaces.push_back(in.type);
  }
  f.inputs = std::move(sorted);
}

// Inputs packed into one [1, C, 1, W] surface: reshape to channels, slice, reshape, cast.
absl::Status PackInputs(mil::Function& f, Emitter& e, const mil::AneRules& r, LoweredProgram& out) {
  ANERD_ASSIGN_OR_RETURN(const DType pack, PackDType(f.inputs, r));
  int64_t total = 0;
  for (const mil::NamedType& in : f.inputs) {
    out.inputs.push_back({in.name, in.type, 0, total});
    total += in.type.NumElements();
  }
  const TensorType surface = PackedType(total, pack, r);
  const std::string packed = e.Fresh("in");
  f.inputs = {mil::NamedType{packed, surface, {}}};
  e.Declare(packed, surface);
  const std::string flat = e.Reshape(packed, TensorType{pack, {1, surface.NumElements(), 1, 1}});
  for (const SurfaceSlot& s : out.inputs) {
    const int64_t n = s.type.NumElements();
    const bool whole = s.offset == 0 && n == surface.NumElements();
    const std::string sliced =
        whole ? flat : e.Slice(flat, {0, s.offset, 0, 0}, TensorType{pack, {1, n, 1, 1}});
    const bool cast = s.type.dtype != pack;
    const std::string shaped =
        e.Reshape(sliced, TensorType{pack, s.type.shape}, cast ? "" : s.name);
    if (cast) {
      const std::string dtype =
          e.Const("dtype", mil::StringLiteral(std::string(mil::DTypeName(s.type.dtype))));
      e.Op("cast", s.name, s.type, {Ref("dtype", dtype), Ref("x", shaped)});
    }
  }
  out.input_surfaces = {surface};
  out.packed_inputs = true;
  return absl::OkStatus();
}

void SeparateOutputs(mil::Function& f, const std::vector<TensorType>& types, const mil::AneRules& r,
                     LoweredProgram& out) {
  const std::vector<size_t> order = BindingOrder(f.outputs, r);
  std::vector<std::string> sorted;
  out.outputs.resize(f.outputs.size());
  for (size_t pos = 0; pos < order.size(); ++pos) {
    out.outputs[order[pos]] = {f.outputs[order[pos]], types[order[pos]], static_cast<int>(pos), 0};
    sorted.push_back(f.outputs[order[pos]]);
    out.output_surfaces.push_back(types[order[pos]]);
  }
  f.outputs = std::move(sorted);
}

// Outputs cast to one dtype, reshaped onto channels, concatenated on channels with zero padding
// and reshaped to one [1, C, 1, W] surface.
absl::Status PackOutputs(mil::Function& f, const std::vector<TensorType>& types, Emitter& e,
                         const mil::AneRules& r, LoweredProgram& out) {
  std::vector<mil::NamedType> io;
  for (size_t i = 0; i < f.outputs.size(); ++i) io.push_back({f.outputs[i], types[i], {}});
  ANERD_ASSIGN_OR_RETURN(const DType pack, PackDType(io, r));
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
    parts.push_back(Argument::Ref(value));
  }
  const TensorType surface = PackedType(total, pack, r);
  if (io.size() > 1 || surface.NumElements() != total) {  // flatten onto channels to concat
    for (size_t i = 0; i < parts.size(); ++i) {
      const int64_t n = io[i].type.NumElements();
      parts[i] = Argument::Ref(e.Reshape(parts[i].ref, TensorType{pack, {1, n, 1, 1}}));
    }
  }
  const int64_t padded = surface.NumElements();
  if (padded > total) {
    const TensorType pad_type{pack, {1, padded - total, 1, 1}};
    parts.push_back(Argument::Ref(
        e.Const("pad", mil::TensorLiteral(pad_type, std::vector<double>(padded - total, 0.0)))));
  }
  const std::string result = e.Fresh("out");
  if (parts.size() == 1) {
    e.Reshape(parts[0].ref, surface, result);
  } else if (r.concat == mil::ConcatPolicy::kBanned) {
    return absl::UnimplementedError(absl::StrCat(
        "the outputs (", f.outputs.size(), ", ", total,
        " values) need packing into one surface, which needs concat, and concat is banned under "
        "rules profile ",
        r.profile, "; return one output of [1, C, 1, W] with C >= ", r.min_pack_channels,
        " and W a multiple of ", r.surface_width_multiple));
  } else {
    const std::string axis = e.Const("axis", mil::ScalarLiteral(DType::kInt32, 1));
    const std::string interleave = e.Const("interleave", mil::ScalarLiteral(DType::kBool, 0));
    const std::string flat = e.Fresh("flat");
    e.Op("concat", flat, TensorType{pack, {1, padded, 1, 1}},
         {Ref("axis", axis), Ref("interleave", interleave), {"values", Argument::Tuple(parts)}});
    e.Reshape(flat, surface, result);
  }
  f.outputs = {result};
  out.output_surfaces = {surface};
  out.packed_outputs = true;
  return absl::OkStatus();
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

std::vector<int64_t> UniformBytes(const std::vector<TensorType>& surfaces, const mil::AneRules& r) {
  int64_t largest = 0;
  for (const TensorType& t : surfaces) largest = std::max(largest, t.NumBytes());
  return std::vector<int64_t>(surfaces.size(), SurfaceAllocationBytes(largest, r));
}

}  // namespace

int64_t SurfaceAllocationBytes(int64_t tensor_bytes, const mil::AneRules& rules) {
  int64_t bytes = std::max<int64_t>({tensor_bytes, rules.min_surface_bytes, 1});
  if (rules.surface_alignment > 0) {
    bytes =
        (bytes + rules.surface_alignment - 1) / rules.surface_alignment * rules.surface_alignment;
  }
  return bytes;
}

absl::StatusOr<LoweredProgram> LowerForAne(const mil::VerifiedProgram& program,
                                           const LoweringOptions& options) {
  const mil::AneRules& r = options.rules;
  LoweredProgram out;
  out.program = program.program();
  if (r.build_info_required && out.program.build_info.empty()) {
    out.program.build_info = mil::SeedBuildInfo();
  }
  mil::Function* f = nullptr;
  for (mil::Function& fn : out.program.functions) {
    if (fn.name == "main") f = &fn;
  }
  std::map<std::string, TensorType> types;
  for (const mil::NamedType& in : f->inputs) types[in.name] = in.type;
  for (const Operation& op : f->ops) {
    for (const mil::NamedType& o : op.outputs) types[o.name] = o.type;
  }
  std::set<std::string> used;
  for (const auto& [name, type] : types) used.insert(name);
  Emitter e(used, types);
  std::vector<TensorType> in_types, out_types;
  for (const mil::NamedType& in : f->inputs) in_types.push_back(in.type);
  for (const std::string& name : f->outputs) out_types.push_back(types.at(name));
  if (AllOwnSurfaces(in_types, r.multi_input_surfaces, r)) {
    SeparateInputs(*f, r, out);
  } else {
    ANERD_RETURN_IF_ERROR(PackInputs(*f, e, r, out));
  }
  for (Operation& op : f->ops) {
    for (auto& a : op.inputs) ANERD_RETURN_IF_ERROR(CanonicalBlobPaths(a.value));
    for (auto& a : op.attributes) ANERD_RETURN_IF_ERROR(CanonicalBlobPaths(a.value));
    if (NeedsAttentionRewrite(op, options)) {
      RewriteAttention(op, r, e);
      out.attention_rewritten = true;
    } else if (!RewriteGelu(op, r, e) && !RewriteConcat(op, r, e) && !RewriteSoftmax(op, r, e)) {
      e.Keep(std::move(op));
    }
  }
  if (AllOwnSurfaces(out_types, r.multi_output_surfaces, r)) {
    SeparateOutputs(*f, out_types, r, out);
  } else {
    ANERD_RETURN_IF_ERROR(PackOutputs(*f, out_types, e, r, out));
  }
  f->ops = std::move(e.ops());
  out.input_surface_bytes = UniformBytes(out.input_surfaces, r);
  out.output_surface_bytes = UniformBytes(out.output_surfaces, r);
  out.mil_text = mil::PrintProgram(out.program);
  for (const auto& [key, bytes] : program.weights().files()) {
    out.weights.push_back({"@model_path/" + key, bytes});
  }
  return out;
}

}  // namespace anerd::backend::ane
