#include "tests/backend/reference_evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"
#include "common/mil/blob_file.h"
#include "common/status_macros.h"

namespace anerd::testing {
namespace {

using Shape = std::vector<int64_t>;
using mil::Operation;

int64_t Count(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape Unravel(int64_t i, const Shape& s) {
  Shape idx(s.size());
  for (int d = static_cast<int>(s.size()) - 1; d >= 0; --d) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}

int64_t Ravel(const Shape& idx, const Shape& s) {
  int64_t i = 0;
  for (size_t d = 0; d < s.size(); ++d) i = i * s[d] + idx[d];
  return i;
}

// Element of `t` for output index `idx` under NumPy broadcasting.
double At(const RefTensor& t, const Shape& idx) {
  const size_t lead = idx.size() - t.shape.size();
  int64_t i = 0;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    i = i * t.shape[d] + (t.shape[d] == 1 ? 0 : idx[lead + d]);
  }
  return t.values[i];
}

class Evaluator {
 public:
  Evaluator(const mil::VerifiedProgram& p, const RefOptions& o) : program_(p), opt_(o) {}

  absl::StatusOr<std::map<std::string, RefTensor>> Run(
      const std::map<std::string, RefTensor>& inputs) {
    for (const auto& in : program_.main().inputs) env_[in.name] = inputs.at(in.name);
    for (const Operation& op : program_.main().ops) {
      absl::Status st = Eval(op);
      if (!st.ok()) return st;
    }
    std::map<std::string, RefTensor> out;
    for (const std::string& name : program_.main().outputs) {
      RefTensor t = env_.at(name);
      // Output tensors carry their declared dtype: fp16 outputs are fp16 bits in every mode.
      if (t.dtype == mil::DType::kFp16) {
        for (double& v : t.values) v = RoundToFp16(v);
      }
      out[name] = std::move(t);
    }
    return out;
  }

 private:
  absl::StatusOr<RefTensor> Arg(const Operation& op, const std::string& name) {
    const mil::Argument* a = op.FindParam(name);
    if (a == nullptr) return absl::NotFoundError(name);
    if (a->kind == mil::Argument::Kind::kRef) return env_.at(a->ref);
    return Lit(a->literal);
  }
  absl::StatusOr<RefTensor> Lit(const mil::Literal& lit) {
    RefTensor t{lit.type.dtype, lit.type.shape, {}};
    if (!lit.blob) {
      t.values = lit.values;
      if (t.values.size() == 1) t.values.assign(Count(t.shape), t.values[0]);
      return t;
    }
    ANERD_ASSIGN_OR_RETURN(absl::string_view bytes,
                           mil::ResolveBlob(program_.weights(), *lit.blob, lit.type, nullptr));
    for (int64_t i = 0; i < Count(t.shape); ++i) {
      if (t.dtype == mil::DType::kFp16) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        t.values.push_back(HalfToFloat(h));
      } else if (t.dtype == mil::DType::kFp32) {
        float f;
        std::memcpy(&f, bytes.data() + 4 * i, 4);
        t.values.push_back(f);
      } else if (t.dtype == mil::DType::kInt8) {
        t.values.push_back(static_cast<int8_t>(bytes[i]));
      } else {
        t.values.push_back(static_cast<uint8_t>(bytes[i]));
      }
    }
    return t;
  }
  double Num(const Operation& op, const std::string& name, double fallback) {
    auto t = Arg(op, name);
    return t.ok() ? t->values[0] : fallback;
  }
  Shape Ints(const Operation& op, const std::string& name, Shape fallback) {
    auto t = Arg(op, name);
    if (!t.ok()) return fallback;
    Shape s;
    for (double v : t->values) s.push_back(static_cast<int64_t>(v));
    return s;
  }
  std::string Str(const Operation& op, const std::string& name, std::string fallback) {
    const mil::Argument* a = op.FindParam(name);
    if (a == nullptr) return fallback;
    if (a->kind == mil::Argument::Kind::kLiteral) return a->literal.strings.at(0);
    return strings_.at(a->ref);
  }

