// Planning of compute ops: matrix products on cblas (operand transposes folded into strides, the
// output written transposed when its only consumer transposes it back), conv lowered to GEMM,
// softmax, reductions, layer norm and attention on contiguous inputs.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/backend/cpu/op_support.h"
#include "server/backend/cpu/planner.h"

namespace anerd::backend::cpu {
namespace {

absl::Status NotSupported(const mil::Operation& op, absl::string_view why) {
  return absl::UnimplementedError(absl::StrCat("op '", op.op, "' at line ", op.loc.line,
                                               " is not supported by the cpu backend: ", why));
}

View SwapLast2(const View& v) {
  std::vector<int64_t> perm(v.rank());
  for (int i = 0; i < v.rank(); ++i) perm[i] = i;
  std::swap(perm[v.rank() - 1], perm[v.rank() - 2]);
  return TransposeView(v, perm);
}

bool SwapsLast2(const std::vector<int64_t>& perm) {
  const int r = static_cast<int>(perm.size());
  if (r < 2 || perm[r - 1] != r - 2 || perm[r - 2] != r - 1) return false;
  for (int i = 0; i < r - 2; ++i) {
    if (perm[i] != i) return false;
  }
  return true;
}

// Inserts a unit dim at `pos` (0 = front, -1 = back) of a view.
View Unsqueeze(View v, bool front) {
  v.shape.insert(front ? v.shape.begin() : v.shape.end(), 1);
  v.strides.insert(front ? v.strides.begin() : v.strides.end(), 0);
  return v;
}

void RoundIf(Rounding r, float* p, int64_t n) { RoundInPlace(r, p, n); }

}  // namespace

void Planner::EmitMatmul(const mil::Operation& op, const View& x, const View& y, const View& out,
                         const View* bias) {
  MatmulArgs proto;
  proto.x.shape = x.shape;
  proto.x.strides = x.strides;
  proto.y.shape = y.shape;
  proto.y.strides = y.strides;
  proto.out_shape = out.shape;
  proto.out_strides = out.strides;
  const int64_t n_out = out.NumElements();
  const Rounding rounding = RoundingFor(op.outputs[0].type.dtype);
  std::vector<View> reads = {x, y};
  std::optional<View> b;
  if (bias != nullptr) {
    b = *bias;
    reads.push_back(*bias);
  }
  AddStep(op, reads, {out}, MatmulScratchFloats(proto),
          [proto, x, y, out, b, n_out, rounding](const StepContext& c) {
            MatmulArgs args = proto;
            args.x.data = c.Ptr(x);
            args.y.data = c.Ptr(y);
            float* o = c.MutablePtr(out);
            if (!b) {  // round each batch's block right after its GEMM
              Matmul(args, o, c.scratch, rounding);
              return absl::OkStatus();
            }
            Matmul(args, o, c.scratch);
            const int64_t n = out.shape.back();  // out is contiguous [..., N] for linear
            const float* bp = c.Ptr(*b);
            for (int64_t i = 0; i < n_out; ++i) o[i] += bp[(i % n) * b->strides[0]];
            RoundIf(rounding, o, n_out);
            return absl::OkStatus();
          });
}

absl::Status Planner::PlanMatmul(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* xv, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(const Value* yv, Operand(op, "y"));
  ANERD_ASSIGN_OR_RETURN(int64_t tx, Int(op, "transpose_x", 0));
  ANERD_ASSIGN_OR_RETURN(int64_t ty, Int(op, "transpose_y", 0));
  View x = xv->view, y = yv->view;
  if (x.rank() == 1) x = Unsqueeze(x, true);
  if (y.rank() == 1) y = Unsqueeze(y, false);
  if (tx) x = SwapLast2(x);
  if (ty) y = SwapLast2(y);
  // Internal output shape: broadcast batch dims, then M, N.
  const int rb = std::max(x.rank(), y.rank()) - 2;
  std::vector<int64_t> shape(rb, 1);
  for (int i = 0; i < rb; ++i) {
    const int xi = i - (rb - (x.rank() - 2)), yi = i - (rb - (y.rank() - 2));
    if (xi >= 0) shape[i] = std::max(shape[i], x.shape[xi]);
    if (yi >= 0) shape[i] = std::max(shape[i], y.shape[yi]);
  }
  shape.push_back(x.shape[x.rank() - 2]);
  shape.push_back(y.shape[y.rank() - 1]);
  const mil::NamedType& out = op.outputs[0];
  const mil::Operation* next =
      passes_.on(PlannerPass::kFoldTransposes) ? SoleConsumer(out.name) : nullptr;
  bool transposed_out = false;
  if (next != nullptr && next->op == "transpose" && xv->type.rank() >= 2 && yv->type.rank() >= 2) {
    absl::StatusOr<std::vector<int64_t>> perm = Ints(*next, "perm");
    transposed_out = perm.ok() && SwapsLast2(*perm);
  }
  View buf = ContiguousView(NewBuffer(out.type.NumElements()), shape);
  if (transposed_out) buf = SwapLast2(ContiguousView(buf.buf, SwapLast2(buf).shape));
  EmitMatmul(op, x, y, buf, nullptr);
  if (transposed_out) plan_.steps.back().note = "output written transposed";
  Value v;
  v.view = transposed_out ? buf : ContiguousView(buf.buf, out.type.shape);
  return Define(out, std::move(v));
}

absl::Status Planner::PlanLinear(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* xv, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(const Value* wv, Operand(op, "weight"));
  View x = xv->view.rank() == 1 ? Unsqueeze(xv->view, true) : xv->view;
  View w = SwapLast2(wv->view);  // [K, N]
  std::vector<int64_t> shape(x.shape.begin(), x.shape.end() - 1);
  shape.push_back(w.shape[1]);
  const mil::NamedType& out = op.outputs[0];
  View buf = ContiguousView(NewBuffer(out.type.NumElements()), shape);
  const Value* bias = nullptr;
  if (Has(op, "bias")) {
    ANERD_ASSIGN_OR_RETURN(bias, Operand(op, "bias"));
  }
  View bview = bias != nullptr ? bias->view : View{};
  if (bias != nullptr && bview.rank() == 0) bview = BroadcastView(bview, {w.shape[1]});
  EmitMatmul(op, x, w, buf, bias != nullptr ? &bview : nullptr);
  Value v;
  v.view = ContiguousView(buf.buf, out.type.shape);
  return Define(out, std::move(v));
}

absl::Status Planner::PlanConv(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* xv, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(const Value* wv, Operand(op, "weight"));
  const mil::NamedType& out = op.outputs[0];
  const int r = xv->type.rank();
  OpQuery query = OpQuery::Named(op.op);
  query.inputs.emplace_back("x", xv->type);
  if (std::string why = CpuRefusal(query); !why.empty()) return NotSupported(op, why);
  View x = xv->view, w = Contiguous(op, wv->view);
  std::vector<int64_t> oshape = out.type.shape, wshape = w.shape;
  if (r == 3) {  // 1-D: H = 1
    x.shape.insert(x.shape.begin() + 2, 1);
    x.strides.insert(x.strides.begin() + 2, 0);
    oshape.insert(oshape.begin() + 2, 1);
    wshape.insert(wshape.begin() + 2, 1);
  }
  const int ns = r - 2;
  ConvParams p;
  ANERD_ASSIGN_OR_RETURN(p.groups, Int(op, "groups", 1));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> strides,
                         Ints(op, "strides", std::vector<int64_t>(ns, 1)));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> dil,
                         Ints(op, "dilations", std::vector<int64_t>(ns, 1)));
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> pad,
                         Ints(op, "pad", std::vector<int64_t>(2 * ns, 0)));
  ANERD_ASSIGN_OR_RETURN(std::string pad_type, String(op, "pad_type", "valid"));
  for (int i = 0; i < ns; ++i) {
    const int d = 2 - ns + i;  // spatial index in the 2-D params
    p.stride[d] = strides[i];
    p.dilation[d] = dil[i];
    const int64_t in = x.shape[2 + d], k = (wshape[2 + d] - 1) * dil[i] + 1;
    int64_t lo = 0, hi = 0;
    if (pad_type == "custom") {
      lo = pad[2 * i];
      hi = pad[2 * i + 1];
    } else if (pad_type == "same" || pad_type == "same_lower") {
      const int64_t o = (in + strides[i] - 1) / strides[i];
      const int64_t total = std::max<int64_t>((o - 1) * strides[i] + k - in, 0);
      lo = pad_type == "same" ? total / 2 : total - total / 2;
      hi = total - lo;
    }
    p.pad[2 * d] = lo;
    p.pad[2 * d + 1] = hi;
    if ((in + lo + hi - k) / strides[i] + 1 != oshape[2 + d]) {
      return absl::InternalError("conv output size disagrees with the declared type");
    }
  }
  const Value* bias = nullptr;
  if (Has(op, "bias")) {
    ANERD_ASSIGN_OR_RETURN(bias, Operand(op, "bias"));
  }
  View bview = bias != nullptr ? Contiguous(op, bias->view) : View{};
  View o = NewOutput(out.type);
  const Rounding rounding = RoundingFor(out.type.dtype);
  Strided xs{nullptr, x.shape, x.strides};
  const int64_t scratch = ConvScratchFloats(xs, wshape, oshape, p);
  std::vector<View> reads = {x, w};
  if (bias != nullptr) reads.push_back(bview);
  const bool has_bias = bias != nullptr;
  AddStep(op, reads, {o}, scratch,
          [xs, x, w, wshape, bview, has_bias, p, oshape, o, rounding](const StepContext& c) {
            Strided xr = xs;
            xr.data = c.Ptr(x);
            float* dst = c.MutablePtr(o);
            Conv2d(xr, c.Ptr(w), wshape, has_bias ? c.Ptr(bview) : nullptr, p, oshape, dst,
                   c.scratch);
            RoundIf(rounding, dst, o.NumElements());
            return absl::OkStatus();
          });
  Value v;
  v.view = o;
  return Define(out, std::move(v));
}

