// Runs the dynamic kernels on the CPU backend (fp32 numerics) at a tiny GQA shape and compares
// every output channel block with an independent double-precision reference written from the
// layouts in kernels.h. This pins the slot offsets, RoPE, causal mask, GQA h / R mapping, SiLU,
// residual alpha and the attention backward formulas.
#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "common/fp16.h"
#include "common/mil/verifier.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/training/kernels.h"

namespace anerd::training {
namespace {

using Matrix = std::vector<std::vector<double>>;  // [rows][cols]

// D 64, H 96, 4 heads over 2 KV heads (R = 2), HD 16, S 32.
ModelShape Shape() { return ModelShape{64, 96, 4, 2, 16, 32, 2, 128}; }

// Deterministic fp16-representable inputs in about ±0.5.
std::vector<float> RandomInput(int64_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = RoundToHalf(static_cast<float>(s >> 8) / 16777216.0f - 0.5f);
  }
  return v;
}

// Runs `kernel` on input x (row-major [C][SP]); returns the output as [C_out][S].
Matrix RunOnCpu(const Kernel& kernel, const std::vector<float>& x) {
  auto constants = KernelConstants(Shape());
  EXPECT_TRUE(constants.ok());
  auto verified = mil::VerifyProgram(kernel.program, *constants);
  EXPECT_TRUE(verified.ok()) << verified.status();
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  backend::CompileOptions options;
  options.numerics = backend::NumericsMode::kFp32;
  auto compiled = cpu.Compile(*verified, options);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  const KernelLayout& l = kernel.layout;
  std::vector<backend::NamedTensor> inputs;
  inputs.push_back({"x", backend::Tensor::FromFloats(mil::DType::kFp16,
                                                     {1, l.in_channels, 1, l.in_spatial}, x)});
  auto result = (*compiled)->Run(inputs);
  EXPECT_TRUE(result.ok()) << result.status();
  const std::vector<double> out = result->outputs.at(0).tensor.ToDoubles();
  Matrix m(l.out_channels, std::vector<double>(l.out_spatial));
  for (int64_t c = 0; c < l.out_channels; ++c) {
    for (int64_t s = 0; s < l.out_spatial; ++s) m[c][s] = out[c * l.out_spatial + s];
  }
  return m;
}

// Input element (channel c, column s).
struct Input {
  const std::vector<float>& x;
  int64_t sp;
  double operator()(int64_t c, int64_t s) const { return x[c * sp + s]; }
};

// y[o][t] = sum_i in(i, w_off + o) * in(i, act_off + t).
Matrix Staged(const Input& in, int64_t ic, int64_t act_off, int64_t w_off, int64_t oc, int64_t s) {
  Matrix y(oc, std::vector<double>(s, 0.0));
  for (int64_t o = 0; o < oc; ++o) {
    for (int64_t t = 0; t < s; ++t) {
      for (int64_t i = 0; i < ic; ++i) y[o][t] += in(i, w_off + o) * in(i, act_off + t);
    }
  }
  return y;
}

// Causal softmax(q kᵀ scale) for one head; q, k given as functions (t, d).
Matrix Probs(const std::function<double(int64_t, int64_t)>& q,
             const std::function<double(int64_t, int64_t)>& k, int64_t s, int64_t hd) {
  const double scale = RoundToHalf(1.0f / std::sqrt(static_cast<float>(hd)));
  Matrix p(s, std::vector<double>(s, 0.0));
  for (int64_t t = 0; t < s; ++t) {
    double max = -1e300, sum = 0;
    for (int64_t t2 = 0; t2 <= t; ++t2) {
      for (int64_t d = 0; d < hd; ++d) p[t][t2] += q(t, d) * k(t2, d);
      p[t][t2] *= scale;
      max = std::max(max, p[t][t2]);
    }
    for (int64_t t2 = 0; t2 <= t; ++t2) sum += (p[t][t2] = std::exp(p[t][t2] - max));
    for (int64_t t2 = 0; t2 <= t; ++t2) p[t][t2] /= sum;
  }
  return p;
}

void ExpectBlock(const Matrix& got, const KernelLayout& l, const char* block, const Matrix& want) {
  const Block* b = l.FindOutput(block);
  ASSERT_NE(b, nullptr) << block;
  ASSERT_EQ(static_cast<int64_t>(want.size()), b->size) << block;
  int bad = 0;
  for (int64_t c = 0; c < b->size; ++c) {
    for (size_t t = 0; t < want[c].size(); ++t) {
      const double g = got[b->offset + c][t], w = want[c][t];
      if (std::abs(g - w) > 2e-3 + 2e-3 * std::abs(w) && ++bad <= 3) {
        ADD_FAILURE() << block << "[" << c << "][" << t << "]: got " << g << ", want " << w;
      }
    }
  }
  EXPECT_EQ(bad, 0) << block;
}

TEST(KernelsNumericTest, SdpaFwd) {
  const ModelShape m = Shape();
  auto k = SdpaFwd(m);
  ASSERT_TRUE(k.ok()) << k.status();
  const int64_t s = m.seq, hd = m.head_dim, qd = m.q_dim(), kvd = m.kv_dim(), r = m.gqa_ratio();
  const std::vector<float> x = RandomInput(m.dim * k->layout.in_spatial, 1);
  const Input in{x, k->layout.in_spatial};
  const Matrix q = Staged(in, m.dim, 0, s, qd, s);
  const Matrix kk = Staged(in, m.dim, 0, s + qd, kvd, s);
  const Matrix v = Staged(in, m.dim, 0, s + qd + kvd, kvd, s);
  std::vector<float> cos, sin;
  RopeTables(s, hd, &cos, &sin);
  auto rope = [&](const Matrix& a) {  // rows h*HD+d
    Matrix out = a;
    for (size_t c = 0; c < a.size(); c += 2) {
      for (int64_t t = 0; t < s; ++t) {
        const double cs = RoundToHalf(cos[t * hd + c % hd]), sn = RoundToHalf(sin[t * hd + c % hd]);
        out[c][t] = a[c][t] * cs - a[c + 1][t] * sn;
        out[c + 1][t] = a[c + 1][t] * cs + a[c][t] * sn;
      }
    }
    return out;
  };
  const Matrix qr = rope(q), kr = rope(kk);
  Matrix attn(qd, std::vector<double>(s, 0.0));
  for (int64_t h = 0; h < m.heads; ++h) {
    const int64_t g = h / r;  // Hugging Face repeat_kv
    Matrix p = Probs([&](int64_t t, int64_t d) { return qr[h * hd + d][t]; },
                     [&](int64_t t, int64_t d) { return kr[g * hd + d][t]; }, s, hd);
    for (int64_t t = 0; t < s; ++t) {
      for (int64_t d = 0; d < hd; ++d) {
        for (int64_t t2 = 0; t2 < s; ++t2) attn[h * hd + d][t] += p[t][t2] * v[g * hd + d][t2];
      }
    }
  }
  Matrix xn(m.dim, std::vector<double>(s));
  for (int64_t c = 0; c < m.dim; ++c) {
    for (int64_t t = 0; t < s; ++t) xn[c][t] = in(c, t);
  }
  const Matrix got = RunOnCpu(*k, x);
  ExpectBlock(got, k->layout, "attn_out", attn);
  ExpectBlock(got, k->layout, "q_rope", qr);
  ExpectBlock(got, k->layout, "k_rope", kr);
  ExpectBlock(got, k->layout, "v", v);
  ExpectBlock(got, k->layout, "xnorm", xn);
}

TEST(KernelsNumericTest, FfnFused) {
  const ModelShape m = Shape();
  const double alpha = 0.5;
  auto k = FfnFused(m, alpha);
  ASSERT_TRUE(k.ok()) << k.status();
  const int64_t s = m.seq, h = m.hidden, d = m.dim;
  const std::vector<float> x = RandomInput(d * k->layout.in_spatial, 2);
  const Input in{x, k->layout.in_spatial};
  const Matrix h1 = Staged(in, d, 0, 2 * s, h, s), h3 = Staged(in, d, 0, 2 * s + h, h, s);
  Matrix gate = h1, next(d, std::vector<double>(s));
  for (int64_t j = 0; j < h; ++j) {
    for (int64_t t = 0; t < s; ++t) gate[j][t] = h1[j][t] / (1 + std::exp(-h1[j][t])) * h3[j][t];
  }
  for (int64_t c = 0; c < d; ++c) {
    for (int64_t t = 0; t < s; ++t) {
      double y = 0;
      for (int64_t j = 0; j < h; ++j) y += in(c, 2 * s + 2 * h + j) * gate[j][t];
      next[c][t] = in(c, s + t) + alpha * y;
    }
  }
  const Matrix got = RunOnCpu(*k, x);
  ExpectBlock(got, k->layout, "x_next", next);
  ExpectBlock(got, k->layout, "h1", h1);
  ExpectBlock(got, k->layout, "h3", h3);
  ExpectBlock(got, k->layout, "gate", gate);
}

TEST(KernelsNumericTest, DynamicMatmulKernels) {
  const ModelShape m = Shape();
  const int64_t s = m.seq, d = m.dim;
  struct Case {
    absl::StatusOr<Kernel> kernel;
    const char* out;
    int64_t ic, oc;
    bool dual;
  };
  Case cases[] = {
      {WoFwd(m), "o_out", m.q_dim(), d, false},     {FfnBwdW2t(m), "dsilu", d, m.hidden, false},
      {WotBwd(m), "da", d, m.q_dim(), false},       {QBwd(m), "dx_q", m.q_dim(), d, false},
      {FfnBwdW13t(m), "dx_ffn", m.hidden, d, true}, {KvBwd(m), "dx_kv", m.kv_dim(), d, true}};
  for (Case& c : cases) {
    ASSERT_TRUE(c.kernel.ok()) << c.out;
    const std::vector<float> x = RandomInput(c.ic * c.kernel->layout.in_spatial, 3);
    const Input in{x, c.kernel->layout.in_spatial};
    Matrix want = Staged(in, c.ic, 0, c.dual ? 2 * s : s, c.oc, s);
    if (c.dual) {
      const Matrix second = Staged(in, c.ic, s, 2 * s + d, c.oc, s);
      for (int64_t o = 0; o < c.oc; ++o) {
        for (int64_t t = 0; t < s; ++t) want[o][t] += second[o][t];
      }
    }
    ExpectBlock(RunOnCpu(*c.kernel, x), c.kernel->layout, c.out, want);
  }
}

TEST(KernelsNumericTest, SdpaBackward) {
  const ModelShape m = Shape();
  const int64_t s = m.seq, hd = m.head_dim, qd = m.q_dim(), sc = m.score_channels();
  const double scale = RoundToHalf(1.0f / std::sqrt(static_cast<float>(hd)));
  auto b1 = SdpaBwd1(m);
  auto b2 = SdpaBwd2(m);
  ASSERT_TRUE(b1.ok() && b2.ok());
  const std::vector<float> x1 = RandomInput(4 * qd * s, 4);
  const Input in1{x1, s};
  const std::vector<float> x2 = RandomInput((2 * sc + 2 * qd) * s, 5);
  const Input in2{x2, s};
  Matrix dv(qd, std::vector<double>(s, 0.0)), probs(sc, std::vector<double>(s, 0.0));
  Matrix dp = probs, dq = dv, dk = dv;
  for (int64_t h = 0; h < m.heads; ++h) {
    auto at = [&](const Input& in, int64_t base) {
      return [in, base, h, hd](int64_t t, int64_t d) { return in(base + h * hd + d, t); };
    };
    const Matrix p = Probs(at(in1, 0), at(in1, qd), s, hd);
    auto da = at(in1, 3 * qd), v = at(in1, 2 * qd);
    for (int64_t t = 0; t < s; ++t) {
      for (int64_t t2 = 0; t2 < s; ++t2) {
        probs[h * s + t][t2] = p[t][t2];
        for (int64_t d = 0; d < hd; ++d) {
          dv[h * hd + d][t2] += p[t][t2] * da(t, d);
          dp[h * s + t][t2] += da(t, d) * v(t2, d);
        }
      }
    }
    // Backward 2 on its own random input: probs/dp blocks are arbitrary numbers here.
    auto q = at(in2, 2 * sc), k = at(in2, 2 * sc + qd);
    for (int64_t t = 0; t < s; ++t) {
      double dot = 0;
      for (int64_t t2 = 0; t2 < s; ++t2) dot += in2(h * s + t, t2) * in2(sc + h * s + t, t2);
      for (int64_t t2 = 0; t2 < s; ++t2) {
        const double ds = in2(h * s + t, t2) * (in2(sc + h * s + t, t2) - dot) * scale;
        for (int64_t d = 0; d < hd; ++d) {
          dq[h * hd + d][t] += ds * k(t2, d);
          dk[h * hd + d][t2] += ds * q(t, d);
        }
      }
    }
  }
  const Matrix got1 = RunOnCpu(*b1, x1);
  ExpectBlock(got1, b1->layout, "dv_full", dv);
  ExpectBlock(got1, b1->layout, "probs", probs);
  ExpectBlock(got1, b1->layout, "dp", dp);
  const Matrix got2 = RunOnCpu(*b2, x2);
  ExpectBlock(got2, b2->layout, "dq", dq);
  ExpectBlock(got2, b2->layout, "dk_full", dk);
}

}  // namespace
}  // namespace anerd::training