  void Set(const Operation& op, RefTensor t, int index = 0) {
    const mil::NamedType& o = op.outputs[index];
    t.dtype = o.type.dtype;
    t.shape = o.type.shape;
    for (double& v : t.values) v = Round(o.type.dtype, v);
    env_[o.name] = std::move(t);
  }
  double Round(mil::DType dt, double v) const {
    if (dt == mil::DType::kFp16) {
      return opt_.ane_numerics ? RoundToFp16(v) : static_cast<float>(v);
    }
    if (dt == mil::DType::kFp32) return static_cast<float>(v);
    return v;
  }

  absl::Status Eval(const Operation& op);
  absl::Status Elementwise(const Operation& op);
  absl::Status Matmul(const Operation& op);
  absl::Status Conv(const Operation& op);
  absl::Status Movement(const Operation& op);
  absl::Status Reduction(const Operation& op);
  absl::Status Attention(const Operation& op);
  absl::Status Quant(const Operation& op);

  const mil::VerifiedProgram& program_;
  RefOptions opt_;
  std::map<std::string, RefTensor> env_;
  std::map<std::string, std::string> strings_;
};

absl::Status Evaluator::Eval(const Operation& op) {
  static const char* kEw[] = {"add",  "sub",   "mul",  "real_div", "maximum", "minimum", "pow",
                              "sqrt", "rsqrt", "exp",  "log",      "tanh",    "sigmoid", "relu",
                              "silu", "gelu",  "clip", "select",   "cast"};
  if (op.op == "const") {
    const mil::Literal& lit = op.FindParam("val")->literal;
    if (lit.type.dtype == mil::DType::kString) {
      strings_[op.outputs[0].name] = lit.strings.at(0);
      return absl::OkStatus();
    }
    ANERD_ASSIGN_OR_RETURN(RefTensor t, Lit(lit));
    Set(op, std::move(t));
    return absl::OkStatus();
  }
  for (const char* e : kEw) {
    if (op.op == e) return Elementwise(op);
  }
  if (op.op == "matmul" || op.op == "linear") return Matmul(op);
  if (op.op == "conv") return Conv(op);
  if (op.op == "softmax" || op.op == "layer_norm" || op.op.rfind("reduce_", 0) == 0) {
    return Reduction(op);
  }
  if (op.op == "scaled_dot_product_attention") return Attention(op);
  if (op.op == "quantize" || op.op == "dequantize" || op.op == "constexpr_affine_dequantize") {
    return Quant(op);
  }
  return Movement(op);
}

double Unary(const std::string& op, double x, double eps, const std::string& mode) {
  if (op == "sqrt") return std::sqrt(x);
  if (op == "rsqrt") return 1.0 / std::sqrt(x + eps);
  if (op == "exp") return std::exp(x);
  if (op == "log") return std::log(x + eps);
  if (op == "tanh") return std::tanh(x);
  if (op == "sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (op == "relu") return x > 0 ? x : 0.0;
  if (op == "silu") return x / (1.0 + std::exp(-x));
  // gelu
  if (mode == "TANH_APPROXIMATION") {
    return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  }
  if (mode == "SIGMOID_APPROXIMATION") return x / (1.0 + std::exp(-1.702 * x));
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

double Binary(const std::string& op, double a, double b) {
  if (op == "add") return a + b;
  if (op == "sub") return a - b;
  if (op == "mul") return a * b;
  if (op == "real_div") return a / b;
  if (op == "maximum") return std::max(a, b);
  if (op == "minimum") return std::min(a, b);
  return std::pow(a, b);
}

absl::Status Evaluator::Elementwise(const Operation& op) {
  const Shape& out = op.outputs[0].type.shape;
  RefTensor r;
  r.values.resize(Count(out));
  if (op.op == "select") {
    ANERD_ASSIGN_OR_RETURN(RefTensor c, Arg(op, "cond"));
    ANERD_ASSIGN_OR_RETURN(RefTensor a, Arg(op, "a"));
    ANERD_ASSIGN_OR_RETURN(RefTensor b, Arg(op, "b"));
    for (int64_t i = 0; i < Count(out); ++i) {
      const Shape idx = Unravel(i, out);
      r.values[i] = At(c, idx) != 0 ? At(a, idx) : At(b, idx);
    }
  } else if (op.FindParam("y") != nullptr) {
    ANERD_ASSIGN_OR_RETURN(RefTensor a, Arg(op, "x"));
    ANERD_ASSIGN_OR_RETURN(RefTensor b, Arg(op, "y"));
    for (int64_t i = 0; i < Count(out); ++i) {
      const Shape idx = Unravel(i, out);
      r.values[i] = Binary(op.op, At(a, idx), At(b, idx));
    }
  } else {
    ANERD_ASSIGN_OR_RETURN(RefTensor x, Arg(op, "x"));
    const double eps = Num(op, "epsilon", op.op == "rsqrt" ? 1e-12 : 1e-45);
    const std::string mode = Str(op, "mode", "EXACT");
    const mil::DType to = op.outputs[0].type.dtype;
    for (int64_t i = 0; i < Count(out); ++i) {
      const double v = x.values[i];
      if (op.op == "clip") {
        r.values[i] = std::min(std::max(v, Num(op, "alpha", 0)), Num(op, "beta", 0));
      } else if (op.op == "cast") {
        r.values[i] = to == mil::DType::kBool ? (v != 0) : mil::IsInteger(to) ? std::trunc(v) : v;
      } else {
        r.values[i] = Unary(op.op, v, eps, mode);
      }
    }
  }
  Set(op, std::move(r));
  return absl::OkStatus();
}

absl::Status Evaluator::Matmul(const Operation& op) {
  ANERD_ASSIGN_OR_RETURN(RefTensor x, Arg(op, "x"));
  const bool linear = op.op == "linear";
  ANERD_ASSIGN_OR_RETURN(RefTensor y, Arg(op, linear ? "weight" : "y"));
  const bool tx = Num(op, "transpose_x", 0) != 0, ty = linear || Num(op, "transpose_y", 0) != 0;
  if (x.shape.size() == 1) x.shape.insert(x.shape.begin(), 1);
  if (y.shape.size() == 1) y.shape.push_back(1);
  const int rx = x.shape.size(), ry = y.shape.size();
  const int64_t m = tx ? x.shape[rx - 1] : x.shape[rx - 2],
                k = tx ? x.shape[rx - 2] : x.shape[rx - 1];
  const int64_t n = ty ? y.shape[ry - 2] : y.shape[ry - 1];
  const int rb = std::max(rx, ry) - 2;
  Shape batch(rb, 1);
  for (int i = 0; i < rb; ++i) {
    const int xi = i - (rb - (rx - 2)), yi = i - (rb - (ry - 2));
    if (xi >= 0) batch[i] = std::max(batch[i], x.shape[xi]);
    if (yi >= 0) batch[i] = std::max(batch[i], y.shape[yi]);
  }
  RefTensor r;
  r.values.assign(Count(batch) * m * n, 0.0);
  for (int64_t b = 0; b < Count(batch); ++b) {
    const Shape bi = Unravel(b, batch);
    auto xo = [&](int64_t i, int64_t j) {  // x element (row i, col j) of logical x
      Shape idx = bi;
      idx.push_back(tx ? j : i);
      idx.push_back(tx ? i : j);
      return At(x, Shape(idx.end() - rx, idx.end()));
    };
    auto yo = [&](int64_t i, int64_t j) {
      Shape idx = bi;
      idx.push_back(ty ? j : i);
      idx.push_back(ty ? i : j);
      return At(y, Shape(idx.end() - ry, idx.end()));
    };
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) acc += xo(i, p) * yo(p, j);
        r.values[(b * m + i) * n + j] = acc;
      }
    }
  }
  if (linear && op.FindParam("bias") != nullptr) {
    ANERD_ASSIGN_OR_RETURN(RefTensor bias, Arg(op, "bias"));
    for (size_t i = 0; i < r.values.size(); ++i) {
      r.values[i] += bias.values.size() == 1 ? bias.values[0] : bias.values[i % n];
    }
  }
  Set(op, std::move(r));
  return absl::OkStatus();
}

