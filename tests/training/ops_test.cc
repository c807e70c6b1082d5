// Each CPU op of the training step against a direct (double-precision, naive) implementation, plus
// configs, spec validation, data loading/sampling, model-file and checkpoint validation.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/training/config.h"
#include "server/training/cpu_ops.h"
#include "server/training/data.h"
#include "server/training/kernels.h"
#include "server/training/model.h"
#include "server/training/model_io.h"
#include "server/training/trainer.h"
#include "server/training/validation_split.h"

namespace anerd::training {
namespace {

std::vector<float> Random(int64_t n, uint64_t seed, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = SplitMix64(seed);
    x = static_cast<float>((static_cast<double>(seed >> 11) * 0x1.0p-53 * 2 - 1) * scale);
  }
  return v;
}

std::string Temp(const std::string& name) {
  // ctest runs every test of this binary as its own process, in parallel: one file per process.
  return std::string(ANERD_BINARY_DIR) + "/training_ops_test_" + std::to_string(getpid()) + "_" +
         name;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Scalar loss L = Σ dy ⊙ f(x) lets finite differences of f check a backward that returns dL/dx.
TEST(CpuOps, RmsNormForwardAndExactBackward) {
  const int64_t d = 12, s = 5;
  auto x = Random(d * s, 1), w = Random(d, 2), dy = Random(d * s, 3);
  for (auto& v : w) v += 1.5f;
  std::vector<float> y(d * s), r(s), dx(d * s), dw(d, 0.0f);
  RmsNormForward(x.data(), w.data(), d, s, y.data(), r.data());
  for (int64_t t = 0; t < s; ++t) {
    double ss = 0;
    for (int64_t c = 0; c < d; ++c) ss += double{x[c * s + t]} * x[c * s + t];
    const double rr = 1 / std::sqrt(ss / d + 1e-5);
    for (int64_t c = 0; c < d; ++c) EXPECT_NEAR(y[c * s + t], x[c * s + t] * rr * w[c], 1e-5);
  }
  RmsNormBackward(dy.data(), x.data(), w.data(), r.data(), d, s, dx.data(), dw.data());
  auto loss = [&](const std::vector<float>& xx, const std::vector<float>& ww) {
    std::vector<float> yy(d * s), rr(s);
    RmsNormForward(xx.data(), ww.data(), d, s, yy.data(), rr.data());
    double l = 0;
    for (int64_t i = 0; i < d * s; ++i) l += double{dy[i]} * yy[i];
    return l;
  };
  const float eps = 1e-2f;
  for (int64_t i = 0; i < d * s; i += 7) {
    auto xp = x, xm = x;
    xp[i] += eps, xm[i] -= eps;
    EXPECT_NEAR(dx[i], (loss(xp, w) - loss(xm, w)) / (2 * eps), 2e-3) << "dx " << i;
  }
  for (int64_t c = 0; c < d; ++c) {
    auto wp = w, wm = w;
    wp[c] += eps, wm[c] -= eps;
    EXPECT_NEAR(dw[c], (loss(x, wp) - loss(x, wm)) / (2 * eps), 2e-3) << "dw " << c;
  }
}

TEST(CpuOps, RopeMatchesTheKernelTablesAndBackwardIsTheTranspose) {
  const int64_t heads = 2, hd = 8, s = 6;
  std::vector<float> cos, sin;
  RopeTables(s, hd, &cos, &sin);
  auto x = Random(heads * hd * s, 4);
  auto y = x;
  RopeForward(y.data(), heads, hd, s, cos.data(), sin.data());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < hd; i += 2) {
      for (int64_t t = 0; t < s; ++t) {
        const double th = t / std::pow(10000.0, double(i) / hd);
        const double a = x[(h * hd + i) * s + t], b = x[(h * hd + i + 1) * s + t];
        EXPECT_NEAR(y[(h * hd + i) * s + t], a * std::cos(th) - b * std::sin(th), 1e-5);
        EXPECT_NEAR(y[(h * hd + i + 1) * s + t], b * std::cos(th) + a * std::sin(th), 1e-5);
      }
    }
  }
  // <R x, g> == <x, Rᵀ g>.
  auto g = Random(heads * hd * s, 5), gt = g;
  RopeBackward(gt.data(), heads, hd, s, cos.data(), sin.data());
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < x.size(); ++i) lhs += double{y[i]} * g[i], rhs += double{x[i]} * gt[i];
  EXPECT_NEAR(lhs, rhs, 1e-4);
}

