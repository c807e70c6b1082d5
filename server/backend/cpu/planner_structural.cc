// Planning of constants and data movement: reshape/transpose/slice/split become views unless in
// reference mode; concat and gather copy, except concat parts whose producers write their region
// of the concat output in place (buffer aliases, planning only).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/backend/cpu/planner.h"

namespace anerd::backend::cpu {
namespace {

// A step copying each of `copies` into `out` at element offset starts[i], laid out with `strides`.
std::function<absl::Status(const StepContext&)> ConcatCopies(std::vector<View> copies,
                                                             std::vector<int64_t> starts,
                                                             std::vector<int64_t> strides,
                                                             View out) {
  return [copies, starts, strides, out](const StepContext& c) {
    for (size_t i = 0; i < copies.size(); ++i) {
      const View& p = copies[i];
      CopyToStrided(Strided{c.Ptr(p), p.shape, p.strides}, c.MutablePtr(out) + starts[i], strides);
    }
    return absl::OkStatus();
  };
}

}  // namespace

absl::Status Planner::PlanConst(const mil::Operation& op) {
  const mil::Argument* a = op.FindParam("val");
  if (a == nullptr || a->kind != mil::Argument::Kind::kLiteral) {
    return absl::InvalidArgumentError("const needs a literal 'val'");
  }
  Value v;
  if (a->literal.type.dtype == mil::DType::kString) {
    v.str = a->literal.strings.empty() ? "" : a->literal.strings[0];
  } else {
    ANERD_ASSIGN_OR_RETURN(v.constant, Decode(a->literal));
    v.view = ContiguousView(AddConstant(v.constant), a->literal.type.shape);
  }
  return Define(op.outputs[0], std::move(v));
}

absl::Status Planner::PlanAffineDequantize(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* q, Operand(op, "quantized_data"));
  const int rank = q->type.rank();
  ANERD_ASSIGN_OR_RETURN(const Value* scale, QuantParam(op, "scale", rank, 1.0));
  ANERD_ASSIGN_OR_RETURN(const Value* zp, QuantParam(op, "zero_point", rank, 0.0));
  const mil::TensorType& type = op.outputs[0].type;
  // Computed now, at compile time, with the same kernel as dequantize.
  auto data = std::make_shared<std::vector<float>>(type.NumElements());
  EwGroup g{type.shape, {EwStep{EwOp::kDequantize, {0, 1, 2}, 0, 0, RoundingFor(type.dtype)}}};
  std::vector<Strided> leaves;
  for (const Value* v : {q, scale, zp}) {
    const View b = BroadcastView(v->view, type.shape);
    const float* base = plan_.buffers[v->view.buf].constant->data() + v->view.offset;
    leaves.push_back(Strided{base, b.shape, b.strides});
  }
  std::vector<float> scratch(EwScratchFloats(g, 3));
  RunEwGroup(g, leaves, data->data(), scratch.data());
  Value v;
  v.constant = data;
  v.view = ContiguousView(AddConstant(data), type.shape);
  return Define(op.outputs[0], std::move(v));
}

absl::Status Planner::PlanReshape(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  const std::vector<int64_t>& shape = op.outputs[0].type.shape;
  std::optional<View> view = ReshapeView(x->view, shape);
  if (!view) view = ReshapeView(Contiguous(op, x->view), shape);
  return DefineView(op, op.outputs[0], *view);
}

absl::Status Planner::PlanTranspose(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> perm, Ints(op, "perm"));
  for (int64_t& p : perm) p = p < 0 ? p + x->type.rank() : p;
  return DefineView(op, op.outputs[0], TransposeView(x->view, perm));
}

absl::Status Planner::PlanSliceBySize(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> begin, Ints(op, "begin"));
  const int r = x->type.rank();
  std::vector<int64_t> size = op.outputs[0].type.shape;
  for (int i = 0; i < r; ++i) {
    if (begin[i] < 0) begin[i] += x->type.shape[i];
  }
  return DefineView(
      op, op.outputs[0],
      SliceView(x->view, begin, std::vector<int64_t>(r, 1), size, std::vector<bool>(r, false)));
}

absl::Status Planner::PlanSliceByIndex(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  const int r = x->type.rank();
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> begin, Ints(op, "begin"));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> end, Ints(op, "end"));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> stride,
                         Ints(op, "stride", std::vector<int64_t>(r, 1)));
  const std::vector<int64_t> zeros(r, 0);
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> bmask, Ints(op, "begin_mask", zeros));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> emask, Ints(op, "end_mask", zeros));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> smask, Ints(op, "squeeze_mask", zeros));
  std::vector<int64_t> start(r), size(r);
  std::vector<bool> squeeze(r);
  for (int i = 0; i < r; ++i) {
    const int64_t dim = x->type.shape[i], st = stride[i];
    int64_t b = begin[i] < 0 ? begin[i] + dim : begin[i];
    int64_t e = end[i] < 0 ? end[i] + dim : end[i];
    if (bmask[i]) b = st > 0 ? 0 : dim - 1;
    if (emask[i]) e = st > 0 ? dim : -1;
    b = std::clamp<int64_t>(b, st > 0 ? 0 : -1, st > 0 ? dim : dim - 1);
    e = std::clamp<int64_t>(e, st > 0 ? 0 : -1, st > 0 ? dim : dim - 1);
    squeeze[i] = smask[i] != 0;
    const int64_t n = st > 0 ? (e - b + st - 1) / st : (b - e - st - 1) / -st;
    size[i] = squeeze[i] ? 1 : std::max<int64_t>(n, 0);
    start[i] = b;
  }
  View v = SliceView(x->view, start, stride, size, squeeze);
  if (v.shape != op.outputs[0].type.shape) {
    return absl::InternalError(absl::StrCat("slice_by_index computed a shape unlike the declared ",
                                            op.outputs[0].type.ToString()));
  }
  return DefineView(op, op.outputs[0], std::move(v));
}