absl::Status Evaluator::Conv(const Operation& op) {
  ANERD_ASSIGN_OR_RETURN(RefTensor x, Arg(op, "x"));
  ANERD_ASSIGN_OR_RETURN(RefTensor w, Arg(op, "weight"));
  Shape os = op.outputs[0].type.shape;
  if (x.shape.size() == 3) {
    x.shape.insert(x.shape.begin() + 2, 1);
    w.shape.insert(w.shape.begin() + 2, 1);
    os.insert(os.begin() + 2, 1);
  }
  const int ns = op.outputs[0].type.rank() - 2;
  const int64_t g = Num(op, "groups", 1);
  Shape st = Ints(op, "strides", Shape(ns, 1)), dil = Ints(op, "dilations", Shape(ns, 1));
  Shape pad = Ints(op, "pad", Shape(2 * ns, 0));
  const std::string pt = Str(op, "pad_type", "valid");
  if (ns == 1) {
    st.insert(st.begin(), 1);
    dil.insert(dil.begin(), 1);
    pad.insert(pad.begin(), {0, 0});
  }
  int64_t lo[2];
  for (int d = 0; d < 2; ++d) {
    const int64_t in = x.shape[2 + d], kk = (w.shape[2 + d] - 1) * dil[d] + 1;
    if (pt == "custom") {
      lo[d] = pad[2 * d];
    } else if (pt == "same" || pt == "same_lower") {
      const int64_t total = std::max<int64_t>((os[2 + d] - 1) * st[d] + kk - in, 0);
      lo[d] = pt == "same" ? total / 2 : total - total / 2;
    } else {
      lo[d] = 0;
    }
  }
  const int64_t c = x.shape[1], cg = c / g, oc = os[1], ocg = oc / g;
  RefTensor bias;
  const bool has_bias = op.FindParam("bias") != nullptr;
  if (has_bias) {
    ANERD_ASSIGN_OR_RETURN(bias, Arg(op, "bias"));
  }
  RefTensor r;
  r.values.assign(Count(os), 0.0);
  for (int64_t i = 0; i < Count(os); ++i) {
    const Shape o = Unravel(i, os);
    const int64_t grp = o[1] / ocg;
    double acc = has_bias ? bias.values[o[1]] : 0.0;
    for (int64_t ci = 0; ci < cg; ++ci) {
      for (int64_t a = 0; a < w.shape[2]; ++a) {
        for (int64_t b = 0; b < w.shape[3]; ++b) {
          const int64_t iy = o[2] * st[0] + a * dil[0] - lo[0];
          const int64_t ix = o[3] * st[1] + b * dil[1] - lo[1];
          if (iy < 0 || iy >= x.shape[2] || ix < 0 || ix >= x.shape[3]) continue;
          acc += w.values[Ravel({o[1], ci, a, b}, w.shape)] *
                 x.values[Ravel({o[0], grp * cg + ci, iy, ix}, x.shape)];
        }
      }
    }
    r.values[i] = acc;
  }
  Set(op, std::move(r));
  return absl::OkStatus();
}