absl::Status Planner::PlanSoftmax(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* xv, Operand(op, "x"));
  ANERD_ASSIGN_OR_RETURN(int64_t axis, Int(op, "axis", -1));
  if (axis < 0) axis += xv->type.rank();
  if (axis == xv->type.rank() - 1 && FuseableInto(RefName(op, "x"), xv->type.shape)) {
    return PlanSoftmaxOfGroup(op, xv);
  }
  const View x = Contiguous(op, xv->view);
  const View o = NewOutput(op.outputs[0].type);
  const Rounding rounding = RoundingFor(op.outputs[0].type.dtype);
  AddStep(op, {x}, {o}, 0, [x, o, axis, rounding](const StepContext& c) {
    Softmax(c.Ptr(x), x.shape, static_cast<int>(axis), c.MutablePtr(o), rounding);
    return absl::OkStatus();
  });
  Value v;
  v.view = o;
  return Define(op.outputs[0], std::move(v));
}

absl::Status Planner::PlanReduce(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* xv, Operand(op, "x"));
  const int r = xv->type.rank();
  std::vector<int64_t> all(r);
  for (int i = 0; i < r; ++i) all[i] = i;
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> axes_arg, Ints(op, "axes", all));
  std::vector<int> axes;
  for (int64_t a : axes_arg) axes.push_back(static_cast<int>(a < 0 ? a + r : a));
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  const ReduceKind kind = op.op == "reduce_sum"    ? ReduceKind::kSum
                          : op.op == "reduce_mean" ? ReduceKind::kMean
                                                   : ReduceKind::kMax;
  if (axes == std::vector<int>{r - 1} && FuseableInto(RefName(op, "x"), xv->type.shape)) {
    return PlanReduceOfGroup(op, xv, kind);
  }
  const View x = Contiguous(op, xv->view);
  const View o = NewOutput(op.outputs[0].type);
  const Rounding rounding = RoundingFor(op.outputs[0].type.dtype);
  AddStep(op, {x}, {o}, x.NumElements(), [x, o, axes, kind, rounding](const StepContext& c) {
    Reduce(kind, c.Ptr(x), x.shape, axes, c.MutablePtr(o), c.scratch);
    RoundIf(rounding, c.MutablePtr(o), o.NumElements());
    return absl::OkStatus();
  });
  Value v;
  v.view = o;
  return Define(op.outputs[0], std::move(v));
}