// Hugging Face rotate_half with theta 1e6: pair j is (j, j + HD/2), angle t / 1e6^(2j/HD).
TEST(CpuOps, RopeHalfPairsAndThetaMatchTheDefinition) {
  const int64_t heads = 2, hd = 8, s = 6;
  std::vector<float> cos, sin;
  RopeTables(s, hd, 1e6, /*half=*/true, &cos, &sin);
  auto x = Random(heads * hd * s, 14);
  auto y = x;
  RopeForward(y.data(), heads, hd, s, cos.data(), sin.data(), /*half=*/true);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t j = 0; j < hd / 2; ++j) {
      for (int64_t t = 0; t < s; ++t) {
        const double th = t / std::pow(1e6, 2.0 * j / hd);
        const int64_t ia = (h * hd + j) * s + t, ib = (h * hd + j + hd / 2) * s + t;
        EXPECT_NEAR(y[ia], x[ia] * std::cos(th) - x[ib] * std::sin(th), 1e-5);
        EXPECT_NEAR(y[ib], x[ib] * std::cos(th) + x[ia] * std::sin(th), 1e-5);
      }
    }
  }
  auto g = Random(heads * hd * s, 15), gt = g;
  RopeBackward(gt.data(), heads, hd, s, cos.data(), sin.data(), /*half=*/true);
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < x.size(); ++i) lhs += double{y[i]} * g[i], rhs += double{x[i]} * gt[i];
  EXPECT_NEAR(lhs, rhs, 1e-4);
}

// QK-norm backward against central differences of <HeadRmsNormForward(x, w), g>.
TEST(CpuOps, HeadRmsNormBackwardMatchesFiniteDifferences) {
  const int64_t heads = 3, hd = 4, s = 5;
  const float eps = 1e-6f;
  auto x = Random(heads * hd * s, 16), w = Random(hd, 17), g = Random(heads * hd * s, 18);
  for (float& v : w) v += 1.5f;
  auto f = [&](const std::vector<float>& xx, const std::vector<float>& ww) {
    std::vector<float> y(xx.size());
    HeadRmsNormForward(xx.data(), ww.data(), heads, hd, s, eps, y.data());
    double acc = 0;
    for (size_t i = 0; i < y.size(); ++i) acc += double{y[i]} * g[i];
    return acc;
  };
  auto dx = g;
  std::vector<float> dw(hd, 0.0f);
  HeadRmsNormBackward(dx.data(), x.data(), w.data(), heads, hd, s, eps, dw.data());
  const float h = 1e-2f;
  for (size_t i = 0; i < x.size(); i += 7) {
    auto xp = x, xm = x;
    xp[i] += h, xm[i] -= h;
    EXPECT_NEAR(dx[i], (f(xp, w) - f(xm, w)) / (2 * h), 2e-3) << "x " << i;
  }
  for (int64_t i = 0; i < hd; ++i) {
    auto wp = w, wm = w;
    wp[i] += h, wm[i] -= h;
    EXPECT_NEAR(dw[i], (f(x, wp) - f(x, wm)) / (2 * h), 2e-3) << "w " << i;
  }
}