absl::Status Evaluator::Movement(const Operation& op) {
  const Shape& out = op.outputs[0].type.shape;
  if (op.op == "concat") {
    const int64_t rank = out.size();
    int64_t axis = Num(op, "axis", 0);
    if (axis < 0) axis += rank;
    std::vector<RefTensor> parts;
    for (const mil::Argument& e : op.FindParam("values")->elements) {
      if (e.kind == mil::Argument::Kind::kRef) {
        parts.push_back(env_.at(e.ref));
      } else {
        ANERD_ASSIGN_OR_RETURN(RefTensor t, Lit(e.literal));
        parts.push_back(t);
      }
    }
    RefTensor r;
    r.values.resize(Count(out));
    const bool interleave = Num(op, "interleave", 0) != 0;
    for (int64_t i = 0; i < Count(out); ++i) {
      Shape idx = Unravel(i, out);
      if (interleave) {
        const int64_t n = parts.size(), k = idx[axis] % n;
        idx[axis] /= n;
        r.values[i] = parts[k].values[Ravel(idx, parts[k].shape)];
        continue;
      }
      for (const RefTensor& p : parts) {
        if (idx[axis] < p.shape[axis]) {
          r.values[i] = p.values[Ravel(idx, p.shape)];
          break;
        }
        idx[axis] -= p.shape[axis];
      }
    }
    Set(op, std::move(r));
    return absl::OkStatus();
  }
  ANERD_ASSIGN_OR_RETURN(RefTensor x, Arg(op, "x"));
  const int rank = x.shape.size();
  if (op.op == "reshape") {
    Set(op, x);
    return absl::OkStatus();
  }
  if (op.op == "split") {
    int64_t axis = Num(op, "axis", 0), off = 0;
    if (axis < 0) axis += rank;
    for (size_t k = 0; k < op.outputs.size(); ++k) {
      const Shape& os = op.outputs[k].type.shape;
      RefTensor r;
      for (int64_t i = 0; i < Count(os); ++i) {
        Shape idx = Unravel(i, os);
        idx[axis] += off;
        r.values.push_back(x.values[Ravel(idx, x.shape)]);
      }
      off += os[axis];
      Set(op, std::move(r), k);
    }
    return absl::OkStatus();
  }
  std::function<int64_t(int64_t)> src;  // output flat index -> x flat index
  if (op.op == "transpose") {
    Shape perm = Ints(op, "perm", {});
    src = [&, perm](int64_t i) {
      const Shape o = Unravel(i, out);
      Shape idx(rank);
      for (int d = 0; d < rank; ++d) idx[(perm[d] + rank) % rank] = o[d];
      return Ravel(idx, x.shape);
    };
  } else if (op.op == "slice_by_size") {
    Shape begin = Ints(op, "begin", {});
    src = [&, begin](int64_t i) {
      Shape idx = Unravel(i, out);
      for (int d = 0; d < rank; ++d) idx[d] += begin[d] < 0 ? begin[d] + x.shape[d] : begin[d];
      return Ravel(idx, x.shape);
    };
  } else if (op.op == "slice_by_index") {
    Shape begin = Ints(op, "begin", {}), stride = Ints(op, "stride", Shape(rank, 1));
    Shape bmask = Ints(op, "begin_mask", Shape(rank, 0)),
          sq = Ints(op, "squeeze_mask", Shape(rank, 0));
    src = [&, begin, stride, bmask, sq](int64_t i) {
      // Output dims are x's dims minus squeezed ones.
      Shape kept;
      for (int d = 0; d < rank; ++d) {
        if (!sq[d]) kept.push_back(d);
      }
      const Shape o = Unravel(i, out);
      Shape idx(rank);
      for (int d = 0; d < rank; ++d) {
        int64_t b = begin[d] < 0 ? begin[d] + x.shape[d] : begin[d];
        if (bmask[d]) b = stride[d] > 0 ? 0 : x.shape[d] - 1;
        b = std::min(std::max<int64_t>(b, 0), x.shape[d] - 1);
        idx[d] = b;
      }
      for (size_t k = 0; k < kept.size(); ++k) idx[kept[k]] += o[k] * stride[kept[k]];
      return Ravel(idx, x.shape);
    };
  } else if (op.op == "gather") {
    ANERD_ASSIGN_OR_RETURN(RefTensor ind, Arg(op, "indices"));
    int64_t axis = Num(op, "axis", 0);
    if (axis < 0) axis += rank;
    const int ir = ind.shape.size();
    src = [&, ind, axis, ir](int64_t i) {
      const Shape o = Unravel(i, out);
      Shape idx(o.begin(), o.begin() + axis);
      int64_t j = ind.values[Ravel(Shape(o.begin() + axis, o.begin() + axis + ir), ind.shape)];
      idx.push_back(j < 0 ? j + x.shape[axis] : j);
      idx.insert(idx.end(), o.begin() + axis + ir, o.end());
      return Ravel(idx, x.shape);
    };
  } else {
    return absl::UnimplementedError(absl::StrCat("reference: unknown op ", op.op));
  }
  RefTensor r;
  for (int64_t i = 0; i < Count(out); ++i) r.values.push_back(x.values[src(i)]);
  Set(op, std::move(r));
  return absl::OkStatus();
}