absl::Status Planner::PlanLayerNorm(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* xv, Operand(op, "x"));
  const int r = xv->type.rank();
  ANERD_ASSIGN_OR_RETURN(std::vector<int64_t> axes, Ints(op, "axes", std::vector<int64_t>{}));
  if (!Has(op, "axes")) {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  for (int64_t& a : axes) a = a < 0 ? a + r : a;
  std::sort(axes.begin(), axes.end());
  for (size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] != r - static_cast<int64_t>(axes.size()) + static_cast<int64_t>(i)) {
      return NotSupported(op, "axes must be the trailing dims");
    }
  }
  const int first = r - static_cast<int>(axes.size());
  ANERD_ASSIGN_OR_RETURN(double eps, Float(op, "epsilon", 1e-5));
  std::optional<View> gamma, beta;
  for (const char* name : {"gamma", "beta"}) {
    if (!Has(op, name)) continue;
    ANERD_ASSIGN_OR_RETURN(const Value* pv, Operand(op, name));
    (name[0] == 'g' ? gamma : beta) = Contiguous(op, pv->view);
  }
  const View x = Contiguous(op, xv->view);
  const View o = NewOutput(op.outputs[0].type);
  const Rounding rounding = RoundingFor(op.outputs[0].type.dtype);
  std::vector<View> reads = {x};
  if (gamma) reads.push_back(*gamma);
  if (beta) reads.push_back(*beta);
  const float epsf = static_cast<float>(eps);
  AddStep(op, reads, {o}, 0, [x, o, first, gamma, beta, epsf, rounding](const StepContext& c) {
    LayerNorm(c.Ptr(x), x.shape, first, gamma ? c.Ptr(*gamma) : nullptr,
              beta ? c.Ptr(*beta) : nullptr, epsf, c.MutablePtr(o));
    RoundIf(rounding, c.MutablePtr(o), o.NumElements());
    return absl::OkStatus();
  });
  Value v;
  v.view = o;
  return Define(op.outputs[0], std::move(v));
}