TEST(CpuOps, SiluBackwardMatchesFiniteDifferences) {
  const int64_t n = 50;
  auto h1 = Random(n, 6, 3.0), h3 = Random(n, 7, 2.0), dg = Random(n, 8);
  std::vector<float> dh1(n), dh3(n);
  SiluBackward(dg.data(), h1.data(), h3.data(), n, dh1.data(), dh3.data());
  auto gate = [](double a, double b) { return a / (1 + std::exp(-a)) * b; };
  for (int64_t i = 0; i < n; ++i) {
    const double e = 1e-4;
    EXPECT_NEAR(dh1[i], dg[i] * (gate(h1[i] + e, h3[i]) - gate(h1[i] - e, h3[i])) / (2 * e), 1e-4);
    EXPECT_NEAR(dh3[i], dg[i] * (gate(h1[i], h3[i] + e) - gate(h1[i], h3[i] - e)) / (2 * e), 1e-4);
  }
}

TEST(CpuOps, GqaTileUsesHeadDivRatioAndReduceIsItsTranspose) {
  const int64_t heads = 6, kvh = 2, hd = 2, s = 3, block = hd * s;
  auto kv = Random(kvh * block, 9);
  std::vector<float> tiled(heads * block), back(kvh * block);
  GqaTile(kv.data(), heads, kvh, hd, s, tiled.data());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < block; ++i) EXPECT_EQ(tiled[h * block + i], kv[(h / 3) * block + i]);
  }
  auto full = Random(heads * block, 10);
  GqaReduce(full.data(), heads, kvh, hd, s, back.data());
  for (int64_t j = 0; j < kvh; ++j) {
    for (int64_t i = 0; i < block; ++i) {
      const float want =
          full[(3 * j) * block + i] + full[(3 * j + 1) * block + i] + full[(3 * j + 2) * block + i];
      EXPECT_NEAR(back[j * block + i], want, 1e-6);
    }
  }
}

TEST(CpuOps, EmbeddingForwardAndBackward) {
  const int64_t v = 5, d = 3, s = 4;
  auto e = Random(v * d, 11);
  const uint32_t tok[] = {4, 0, 4, 2};
  std::vector<float> x(d * s), de(v * d, 0.0f);
  EmbeddingForward(e.data(), tok, d, s, x.data());
  for (int64_t t = 0; t < s; ++t) {
    for (int64_t c = 0; c < d; ++c) EXPECT_EQ(x[c * s + t], e[tok[t] * d + c]);
  }
  auto dx = Random(d * s, 12);
  EmbeddingBackward(dx.data(), tok, d, s, de.data());
  for (int64_t c = 0; c < d; ++c) {
    EXPECT_NEAR(de[4 * d + c], dx[c * s + 0] + dx[c * s + 2], 1e-6);
    EXPECT_EQ(de[1 * d + c], 0.0f);
  }
}

TEST(CpuOps, CrossEntropyLossAndGradient) {
  const int64_t s = 3, v = 7;
  auto logits = Random(s * v, 13, 4.0);
  const uint32_t tgt[] = {0, 6, 3};
  auto g = logits;
  const double loss = CrossEntropy(g.data(), tgt, s, v, 8.0f);
  double want = 0;
  for (int64_t t = 0; t < s; ++t) {
    double sum = 0;
    for (int64_t k = 0; k < v; ++k) sum += std::exp(double{logits[t * v + k]});
    want -= logits[t * v + tgt[t]] - std::log(sum);
    for (int64_t k = 0; k < v; ++k) {
      const double p = std::exp(double{logits[t * v + k]}) / sum - (k == tgt[t] ? 1 : 0);
      EXPECT_NEAR(g[t * v + k], p * 8.0 / s, 1e-5);
    }
  }
  EXPECT_NEAR(loss, want / s, 1e-5);
}

