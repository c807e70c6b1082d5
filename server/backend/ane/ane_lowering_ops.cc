// Op rewrites of the ANE lowering (ane_emitter.h): what the rules table (common/mil/ane_rules.h)
// says the compiler rejects, re-expressed with ops it accepts.
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mil/builder.h"
#include "server/backend/ane/ane_emitter.h"

namespace anerd::backend::ane {

using mil::Argument;
using mil::DType;
using mil::Literal;
using mil::Operation;
using mil::TensorType;

std::string Emitter::Fresh(const std::string& base) {
  std::string name = "anerd_" + base;
  for (int i = 1; used_.count(name) != 0; ++i) name = absl::StrCat("anerd_", base, "_", i);
  used_.insert(name);
  return name;
}

std::string Emitter::Const(const std::string& base, Literal literal) {
  const std::string name = Fresh(base);
  Operation op;
  op.op = "const";
  op.attributes.push_back({"name", Argument::Lit(mil::StringLiteral(name))});
  TensorType type = literal.type;
  op.attributes.push_back({"val", Argument::Lit(std::move(literal))});
  op.outputs.push_back({name, type, {}});
  types_[name] = type;
  ops_.push_back(std::move(op));
  return name;
}

void Emitter::Op(const std::string& op_name, const std::string& out, const TensorType& type,
                 std::vector<mil::NamedArgument> inputs) {
  Operation op;
  op.op = op_name;
  op.inputs = std::move(inputs);
  op.attributes.push_back({"name", Argument::Lit(mil::StringLiteral(out))});
  op.outputs.push_back({out, type, {}});
  types_[out] = type;
  used_.insert(out);
  ops_.push_back(std::move(op));
}

std::string Emitter::Reshape(const std::string& x, const TensorType& to, const std::string& out) {
  const std::string shape = Const("shape", mil::Int32VectorLiteral(to.shape));
  const std::string name = out.empty() ? Fresh("reshape") : out;
  Op("reshape", name, to, {Ref("shape", shape), Ref("x", x)});
  return name;
}

std::string Emitter::Transpose(const std::string& x, const std::vector<int64_t>& perm,
                               const std::string& out) {
  const TensorType& in = TypeOf(x);
  TensorType to{in.dtype, in.shape};
  for (size_t i = 0; i < perm.size(); ++i) to.shape[i] = in.shape[perm[i]];
  const std::string p = Const("perm", mil::Int32VectorLiteral(perm));
  const std::string name = out.empty() ? Fresh("transpose") : out;
  Op("transpose", name, to, {Ref("perm", p), Ref("x", x)});
  return name;
}

std::string Emitter::Slice(const std::string& x, const std::vector<int64_t>& begin,
                           const TensorType& to, const std::string& out) {
  const std::string b = Const("begin", mil::Int32VectorLiteral(begin));
  const std::string s = Const("size", mil::Int32VectorLiteral(to.shape));
  const std::string name = out.empty() ? Fresh("slice") : out;
  Op("slice_by_size", name, to, {Ref("begin", b), Ref("size", s), Ref("x", x)});
  return name;
}

namespace {

std::string Scalar(Emitter& e, const std::string& base, DType dtype, double v) {
  return e.Const(base, mil::ScalarLiteral(dtype, v));
}

// A value name for an operand (literals become consts).
std::string AsValue(const Argument& a, Emitter& e) {
  if (a.kind == Argument::Kind::kRef) return a.ref;
  return e.Const("operand", a.literal);
}

std::optional<int64_t> ConstInt(const Argument* a, const Emitter& e,
                                const std::vector<Operation>& ops) {
  if (a == nullptr) return std::nullopt;
  if (a->kind == Argument::Kind::kLiteral && a->literal.values.size() == 1) {
    return static_cast<int64_t>(a->literal.values[0]);
  }
  if (a->kind != Argument::Kind::kRef) return std::nullopt;
  for (const Operation& op : ops) {
    if (op.op != "const" || op.outputs.empty() || op.outputs[0].name != a->ref) continue;
    const Argument* val = op.FindAttribute("val");
    if (val != nullptr && val->literal.values.size() == 1) {
      return static_cast<int64_t>(val->literal.values[0]);
    }
  }
  (void)e;
  return std::nullopt;
}

// concat(values, axis) into `out` using channel concat only: values moved to axis 1 (transpose,
// or a reshape for rank < 2), concatenated on channels, moved back.
void EmitChannelConcat(const std::vector<std::string>& values, int64_t axis, bool interleave,
                       const std::string& out, const TensorType& out_type, Emitter& e) {
  const int rank = out_type.rank();
  const std::string inter = Scalar(e, "interleave", DType::kBool, interleave ? 1 : 0);
  const std::string one = e.Const("axis", mil::ScalarLiteral(DType::kInt32, 1));
  std::vector<Argument> parts;
  if (rank < 2) {
    for (const std::string& v : values) {
      const TensorType& t = e.TypeOf(v);
      parts.push_back(Argument::Ref(e.Reshape(v, {t.dtype, {1, t.NumElements()}})));
    }
    const std::string cat = e.Fresh("concat");
    e.Op("concat", cat, {out_type.dtype, {1, out_type.NumElements()}},
         {Ref("axis", one), Ref("interleave", inter), {"values", Argument::Tuple(parts)}});
    e.Reshape(cat, out_type, out);
    return;
  }
  std::vector<int64_t> perm(rank);
  for (int i = 0; i < rank; ++i) perm[i] = i;
  std::swap(perm[1], perm[axis]);
  for (const std::string& v : values) parts.push_back(Argument::Ref(e.Transpose(v, perm)));
  TensorType cat_type{out_type.dtype, out_type.shape};
  std::swap(cat_type.shape[1], cat_type.shape[axis]);
  const std::string cat = e.Fresh("concat");
  e.Op("concat", cat, cat_type,
       {Ref("axis", one), Ref("interleave", inter), {"values", Argument::Tuple(parts)}});
  e.Transpose(cat, perm, out);
}

int64_t NextPowerOfTwo(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

}  // namespace

bool RewriteGelu(const Operation& op, const mil::AneRules& rules, Emitter& e) {
  if (op.op != "gelu" || rules.gelu_supported) return false;
  const std::string x = AsValue(*op.FindInput("x"), e);
  const TensorType& t = op.outputs[0].type;
  std::string mode = "EXACT";
  if (const Argument* m = op.FindParam("mode"); m != nullptr && !m->literal.strings.empty()) {
    mode = m->literal.strings[0];
  }
  const std::string out = op.outputs[0].name;
  if (mode == "SIGMOID_APPROXIMATION") {  // x * sigmoid(1.702 x)
    const std::string k = Scalar(e, "gelu_k", t.dtype, 1.702);
    const std::string kx = e.Fresh("gelu_kx");
    e.Op("mul", kx, t, {Ref("x", x), Ref("y", k)});
    const std::string s = e.Fresh("gelu_sigmoid");
    e.Op("sigmoid", s, t, {Ref("x", kx)});
    e.Op("mul", out, t, {Ref("x", x), Ref("y", s)});
    return true;
  }
  // EXACT and TANH_APPROXIMATION: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Orion #10).
  const std::string x2 = e.Fresh("gelu_x2"), x3 = e.Fresh("gelu_x3");
  e.Op("mul", x2, t, {Ref("x", x), Ref("y", x)});
  e.Op("mul", x3, t, {Ref("x", x2), Ref("y", x)});
  const std::string c = Scalar(e, "gelu_c", t.dtype, 0.044715);
  const std::string cx3 = e.Fresh("gelu_cx3"), inner = e.Fresh("gelu_inner");
  e.Op("mul", cx3, t, {Ref("x", x3), Ref("y", c)});
  e.Op("add", inner, t, {Ref("x", x), Ref("y", cx3)});
  const std::string k = Scalar(e, "gelu_k", t.dtype, std::sqrt(2.0 / M_PI));
  const std::string scaled = e.Fresh("gelu_scaled"), th = e.Fresh("gelu_tanh");
  e.Op("mul", scaled, t, {Ref("x", inner), Ref("y", k)});
  e.Op("tanh", th, t, {Ref("x", scaled)});
  const std::string one = Scalar(e, "gelu_one", t.dtype, 1.0);
  const std::string half = Scalar(e, "gelu_half", t.dtype, 0.5);
  const std::string plus = e.Fresh("gelu_plus"), hx = e.Fresh("gelu_hx");
  e.Op("add", plus, t, {Ref("x", th), Ref("y", one)});
  e.Op("mul", hx, t, {Ref("x", x), Ref("y", half)});
  e.Op("mul", out, t, {Ref("x", hx), Ref("y", plus)});
  return true;
}

bool RewriteConcat(const Operation& op, const mil::AneRules& rules, Emitter& e) {
  if (op.op != "concat" || rules.concat != mil::ConcatPolicy::kChannelsOnly) return false;
  const TensorType& t = op.outputs[0].type;
  std::optional<int64_t> axis = ConstInt(op.FindParam("axis"), e, e.ops());
  if (!axis) return false;
  if (*axis < 0) *axis += t.rank();
  if (*axis == 1 && t.rank() >= 2) return false;
  const Argument* values = op.FindInput("values");
  if (values == nullptr || values->kind != Argument::Kind::kTuple) return false;
  std::vector<std::string> names;
  for (const Argument& v : values->elements) names.push_back(AsValue(v, e));
  const bool interleave = ConstInt(op.FindParam("interleave"), e, e.ops()).value_or(0) != 0;
  EmitChannelConcat(names, *axis, interleave, op.outputs[0].name, t, e);
  return true;
}

bool RewriteSoftmax(const Operation& op, const mil::AneRules& rules, Emitter& e) {
  if (op.op != "softmax" || !rules.softmax_pow2_axis ||
      rules.concat == mil::ConcatPolicy::kBanned) {
    return false;
  }
  const std::string x = AsValue(*op.FindInput("x"), e);
  const TensorType& t = op.outputs[0].type;
  int64_t axis = ConstInt(op.FindParam("axis"), e, e.ops()).value_or(-1);
  if (axis < 0) axis += t.rank();
  if (t.rank() == 0 || mil::IsPowerOfTwo(t.shape[axis])) return false;
  // Pad the axis with the lowest fp16 value (exp underflows to exactly 0), softmax, slice back.
  TensorType fill_type{t.dtype, t.shape};
  fill_type.shape[axis] = NextPowerOfTwo(t.shape[axis]) - t.shape[axis];
  const std::string fill = e.Const(
      "softmax_fill",
      mil::TensorLiteral(fill_type, std::vector<double>(fill_type.NumElements(), -65504.0)));
  TensorType padded{t.dtype, t.shape};
  padded.shape[axis] += fill_type.shape[axis];
  const std::string cat = e.Fresh("softmax_padded");
  EmitChannelConcat({x, fill}, axis, false, cat, padded, e);
  const std::string ax = e.Const("axis", mil::ScalarLiteral(DType::kInt32, axis));
  const std::string sm = e.Fresh("softmax");
  e.Op("softmax", sm, padded, {Ref("axis", ax), Ref("x", cat)});
  e.Slice(sm, std::vector<int64_t>(t.rank(), 0), t, op.outputs[0].name);
  return true;
}

void RewriteAttention(const Operation& op, const mil::AneRules& rules, Emitter& e) {
  const std::string q = op.FindInput("query")->ref, k = op.FindInput("key")->ref,
                    v = op.FindInput("value")->ref, m = op.FindInput("attn_mask")->ref;
  const TensorType& qt = e.TypeOf(q);
  const TensorType& kt = e.TypeOf(k);
  TensorType scores{qt.dtype, qt.shape};
  scores.shape.back() = kt.shape[kt.rank() - 2];
  const std::string f = Scalar(e, "false", DType::kBool, 0);
  const std::string t = Scalar(e, "true", DType::kBool, 1);
  const std::string s = e.Fresh("scores");
  e.Op("matmul", s, scores,
       {Ref("transpose_x", f), Ref("transpose_y", t), Ref("x", q), Ref("y", k)});
  const double scale = 1.0 / std::sqrt(static_cast<double>(qt.shape.back()));
  const std::string sc = Scalar(e, "scale", qt.dtype, scale);
  const std::string scaled = e.Fresh("scaled");
  e.Op("mul", scaled, scores, {Ref("x", s), Ref("y", sc)});
  const std::string masked = e.Fresh("masked");
  if (e.TypeOf(m).dtype == DType::kBool) {
    const double lowest = qt.dtype == DType::kFp16
                              ? -65504.0
                              : -static_cast<double>(std::numeric_limits<float>::max());
    const std::string low = Scalar(e, "lowest", qt.dtype, lowest);
    e.Op("select", masked, scores, {Ref("a", scaled), Ref("b", low), Ref("cond", m)});
  } else {
    e.Op("add", masked, scores, {Ref("x", scaled), Ref("y", m)});
  }
  const std::string axis = e.Const("axis", mil::ScalarLiteral(DType::kInt32, -1));
  const std::string probs = e.Fresh("probs");
  Operation softmax;
  softmax.op = "softmax";
  softmax.inputs = {Ref("axis", axis), Ref("x", masked)};
  softmax.attributes.push_back({"name", Argument::Lit(mil::StringLiteral(probs))});
  softmax.outputs.push_back({probs, scores, {}});
  if (!RewriteSoftmax(softmax, rules, e)) e.Op("softmax", probs, scores, softmax.inputs);
  e.Op("matmul", op.outputs[0].name, op.outputs[0].type,
       {Ref("transpose_x", f), Ref("transpose_y", f), Ref("x", probs), Ref("y", v)});
}

}  // namespace anerd::backend::ane