absl::Status Evaluator::Reduction(const Operation& op) {
  ANERD_ASSIGN_OR_RETURN(RefTensor x, Arg(op, "x"));
  const int rank = x.shape.size();
  Shape all(rank);
  for (int d = 0; d < rank; ++d) all[d] = d;
  Shape axes =
      op.op == "softmax" ? Shape{static_cast<int64_t>(Num(op, "axis", -1))} : Ints(op, "axes", all);
  std::vector<bool> red(rank, false);
  for (int64_t a : axes) red[(a + rank) % rank] = true;
  // Group elements by their index with reduced dims zeroed.
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t i = 0; i < Count(x.shape); ++i) {
    Shape idx = Unravel(i, x.shape);
    for (int d = 0; d < rank; ++d) {
      if (red[d]) idx[d] = 0;
    }
    groups[Ravel(idx, x.shape)].push_back(i);
  }
  RefTensor r;
  if (op.op.rfind("reduce_", 0) == 0) {
    for (const auto& [key, members] : groups) {
      double acc = op.op == "reduce_max" ? -INFINITY : 0.0;
      for (int64_t i : members)
        acc = op.op == "reduce_max" ? std::max(acc, x.values[i]) : acc + x.values[i];
      if (op.op == "reduce_mean") acc /= members.size();
      r.values.push_back(acc);  // std::map orders keys = row-major order of kept dims
    }
    Set(op, std::move(r));
    return absl::OkStatus();
  }
  r.values.resize(x.values.size());
  RefTensor gamma, beta;
  const bool hg = op.FindParam("gamma") != nullptr, hb = op.FindParam("beta") != nullptr;
  if (hg) {
    ANERD_ASSIGN_OR_RETURN(gamma, Arg(op, "gamma"));
  }
  if (hb) {
    ANERD_ASSIGN_OR_RETURN(beta, Arg(op, "beta"));
  }
  const double eps = Num(op, "epsilon", 1e-5);
  for (const auto& [key, members] : groups) {
    if (op.op == "softmax") {
      double mx = -INFINITY, sum = 0;
      for (int64_t i : members) mx = std::max(mx, x.values[i]);
      for (int64_t i : members) sum += std::exp(x.values[i] - mx);
      for (int64_t i : members) r.values[i] = std::exp(x.values[i] - mx) / sum;
      continue;
    }
    double mean = 0, var = 0;
    for (int64_t i : members) mean += x.values[i];
    mean /= members.size();
    for (int64_t i : members) var += (x.values[i] - mean) * (x.values[i] - mean);
    var /= members.size();
    for (size_t k = 0; k < members.size(); ++k) {
      double v = (x.values[members[k]] - mean) / std::sqrt(var + eps);
      if (hg) v *= gamma.values[k];
      if (hb) v += beta.values[k];
      r.values[members[k]] = v;
    }
  }
  Set(op, std::move(r));
  return absl::OkStatus();
}