TEST(CpuOps, AdamWMatchesTheFormulaWithDecoupledDecay) {
  std::vector<float> w = {0.5f, -1.0f}, g = {0.2f, -0.4f}, m = {0.1f, 0.0f}, v = {0.01f, 0.0f};
  AdamWParams p;
  p.lr = 0.01, p.beta1 = 0.9, p.beta2 = 0.95, p.eps = 1e-8, p.weight_decay = 0.1, p.t = 3;
  p.grad_mult = 0.5;
  const auto w0 = w, m0 = m, v0 = v;
  AdamW(w.data(), g.data(), m.data(), v.data(), 2, p);
  for (int i = 0; i < 2; ++i) {
    const double gi = g[i] * 0.5, mi = 0.9 * m0[i] + 0.1 * gi, vi = 0.95 * v0[i] + 0.05 * gi * gi;
    const double mh = mi / (1 - std::pow(0.9, 3)), vh = vi / (1 - std::pow(0.95, 3));
    EXPECT_NEAR(m[i], mi, 1e-7);
    EXPECT_NEAR(v[i], vi, 1e-7);
    EXPECT_NEAR(w[i], w0[i] - 0.01 * (mh / (std::sqrt(vh) + 1e-8) + 0.1 * w0[i]), 1e-6);
  }
}

// The update as it was written before the AVX2 path (one scalar loop): AdamW must give the same
// bits on every path, with tails that are not a multiple of the vector width.
void ScalarAdamWBefore(float* w, const float* g, float* m, float* v, int64_t n,
                       const AdamWParams& p) {
  const float b1 = static_cast<float>(p.beta1), b2 = static_cast<float>(p.beta2);
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(p.beta1, static_cast<double>(p.t))));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(p.beta2, static_cast<double>(p.t))));
  const float lr = static_cast<float>(p.lr), eps = static_cast<float>(p.eps);
  const float wd = static_cast<float>(p.weight_decay), mult = static_cast<float>(p.grad_mult);
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * mult;
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
    const float mh = m[i] * c1, vh = v[i] * c2;
    w[i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * w[i]);
  }
}

TEST(CpuOps, AdamWIsBitIdenticalOnEveryPathAndToTheScalarLoop) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t n : {1, 7, 8, 9, 1003}) {
    std::vector<float> w(n), g(n), m(n), v(n);
    for (int64_t i = 0; i < n; ++i) {
      // Magnitudes over many binades, so every rounding step matters.
      w[i] = u(rng) * std::ldexp(1.0f, static_cast<int>(i % 13) - 6);
      g[i] = u(rng) * std::ldexp(1.0f, static_cast<int>(i % 17) - 10);
      m[i] = 0.1f * u(rng) * std::abs(g[i]);
      v[i] = std::abs(u(rng)) * g[i] * g[i];
    }
    AdamWParams p;
    p.lr = 3e-4, p.beta1 = 0.9, p.beta2 = 0.95, p.eps = 1e-8, p.weight_decay = 0.1, p.t = 5;
    p.grad_mult = 0.37;
    auto w1 = w, m1 = m, v1 = v, w2 = w, m2 = m, v2 = v;
    AdamW(w.data(), g.data(), m.data(), v.data(), n, p);
    AdamWPortable(w1.data(), g.data(), m1.data(), v1.data(), n, p);
    ScalarAdamWBefore(w2.data(), g.data(), m2.data(), v2.data(), n, p);
    for (const auto* other : {&w1, &w2}) {
      EXPECT_EQ(std::memcmp(w.data(), other->data(), n * 4), 0) << "w, n=" << n;
    }
    for (const auto* other : {&m1, &m2}) {
      EXPECT_EQ(std::memcmp(m.data(), other->data(), n * 4), 0) << "m, n=" << n;
    }
    for (const auto* other : {&v1, &v2}) {
      EXPECT_EQ(std::memcmp(v.data(), other->data(), n * 4), 0) << "v, n=" << n;
    }
  }
}

TEST(CpuOps, SumSquaresAndScale) {
  auto g = Random(10001, 15);
  double want = 0;
  for (float x : g) want += double{x} * x;
  EXPECT_NEAR(SumSquares(g.data(), 10001), want, 1e-6 * want);
  Scale(g.data(), 10001, 2.0f);
  EXPECT_NEAR(SumSquares(g.data(), 10001), 4 * want, 4e-6 * want);
}

