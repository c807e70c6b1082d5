// Greedy generation against an independent numpy implementation of llama2.c run.c's forward
// (runc_reference.py, float64, never anerd's output; issue 20 item 5): the test writes a random
// llama2.c model file byte by byte (tied + GQA, and untied), anerd loads it (LoadModelFile) and
// decodes with its KV cache; over 100 generated tokens the greedy tokens must be identical and
// every step's logits within 1e-4, and sampling with top-k = 1 (temperature 0.9) picks the same
// tokens. The Qwen3-shaped variant gives the reference the flat
// parameters with a name → (offset, size) manifest and Hugging Face Qwen3's fields (rotate-half
// RoPE, theta 1e6, QK-norm, eps 1e-6, untied lm_head, head_dim != dim/heads).
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "server/generation/decoder.h"
#include "server/generation/parallel_rows.h"
#include "server/generation/sampler.h"
#include "server/training/model_io.h"
#include "tests/generation/generation_test_util.h"

namespace anerd::generation {
namespace {

using testing::Uniform;
using training::ModelConfig;

constexpr int kSteps = 100;
const std::vector<int32_t> kPrompt = {1, 40, 7, 19};

struct Shape {
  int dim, hidden, layers, heads, kv_heads, vocab, seq;
  bool tied;
};

// A llama2.c file in run.c's order (memory_map_weights), values as RandomParams scales them; the
// legacy freq_cis tables are filled with noise (run.c skips them).
void WriteLlama2c(const std::string& path, const Shape& s) {
  const int hs = s.dim / s.heads, kvd = s.kv_heads * hs;
  std::ofstream f(path, std::ios::binary);
  const int32_t header[7] = {
      s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.tied ? s.vocab : -s.vocab, s.seq};
  f.write(reinterpret_cast<const char*>(header), sizeof(header));
  uint64_t seed = 2024;
  auto put = [&](int64_t n, double scale, double offset) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(offset + scale * Uniform(&seed));
      f.write(reinterpret_cast<const char*>(&v), sizeof(v));
    }
  };
  const double d = s.dim, h = s.hidden;
  const int64_t L = s.layers;
  put(int64_t{s.vocab} * s.dim, 0.4, 0);  // token_embedding_table (small: x must move off it)
  put(L * s.dim, 0.3, 1);                 // rms_att
  put(L * s.dim * s.dim, 1.7 / std::sqrt(d), 0);     // wq
  put(L * kvd * s.dim, 1.7 / std::sqrt(d), 0);       // wk
  put(L * kvd * s.dim, 1.7 / std::sqrt(d), 0);       // wv
  put(L * s.dim * s.dim, 1.7 / std::sqrt(d), 0);     // wo
  put(L * s.dim, 0.3, 1);                            // rms_ffn
  put(L * s.hidden * s.dim, 1.7 / std::sqrt(d), 0);  // w1
  put(L * s.dim * s.hidden, 1.7 / std::sqrt(h), 0);  // w2
  put(L * s.hidden * s.dim, 1.7 / std::sqrt(d), 0);  // w3
  put(s.dim, 0.3, 1);                                // rms_final
  put(int64_t{s.seq} * hs, 5, 0);                    // freq_cis_real, freq_cis_imag
  if (!s.tied) put(int64_t{s.vocab} * s.dim, 1, 0);  // wcls
}

struct Greedy {
  std::vector<int> tokens;
  std::vector<int> top_k1;  // the Sampler's choices with top_k = 1 at temperature 0.9
  std::vector<std::vector<float>> logits;
};

Greedy Decode(const ModelConfig& c, std::shared_ptr<const std::vector<float>> params) {
  Greedy g;
  absl::StatusOr<std::unique_ptr<Decoder>> d = Decoder::Create(c, std::move(params));
  EXPECT_TRUE(d.ok()) << d.status();
  if (!d.ok()) return g;
  SamplingParams top_k1;
  top_k1.temperature = 0.9f;
  top_k1.top_k = 1;
  top_k1.seed = 5;
  absl::StatusOr<Sampler> sampler = Sampler::Create(top_k1, c.vocab);
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  if (!sampler.ok()) return g;
  absl::StatusOr<absl::Span<const float>> logits = (*d)->Prefill(kPrompt);
  for (int i = 0; i < kSteps && logits.ok(); ++i) {
    g.logits.emplace_back(logits->begin(), logits->end());
    g.tokens.push_back(SampleArgmax(logits->data(), static_cast<int>(logits->size())));
    absl::StatusOr<int> k1 = sampler->Sample(*logits, g.tokens);
    g.top_k1.push_back(k1.ok() ? *k1 : -1);
    logits = (*d)->Step(g.tokens.back());
  }
  EXPECT_TRUE(logits.ok()) << logits.status();
  return g;
}