absl::Status Evaluator::Attention(const Operation& op) {
  ANERD_ASSIGN_OR_RETURN(RefTensor q, Arg(op, "query"));
  ANERD_ASSIGN_OR_RETURN(RefTensor k, Arg(op, "key"));
  ANERD_ASSIGN_OR_RETURN(RefTensor v, Arg(op, "value"));
  const bool use_mask = op.FindParam("attn_mask") != nullptr && !opt_.ignore_attn_mask;
  RefTensor mask;
  if (use_mask) {
    ANERD_ASSIGN_OR_RETURN(mask, Arg(op, "attn_mask"));
  }
  const Shape& os = op.outputs[0].type.shape;
  const int r = os.size();
  const int64_t l = os[r - 2], ev = os[r - 1], e = q.shape.back(), s = k.shape[k.shape.size() - 2];
  const Shape batch(os.begin(), os.end() - 2);
  RefTensor out;
  out.values.resize(Count(os));
  for (int64_t b = 0; b < Count(batch); ++b) {
    const Shape bi = Unravel(b, batch);
    auto idx = [&](int64_t i, int64_t j) {
      Shape t = bi;
      t.push_back(i);
      t.push_back(j);
      return t;
    };
    for (int64_t i = 0; i < l; ++i) {
      std::vector<double> sc(s);
      double mx = -INFINITY;
      for (int64_t j = 0; j < s; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < e; ++p) acc += At(q, idx(i, p)) * At(k, idx(j, p));
        acc /= std::sqrt(static_cast<double>(e));
        if (use_mask) {
          const double m = At(mask, idx(i, j));
          acc = mask.dtype == mil::DType::kBool ? (m != 0 ? acc : -INFINITY) : acc + m;
        }
        sc[j] = acc;
        mx = std::max(mx, acc);
      }
      double sum = 0;
      for (double& x : sc) sum += (x = std::exp(x - mx));
      for (int64_t c = 0; c < ev; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < s; ++j) acc += sc[j] / sum * At(v, idx(j, c));
        out.values[Ravel(idx(i, c), os)] = acc;
      }
    }
  }
  Set(op, std::move(out));
  return absl::OkStatus();
}