TEST(CpuOps, WarmupCosineSchedule) {
  EXPECT_DOUBLE_EQ(ScheduledLr(true, 1.0, 0.1, 10, 0, 110), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledLr(true, 1.0, 0.1, 10, 9, 110), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLr(true, 1.0, 0.1, 10, 10, 110), 1.0);
  EXPECT_NEAR(ScheduledLr(true, 1.0, 0.1, 10, 60, 110), 0.55, 1e-12);
  EXPECT_NEAR(ScheduledLr(true, 1.0, 0.1, 10, 110, 110), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(ScheduledLr(false, 1.0, 0.1, 10, 60, 110), 1.0);
}

TEST(Config, NamedAndCustomConfigs) {
  auto tiny = ModelConfigByName("tiny");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->dim, 64);
  EXPECT_EQ(tiny->head_dim, 16);
  auto s110 = ModelConfigByName("stories110m");
  ASSERT_TRUE(s110.ok());
  EXPECT_NEAR(static_cast<double>(s110->NumParams()), 109.53e6, 0.01e6);
  auto qwen = ModelConfigByName("qwen3_0_6b");
  ASSERT_TRUE(qwen.ok());
  EXPECT_EQ(qwen->q_dim(), 2048);
  EXPECT_TRUE(ValidateConfig(*qwen).ok()) << ValidateConfig(*qwen);
  EXPECT_EQ(ModelConfigByName("gpt5").status().code(), absl::StatusCode::kNotFound);
  auto custom = ParseCustomConfig("dim=32, heads=4,kv_heads=2");
  ASSERT_TRUE(custom.ok()) << custom.status();
  EXPECT_EQ(custom->head_dim, 8);
  EXPECT_EQ(custom->hidden, 192);
  auto round = ParseCustomConfig(ConfigToString(*custom));
  ASSERT_TRUE(round.ok());
  EXPECT_EQ(round->kv_heads, 2);
  auto bad = ParseCustomConfig("heads=4,kv_heads=3");
  EXPECT_NE(bad.status().message().find("divisible by kv_heads"), std::string::npos)
      << bad.status();
  EXPECT_NE(ParseCustomConfig("depth=3").status().message().find("depth"), std::string::npos);
  EXPECT_NE(ParseCustomConfig("dim=x").status().message().find("dim"), std::string::npos);
  EXPECT_NE(ParseCustomConfig("head_dim=7").status().message().find("even"), std::string::npos);
}