void ExpectMatches(const Greedy& got, const nlohmann::json& ref) {
  ASSERT_TRUE(ref.is_object()) << "reference output unreadable";
  const std::vector<int> want = ref["tokens"].get<std::vector<int>>();
  EXPECT_EQ(got.tokens, want);
  EXPECT_EQ(got.top_k1, want) << "top-k = 1 must be greedy";
  ASSERT_EQ(ref["logits"].size(), got.logits.size());
  double worst = 0;
  for (size_t s = 0; s < got.logits.size(); ++s) {
    const std::vector<double> w = ref["logits"][s].get<std::vector<double>>();
    ASSERT_EQ(w.size(), got.logits[s].size());
    for (size_t i = 0; i < w.size(); ++i)
      worst = std::max(worst, std::fabs(w[i] - got.logits[s][i]));
  }
  EXPECT_LE(worst, 1e-4);
  EXPECT_GT(std::set<int>(got.tokens.begin(), got.tokens.end()).size(), 3u)
      << "a constant sequence would not exercise the cache";
  ::testing::Test::RecordProperty("max_abs_logit_diff", std::to_string(worst));
  std::printf("max |logit - reference| over %zu steps: %.3g\n", got.logits.size(), worst);
}

std::string RunReference(const std::string& py, const testing::TempDir& dir,
                         const std::string& model_args) {
  const std::string out = dir / "ref.json";
  const std::string cmd = absl::StrFormat("%s %s forward %s --prompt %s --steps %d --out %s", py,
                                          testing::ReferenceScript(), model_args,
                                          absl::StrJoin(kPrompt, ","), kSteps, out);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return out;
}

void ExpectLlama2cMatches(const Shape& shape) {
  const std::string py = testing::NumpyPython();
  if (py.empty()) GTEST_SKIP() << "no python3 with numpy";
  testing::TempDir dir;
  WriteLlama2c(dir / "model.bin", shape);
  absl::StatusOr<training::LoadedModel> m = training::LoadModelFile(dir / "model.bin");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->config.tied_embeddings, shape.tied);
  const Greedy got =
      Decode(m->config, std::make_shared<const std::vector<float>>(std::move(m->params)));
  ExpectMatches(got, testing::ReadJson(RunReference(py, dir, "--model " + dir / "model.bin")));
}

class Llama2cTest : public ::testing::TestWithParam<bool> {};

TEST_P(Llama2cTest, GreedyMatchesRunC) {
  ExpectLlama2cMatches(Shape{64, 96, 3, 4, 2, 96, 128, GetParam()});
}

// Wide enough (untied, GQA) that the decoder's row pool splits every product and, past 64
// positions, the attention heads (the small shapes above run inline).
TEST(Llama2cWideTest, GreedyMatchesRunCOnThePooledPath) {
  const int previous = SetRowThreads(2);
  ExpectLlama2cMatches(Shape{256, 512, 2, 4, 2, 512, 128, false});
  SetRowThreads(previous);
}

INSTANTIATE_TEST_SUITE_P(Classifier, Llama2cTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Tied" : "Untied"; });

TEST(Qwen3ShapeTest, GreedyMatchesTheExtendedReference) {
  const std::string py = testing::NumpyPython();
  if (py.empty()) GTEST_SKIP() << "no python3 with numpy";
  testing::TempDir dir;
  absl::StatusOr<ModelConfig> c = training::ParseCustomConfig(
      "dim=48,hidden=80,layers=3,heads=4,kv_heads=2,head_dim=16,vocab=80,seq=128,"
      "rope_style=half,rope_theta=1000000,qk_norm=1,norm_eps=1e-6,tied=0");
  ASSERT_TRUE(c.ok()) << c.status();
  auto params = std::make_shared<const std::vector<float>>(testing::RandomParams(*c, 31));
  testing::WriteRaw(dir / "params.bin", *params);
  nlohmann::json manifest;
  manifest["data"] = dir / "params.bin";
  manifest["config"] = {{"dim", c->dim},     {"hidden", c->hidden},     {"layers", c->layers},
                        {"heads", c->heads}, {"kv_heads", c->kv_heads}, {"head_dim", c->head_dim},
                        {"vocab", c->vocab}, {"seq", c->seq},           {"rope_half", true},
                        {"rope_theta", 1e6}, {"qk_norm", true},         {"norm_eps", 1e-6}};
  const training::ParamLayout layout(*c);
  for (const training::ParamGroup& g : layout.groups()) {
    manifest["tensors"][g.name] = {g.offset, g.size};
  }
  std::ofstream(dir / "manifest.json") << manifest.dump();
  const Greedy got = Decode(*c, params);
  ExpectMatches(got,
                testing::ReadJson(RunReference(py, dir, "--manifest " + dir / "manifest.json")));
}

}  // namespace
}  // namespace anerd::generation