absl::Status Evaluator::Quant(const Operation& op) {
  const bool q = op.op == "quantize";
  ANERD_ASSIGN_OR_RETURN(
      RefTensor x, Arg(op, op.op == "constexpr_affine_dequantize" ? "quantized_data" : "input"));
  auto scale = Arg(op, "scale");
  auto zp = Arg(op, "zero_point");
  const int rank = x.shape.size();
  const int64_t axis = (static_cast<int64_t>(Num(op, "axis", 0)) + rank) % std::max(rank, 1);
  auto param = [&](const absl::StatusOr<RefTensor>& p, const Shape& idx, double fallback) {
    if (!p.ok()) return fallback;
    return p->values.size() == 1 ? p->values[0] : p->values[idx[axis]];
  };
  const bool u8 = op.outputs[0].type.dtype == mil::DType::kUInt8;
  RefTensor r;
  for (int64_t i = 0; i < Count(x.shape); ++i) {
    const Shape idx = Unravel(i, x.shape);
    const double s = param(scale, idx, 1.0), z = param(zp, idx, 0.0);
    if (q) {
      // Same float division the ANE-facing semantics define; rint = round half to even.
      const double v = std::nearbyint(static_cast<float>(x.values[i]) / static_cast<float>(s)) + z;
      r.values.push_back(std::min(std::max(v, u8 ? 0.0 : -128.0), u8 ? 255.0 : 127.0));
    } else {
      r.values.push_back((x.values[i] - z) * s);
    }
  }
  Set(op, std::move(r));
  return absl::OkStatus();
}

}  // namespace

double RoundToFp16(double v) {
  if (std::isnan(v) || std::isinf(v) || v == 0) return v;
  const double a = std::fabs(v);
  if (a >= 65520.0) return std::copysign(INFINITY, v);
  int e;
  std::frexp(a, &e);                     // a = f * 2^e, f in [0.5, 1)
  const int exp = std::max(e - 1, -14);  // fp16 exponent of a (subnormals share -14)
  const double ulp = std::ldexp(1.0, exp - 10);
  return std::copysign(std::nearbyint(a / ulp) * ulp, v);
}

absl::StatusOr<std::map<std::string, RefTensor>> EvaluateReference(
    const mil::VerifiedProgram& program, const std::map<std::string, RefTensor>& inputs,
    const RefOptions& options) {
  Evaluator ev(program, options);
  return ev.Run(inputs);
}

}  // namespace anerd::testing