absl::Status Planner::PlanAttention(const mil::Operation& op) {
  ANERD_ASSIGN_OR_RETURN(const Value* qv, Operand(op, "query"));
  ANERD_ASSIGN_OR_RETURN(const Value* kv, Operand(op, "key"));
  ANERD_ASSIGN_OR_RETURN(const Value* vv, Operand(op, "value"));
  const mil::TensorType& ot = op.outputs[0].type;
  const int r = ot.rank();
  const std::vector<int64_t> batch(ot.shape.begin(), ot.shape.end() - 2);
  int64_t nb = 1;
  for (int64_t d : batch) nb *= d;
  const int64_t l = ot.shape[r - 2], ev = ot.shape[r - 1], e = qv->type.shape.back();
  const int64_t s = kv->type.shape[kv->type.rank() - 2];
  auto full = [&](const Value* v, int64_t rows, int64_t cols) {
    std::vector<int64_t> shape = batch;
    shape.push_back(rows);
    shape.push_back(cols);
    return Contiguous(op, BroadcastView(v->view, shape));
  };
  const View q = full(qv, l, e), k = full(kv, s, e), v = full(vv, s, ev);
  std::optional<View> mask;
  if (Has(op, "attn_mask") && !options_.ignore_attn_mask) {
    ANERD_ASSIGN_OR_RETURN(const Value* mv, Operand(op, "attn_mask"));
    std::vector<int64_t> mshape = batch;
    mshape.push_back(l);
    mshape.push_back(s);
    mask = BroadcastView(mv->view, mshape);
    if (mv->type.dtype == mil::DType::kBool) {  // true = attend: convert to 0 / -inf
      const View src = *mask;
      const View dst = ContiguousView(NewBuffer(src.NumElements()), mshape);
      AddStep(op, {src}, {dst}, 0, [src, dst](const StepContext& c) {
        float* d = c.MutablePtr(dst);
        CopyStrided(Strided{c.Ptr(src), src.shape, src.strides}, d);
        for (int64_t i = 0; i < dst.NumElements(); ++i) {
          d[i] = d[i] != 0.0f ? 0.0f : -std::numeric_limits<float>::infinity();
        }
        return absl::OkStatus();
      });
      mask = dst;
    }
  }
  const View o = NewOutput(ot);
  const Rounding rounding = RoundingFor(ot.dtype);
  std::vector<View> reads = {q, k, v};
  if (mask) reads.push_back(*mask);
  AddStep(op, reads, {o}, AttentionScratchFloats(l, s), [=](const StepContext& c) {
    Strided ms;
    if (mask) ms = Strided{c.Ptr(*mask), mask->shape, mask->strides};
    Attention(c.Ptr(q), c.Ptr(k), c.Ptr(v), mask ? &ms : nullptr, nb, l, s, e, ev, c.MutablePtr(o),
              c.scratch);
    RoundIf(rounding, c.MutablePtr(o), o.NumElements());
    return absl::OkStatus();
  });
  Value val;
  val.view = o;
  return Define(op.outputs[0], std::move(val));
}

}  // namespace anerd::backend::cpu