TEST(Config, ValidateSpecNamesTheBadField) {
  TrainSpec ok;
  ok.model = *ModelConfigByName("tiny");
  ok.data_path = "x.txt";
  EXPECT_TRUE(ValidateSpec(ok).ok());
  auto expect_field = [&](auto mutate, const char* field) {
    TrainSpec s = ok;
    mutate(&s);
    const absl::Status st = ValidateSpec(s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(st.message().substr(0, std::string(field).size()), field) << st;
  };
  expect_field([](TrainSpec* s) { s->steps = 0; }, "steps");
  expect_field([](TrainSpec* s) { s->lr = -1; }, "lr");
  expect_field([](TrainSpec* s) { s->min_lr = 1; }, "min_lr");
  expect_field([](TrainSpec* s) { s->schedule = "linear"; }, "schedule");
  expect_field([](TrainSpec* s) { s->accum = 0; }, "accum");
  expect_field([](TrainSpec* s) { s->beta2 = 1; }, "beta2");
  expect_field([](TrainSpec* s) { s->loss_scale = "big"; }, "loss_scale");
  expect_field([](TrainSpec* s) { s->numerics = "bf16"; }, "numerics");
  expect_field([](TrainSpec* s) { s->sampling = "shuffle"; }, "sampling");
  expect_field([](TrainSpec* s) { s->residual_scale = "2"; }, "residual_scale");
  expect_field([](TrainSpec* s) { s->data_path = ""; }, "data_path");
  expect_field([](TrainSpec* s) { s->data_format = "csv"; }, "data_format");
  // Data-parallel fields (issue 24).
  expect_field([](TrainSpec* s) { s->ranks = 0; }, "ranks");
  expect_field([](TrainSpec* s) { s->ranks = kMaxRanks + 1; }, "ranks");
  expect_field([](TrainSpec* s) { s->reduce = "mean"; }, "reduce");
  expect_field([](TrainSpec* s) { s->digest_every = -1; }, "digest_every");
  expect_field([](TrainSpec* s) { s->max_restarts = -1; }, "max_restarts");
  expect_field([](TrainSpec* s) { s->hostfile = "hosts.txt"; }, "hostfile");  // one rank
  // Overlap (issue 24 item 2).
  expect_field([](TrainSpec* s) { s->allreduce_bucket_kb = -1; }, "allreduce_bucket_kb");
  expect_field([](TrainSpec* s) { s->allreduce_bucket_kb = kMaxBucketKb + 1; },
               "allreduce_bucket_kb");
  auto text = SpecFromText(SpecToText(ok));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(SpecToText(*text), SpecToText(ok));
  EXPECT_EQ(SpecToText(ok).find("ranks="), std::string::npos) << "one-rank specs read as before";
  TrainSpec dp = ok;
  dp.ranks = 4;
  dp.reduce = "ordered";
  dp.digest_every = 3;
  dp.hostfile = "/etc/hosts.txt";
  dp.max_restarts = 2;
  auto back = SpecFromText(SpecToText(dp));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(SpecToText(*back), SpecToText(dp));
  EXPECT_EQ(back->ranks, 4);
  EXPECT_EQ(back->reduce, "ordered");
  EXPECT_EQ(back->max_restarts, 2);
  EXPECT_TRUE(back->allreduce_overlap) << "overlap is the default";
  EXPECT_EQ(SpecToText(dp).find("allreduce_"), std::string::npos) << "defaults are not written";
  dp.allreduce_bucket_kb = 64;
  dp.allreduce_overlap = false;
  back = SpecFromText(SpecToText(dp));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->allreduce_bucket_kb, 64);
  EXPECT_FALSE(back->allreduce_overlap);
  // A hand-written spec may name the model.
  auto named = SpecFromText("model=tiny\ndata_path=x.txt\n");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(ConfigToString(named->model), ConfigToString(*ModelConfigByName("tiny")));
}

TEST(Data, SequentialWindowsWrapAndRandomStaysInBounds) {
  const std::string path = Temp("seq.bin");
  std::vector<uint16_t> tok(23);
  for (int i = 0; i < 23; ++i) tok[i] = static_cast<uint16_t>(i);
  WriteBytes(path, std::string(reinterpret_cast<const char*>(tok.data()), tok.size() * 2));
  auto d = TokenData::Open(path, "", 100, 5);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->size(), 23);
  // W = floor(22 / 5) = 4 windows: 0, 5, 10, 15, then back to 0.
  const int64_t want[] = {0, 5, 10, 15, 0, 5};
  for (int k = 0; k < 6; ++k) EXPECT_EQ((*d)->WindowStart(false, 0, k, 5), want[k]);
  for (int k = 0; k < 500; ++k) {
    const int64_t p = (*d)->WindowStart(true, 42, k, 5);
    EXPECT_GE(p, 0);
    EXPECT_LE(p + 5 + 1, 23);
  }
  EXPECT_EQ((*d)->WindowStart(true, 42, 17, 5), (*d)->WindowStart(true, 42, 17, 5));
  std::remove(path.c_str());
}