absl::Status Planner::PlanSplit(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(int64_t axis, Int(op, "axis"));
  const int r = x->type.rank();
  if (axis < 0) axis += r;
  const View xv = x->view;  // copy: defining outputs may not move x, but keep it simple
  int64_t offset = 0;
  for (const mil::NamedType& out : op.outputs) {
    std::vector<int64_t> begin(r, 0);
    begin[axis] = offset;
    offset += out.type.shape[axis];
    ANERD_RETURN_IF_ERROR(DefineView(
        op, out,
        SliceView(xv, begin, std::vector<int64_t>(r, 1), out.type.shape, std::vector<bool>(r))));
  }
  return absl::OkStatus();
}

absl::Status Planner::PlanConcat(const mil::Operation& op) {
  const mil::Argument* values = op.FindParam("values");
  ANERD_ASSIGN_OR_RETURN(int64_t interleave, Int(op, "interleave", 0));
  ANERD_ASSIGN_OR_RETURN(int64_t axis, Int(op, "axis"));
  const mil::TensorType& type = op.outputs[0].type;
  if (axis < 0) axis += type.rank();
  std::vector<View> parts;
  for (const mil::Argument& e : values->elements) {
    if (e.kind == mil::Argument::Kind::kRef) {
      parts.push_back(values_.at(e.ref).view);
    } else {
      Value lit;
      ANERD_ASSIGN_OR_RETURN(lit.constant, Decode(e.literal));
      parts.push_back(ContiguousView(AddConstant(lit.constant), e.literal.type.shape));
    }
  }
  View out = NewOutput(type);
  // Inputs already carry their own rounding; concat only moves values. Interleaved inputs (all
  // the same shape) go to every n-th slice along the axis. A part whose producer can write its
  // region directly (AliasIntoConcat) is not copied.
  const bool inter = interleave != 0;
  std::vector<View> copies;
  std::vector<int64_t> starts;  // element offset in `out` of each copied part
  std::vector<int64_t> strides = RowMajorStrides(out.shape);
  const int64_t step = strides[axis];
  if (inter) strides[axis] *= static_cast<int64_t>(parts.size());
  int64_t off = 0;
  for (const View& p : parts) {
    if (inter || !AliasIntoConcat(p, out, axis, off * step)) {
      copies.push_back(p);
      starts.push_back(off * step);
    }
    off += inter ? 1 : p.shape[axis];
  }
  if (!copies.empty()) AddStep(op, copies, {out}, 0, ConcatCopies(copies, starts, strides, out));
  Value v;
  v.view = out;
  return Define(op.outputs[0], std::move(v));
}

bool Planner::AliasIntoConcat(const View& part, const View& out, int64_t axis, int64_t start) {
  if (!passes_.on(PlannerPass::kAliasConcat)) return false;
  for (int64_t d = 0; d < axis; ++d) {
    if (out.shape[d] != 1) return false;  // the part's region would not be one contiguous run
  }
  BufferSpec& b = plan_.buffers[part.buf];
  if (b.constant || b.alias_of >= 0 || part.buf == out.buf || b.floats == 0 || part.offset != 0 ||
      !part.IsContiguous() || part.NumElements() != b.floats) {
    return false;
  }
  for (const IoBinding& in : plan_.inputs) {
    if (in.view.buf == part.buf) return false;
  }
  b.alias_of = out.buf;
  b.alias_offset = start;
  return true;
}

absl::Status Planner::PlanGather(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* x, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(const Value* idx, Operand(op, "indices"));
  ANERD_ASSIGN_OR_RETURN(int64_t axis, Int(op, "axis", 0));
  ANERD_ASSIGN_OR_RETURN(int64_t batch_dims, Int(op, "batch_dims", 0));
  if (batch_dims != 0) {
    return absl::UnimplementedError(absl::StrCat("op 'gather' at line ", op.loc.line,
                                                 " is not supported by the cpu backend: "
                                                 "batch_dims != 0"));
  }
  if (axis < 0) axis += x->type.rank();
  const View xv = x->view, iv = idx->view;
  View out = NewOutput(op.outputs[0].type);
  AddStep(op, {xv, iv}, {out}, 0, [xv, iv, out, axis](const StepContext& c) {
    return Gather(Strided{c.Ptr(xv), xv.shape, xv.strides},
                  Strided{c.Ptr(iv), iv.shape, iv.strides}, static_cast<int>(axis),
                  c.MutablePtr(out));
  });
  Value v;
  v.view = out;
  return Define(op.outputs[0], std::move(v));
}

}  // namespace anerd::backend::cpu