TEST(Data, HeldOutTailIsNeverSampled) {
  const std::string path = Temp("split.bin");
  std::vector<uint16_t> tok(40);
  for (int i = 0; i < 40; ++i) tok[i] = static_cast<uint16_t>(i);
  WriteBytes(path, std::string(reinterpret_cast<const char*>(tok.data()), tok.size() * 2));
  TrainSpec spec;
  spec.model = *ModelConfigByName("tiny");
  spec.model.seq = 5;
  spec.data_path = path;
  spec.val_fraction = 0.25;
  ASSERT_TRUE(ResolveValidationSplit(&spec).ok());
  EXPECT_EQ(spec.train_tokens, 30);
  EXPECT_EQ(spec.val_begin, 30);
  EXPECT_EQ(spec.val_end, 40);
  auto d = TokenData::Open(path, "", 100, 5);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE((*d)->KeepFirst(spec.train_tokens, 5).ok());
  for (int k = 0; k < 500; ++k) {
    EXPECT_LE((*d)->WindowStart(true, 7, k, 5) + 5 + 1, 30) << "a window reached held-out data";
    EXPECT_LE((*d)->WindowStart(false, 7, k, 5) + 5 + 1, 30);
  }
  EXPECT_EQ((*d)->KeepFirst(5, 5).code(), absl::StatusCode::kInvalidArgument);
  spec.val_fraction = 0.9;  // 4 tokens left to train on: less than one window
  const absl::Status small = ResolveValidationSplit(&spec);
  EXPECT_EQ(small.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(small.message().find("val_fraction"), std::string::npos) << small;
  std::remove(path.c_str());
}

TEST(Data, BadFilesAreRejectedWithClearErrors) {
  const std::string p = Temp("bad.bin");
  WriteBytes(p, std::string("\x01\x00\x02", 3));
  EXPECT_NE(TokenData::Open(p, "", 100, 2).status().message().find("not a multiple of 2"),
            std::string::npos);
  WriteBytes(p, std::string("\x01\x00\xff\x7f\x02\x00\x03\x00", 8));
  auto big = TokenData::Open(p, "tokens", 100, 2);
  EXPECT_NE(big.status().message().find("token 32767 at index 1"), std::string::npos)
      << big.status();
  WriteBytes(p, std::string("\x01\x00\x02\x00", 4));
  auto shorty = TokenData::Open(p, "tokens", 100, 2);
  EXPECT_NE(shorty.status().message().find("too short"), std::string::npos) << shorty.status();
  const std::string t = Temp("bad.txt");
  WriteBytes(t, "hello \xc3\x28 world");
  auto utf = TokenData::Open(t, "", 256, 2);
  EXPECT_NE(utf.status().message().find("invalid UTF-8 at byte offset 6"), std::string::npos)
      << utf.status();
  EXPECT_EQ(TokenData::Open(Temp("missing.bin"), "", 100, 2).status().code(),
            absl::StatusCode::kNotFound);
  WriteBytes(t, "h\xc3\xa9llo w\xe2\x82\xac rld");
  auto good = TokenData::Open(t, "", 256, 4);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ((*good)->token(1), 0xc3u);
  std::remove(p.c_str());
  std::remove(t.c_str());
}

TEST(ModelFiles, Llama2cHeaderIsValidatedAgainstTheFileSize) {
  ModelConfig c = *ModelConfigByName("tiny");
  const ParamLayout lay(c);
  std::vector<float> params = Random(lay.total(), 14);
  const std::string p = Temp("model.bin");
  ASSERT_TRUE(ExportLlama2c(p, c, params).ok());
  auto loaded = LoadModelFile(p);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->params, params);
  EXPECT_EQ(loaded->config.dim, 64);
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  WriteBytes(p, bytes.substr(0, bytes.size() - 4));
  auto truncated = LoadLlama2c(p);
  EXPECT_NE(truncated.status().message().find("does not match its header"), std::string::npos)
      << truncated.status();
  std::string huge = bytes;
  const int32_t big_dim = 1 << 30;
  std::memcpy(huge.data(), &big_dim, 4);
  WriteBytes(p, huge);
  EXPECT_NE(LoadLlama2c(p).status().message().find("out of range"), std::string::npos);
  std::string untied = bytes;
  const int32_t neg = -256;
  std::memcpy(untied.data() + 20, &neg, 4);
  WriteBytes(p, untied);
  EXPECT_NE(LoadLlama2c(p).status().message().find("untied"), std::string::npos);
  WriteBytes(p, "abc");
  EXPECT_EQ(LoadModelFile(p).status().code(), absl::StatusCode::kInvalidArgument);
  std::remove(p.c_str());
}

// A header claiming ~2^63 parameters (every field at its maximum) is refused from arithmetic alone:
// no per-layer table of 2^20 layers is built and nothing overflows.
TEST(ModelFiles, AHugeHeaderIsRefusedBeforeAnythingIsAllocated) {
  const int32_t m = 1 << 20;
  const int32_t h[7] = {m, m, m, 1, 1, m, m};
  const std::string p = Temp("huge.bin");
  WriteBytes(p, std::string(reinterpret_cast<const char*>(h), sizeof(h)) + std::string(64, '\0'));
  absl::StatusOr<LoadedModel> loaded = LoadLlama2c(p);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("more than anerd's limit of 2^40"), std::string::npos)
      << loaded.status();
  std::remove(p.c_str());
}

TEST(ModelFiles, SeedV4CheckpointImports) {
  ModelConfig c = *ParseCustomConfig("dim=16,hidden=24,layers=1,heads=2,kv_heads=1,vocab=8,seq=4");
  const ParamLayout lay(c);
  int32_t h[24] = {};
  h[0] = 0x424C5A54, h[1] = 4, h[4] = 1, h[5] = 8, h[6] = 16, h[7] = 24, h[8] = 2, h[9] = 4;
  h[20] = 17, h[21] = 1, h[22] = 8, h[23] = 16;
  std::string bytes(reinterpret_cast<const char*>(h), 96);
  // Body: layer weights (9), their (m, v) pairs, rms_final (+m, v), embed (+m, v); value = tag.
  auto put = [&](int64_t n, float value) {
    bytes.append(std::string(n * 4, '\0'));
    float* f = reinterpret_cast<float*>(&bytes[bytes.size() - n * 4]);
    for (int64_t i = 0; i < n; ++i) f[i] = value;
  };
  const auto& g = lay.groups();
  for (int k = 1; k <= 9; ++k) put(g[k].size, k);
  for (int k = 1; k <= 9; ++k) put(g[k].size, 100 + k), put(g[k].size, 200 + k);
  put(16, 10), put(16, 110), put(16, 210);
  put(8 * 16, 11), put(8 * 16, 111), put(8 * 16, 211);
  const std::string p = Temp("seed.bin");
  WriteBytes(p, bytes);
  auto m = LoadModelFile(p);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.kv_heads, 1);
  EXPECT_EQ(m->adam_t, 17);
  EXPECT_EQ(m->params[lay.layer(0).wk], 2.0f);
  EXPECT_EQ(m->adam_v[lay.layer(0).rms_ffn], 209.0f);
  EXPECT_EQ(m->params[lay.rms_final()], 10.0f);
  EXPECT_EQ(m->adam_m[lay.embed()], 111.0f);
  WriteBytes(p, bytes.substr(0, bytes.size() - 8));
  EXPECT_NE(LoadModelFile(p).status().message().find("does not match"), std::string::npos);
  std::remove(p.c_str());
}

TEST(Synth, DeterministicAsciiOfTheRequestedSize) {
  const std::string a = SynthesizeStories(3, 5000), b = SynthesizeStories(3, 5000);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 5000u);
  EXPECT_NE(a, SynthesizeStories(4, 5000));
  EXPECT_EQ(a.rfind("Once upon a time", 0), 0u);
  for (char ch : a) EXPECT_LT(static_cast<unsigned char>(ch), 128);
}

}  // namespace
}  // namespace anerd::training
