// Hugging Face import and export (server/training/hf_format.h), the llama2.c export refusal
// (model_export.h) and `--init` without `--config` (init_model.h), issue 19 items 4 and 5.
// Checkpoints are written by tests/training/hf_reference.py with Debian's /usr/bin/python3
// (numpy), and its plain-PyTorch forward is the reference the engine's loss must match.
#include "server/training/hf_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/backend/cpu/cpu_backend.h"
#include "server/training/init_model.h"
#include "server/training/model.h"
#include "server/training/model_export.h"
#include "server/training/model_io.h"
#include "tests/training/hf_test_util.h"

namespace anerd::training {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kPython[] = "/usr/bin/python3";
const std::string kScript = std::string(ANERD_SOURCE_DIR) + "/tests/training/hf_reference.py";

bool PythonHas(const char* modules) {
  return testing::Run({kPython, "-c", std::string("import ") + modules}).exit_code ==
         0;
}

// Writes a checkpoint with hf_reference.py gen; skips the test when numpy is missing.
#define GEN_OR_SKIP(dir, kind, seed, dtype, shards)                                                \
  do {                                                                                             \
    if (!PythonHas("numpy")) GTEST_SKIP() << kPython << " lacks numpy (Debian python3-numpy)";     \
    auto r = testing::Run({kPython, kScript, "gen", dir, kind, std::to_string(seed), \
                                         dtype, std::to_string(shards)});                          \
    ASSERT_EQ(r.exit_code, 0) << r.out;                                                            \
  } while (0)

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// ---- config.json ----

constexpr char kLlamaConfig[] = R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,
  "intermediate_size":96,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
  "vocab_size":96,"max_position_embeddings":4096,"rope_theta":500000.0,"rms_norm_eps":1e-5,
  "tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":[2,3],"hidden_act":"silu"})";

TEST(HfConfigTest, ParsesLlamaAndQwen3) {
  absl::StatusOr<ModelConfig> c = ParseHfConfig(kLlamaConfig, "d/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dim, 64);
  EXPECT_EQ(c->hidden, 96);
  EXPECT_EQ(c->kv_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->seq, kHfDefaultSeq);
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->norm_eps, 1e-5);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_EQ(c->bos_id, 1);
  EXPECT_EQ(c->eos_id, 2);
  EXPECT_EQ(c->rope_style, ModelConfig::RopeStyle::kInterleaved);

  absl::StatusOr<ModelConfig> q = ParseHfConfig(
      R"({"architectures":["Qwen3ForCausalLM"],"hidden_size":64,"intermediate_size":96,
      "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,
      "vocab_size":96,"max_position_embeddings":16,"rope_theta":1000000,"rms_norm_eps":1e-6})",
      "q/config.json");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(q->qk_norm);
  EXPECT_EQ(q->head_dim, 32);
  EXPECT_EQ(q->seq, 16);
  EXPECT_EQ(q->rope_theta, 1e6);
  EXPECT_FALSE(q->tied_embeddings);  // transformers' default
  EXPECT_EQ(q->bos_id, -1);
}

TEST(HfConfigTest, RefusesMissingOrAbsurdFieldsNamingThem) {
  const nlohmann::json base = nlohmann::json::parse(kLlamaConfig);
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"hidden_size", nullptr}}, "hidden_size: missing"},
      {{{"hidden_size", -64}}, "hidden_size: -64 is outside"},
      {{{"num_hidden_layers", 1 << 21}}, "num_hidden_layers"},
      {{{"intermediate_size", "96"}}, "intermediate_size: not an integer"},
      {{{"vocab_size", 1.5}}, "vocab_size: not an integer"},
      {{{"num_key_value_heads", 3}}, "num_key_value_heads: 3 does not divide"},
      {{{"head_dim", 15}}, "head_dim: must be even"},
      {{{"rope_theta", -1}}, "rope_theta"},
      {{{"rms_norm_eps", 0}}, "rms_norm_eps"},
      {{{"tie_word_embeddings", "yes"}}, "tie_word_embeddings: not a boolean"},
      {{{"eos_token_id", 96}}, "eos_token_id: 96 is not a token id"},
      {{{"architectures", {"GPT2LMHeadModel"}}}, "architectures: 'GPT2LMHeadModel'"},
      {{{"hidden_act", "gelu"}}, "hidden_act"},
      {{{"attention_bias", true}}, "attention_bias"},
      {{{"rope_scaling", {{"rope_type", "llama3"}}}}, "rope_scaling"},
  };
  for (const auto& [patch, want] : cases) {
    nlohmann::json j = base;
    for (const auto& [k, v] : patch.items()) j[k] = v;
    SCOPED_TRACE(patch.dump());
    absl::StatusOr<ModelConfig> c = ParseHfConfig(j.dump(), "ckpt/config.json");
    ASSERT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
    EXPECT_THAT(c.status().message(), AllOf(HasSubstr("ckpt/config.json"), HasSubstr(want)));
  }
  nlohmann::json none = base;
  none.erase("architectures");
  EXPECT_THAT(ParseHfConfig(none.dump(), "f").status().message(), HasSubstr("architectures"));
  EXPECT_THAT(ParseHfConfig("{\"hidden_size\": 6", "f").status().message(),
              HasSubstr("not a JSON object"));
}

// ---- import / export ----

// gen → import → export → import: bit-identical parameters and identical files.
void ExpectRoundTrip(const std::string& src, const std::string& tmp, LoadedModel* out) {
  absl::StatusOr<LoadedModel> a = LoadModelFile(src + "/config.json");
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string e1 = tmp + "/e1", e2 = tmp + "/e2";
  std::filesystem::create_directories(e1);
  std::filesystem::create_directories(e2);
  ASSERT_TRUE(ExportHf(e1, a->config, a->params).ok());
  absl::StatusOr<LoadedModel> b = LoadModelFile(e1 + "/model.safetensors");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(ConfigToString(b->config), ConfigToString(a->config));
  ASSERT_EQ(b->params.size(), a->params.size());
  EXPECT_EQ(std::memcmp(b->params.data(), a->params.data(), a->params.size() * 4), 0);
  ASSERT_TRUE(ExportHf(e2, b->config, b->params).ok());
  EXPECT_EQ(Slurp(e1 + "/model.safetensors"), Slurp(e2 + "/model.safetensors"));
  EXPECT_EQ(Slurp(e1 + "/config.json"), Slurp(e2 + "/config.json"));
  *out = *std::move(a);
}

TEST(HfImportTest, LlamaRoundTripsBitIdentically) {
  testing::TempDir dir;
  GEN_OR_SKIP(dir.path() + "/src", "llama", 1, "F32", 1);
  LoadedModel m;
  ExpectRoundTrip(dir.path() + "/src", dir.path(), &m);
  EXPECT_EQ(m.config.name, "hf-llama");
}

TEST(HfImportTest, ShardedBf16Qwen3RoundTripsBitIdentically) {
  testing::TempDir dir;
  GEN_OR_SKIP(dir.path() + "/src", "qwen3", 2, "BF16", 3);
  LoadedModel m;
  ExpectRoundTrip(dir.path() + "/src", dir.path(), &m);
  EXPECT_TRUE(m.config.qk_norm);
  EXPECT_FALSE(m.config.tied_embeddings);
  EXPECT_EQ(m.config.head_dim, 32);
}

TEST(HfImportTest, PermutesRopeRowsIntoInterleavedPairs) {
  testing::TempDir dir;
  GEN_OR_SKIP(dir.path(), "llama", 3, "F16", 1);
  absl::StatusOr<LoadedModel> m = LoadHfCheckpoint(dir.path());
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> r =
      SafetensorsReader::Open(dir.path() + "/model.safetensors");
  ASSERT_TRUE(r.ok());
  const ModelConfig& c = m->config;
  std::vector<float> q(c.q_dim() * c.dim), v(c.kv_dim() * c.dim);
  ASSERT_TRUE(
      (*r)->ReadF32("model.layers.1.self_attn.q_proj.weight", {c.q_dim(), c.dim}, q.data()).ok());
  ASSERT_TRUE(
      (*r)->ReadF32("model.layers.1.self_attn.v_proj.weight", {c.kv_dim(), c.dim}, v.data()).ok());
  const ParamLayout layout(c);
  const float* wq = m->params.data() + layout.layer(1).wq;
  const int hd = c.head_dim;
  // Interleaved row (h·hd + 2i + r) is transformers' row (h·hd + r·hd/2 + i).
  for (int h = 0; h < c.heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      for (int r = 0; r < 2; ++r) {
        const int64_t to = h * hd + 2 * i + r, from = h * hd + r * hd / 2 + i;
        for (int k = 0; k < c.dim; ++k) ASSERT_EQ(wq[to * c.dim + k], q[from * c.dim + k]);
      }
    }
  }
  // v is not rotated: copied as is.
  EXPECT_EQ(std::memcmp(m->params.data() + layout.layer(1).wv, v.data(), v.size() * 4), 0);
}

TEST(HfImportTest, RefusesMissingUnexpectedAndMisshapenTensors) {
  testing::TempDir dir;
  GEN_OR_SKIP(dir.path(), "llama", 4, "F32", 1);
  absl::StatusOr<LoadedModel> m = LoadHfCheckpoint(dir.path());
  ASSERT_TRUE(m.ok()) << m.status();
  // A config whose shapes differ from the tensors': named tensor and both shapes.
  nlohmann::json c = nlohmann::json::parse(Slurp(dir.path() + "/config.json"));
  c["intermediate_size"] = 128;
  WriteText(dir.path() + "/config.json", c.dump());
  absl::StatusOr<LoadedModel> shape = LoadHfCheckpoint(dir.path());
  ASSERT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument) << shape.status();
  EXPECT_THAT(shape.status().message(), AllOf(HasSubstr("model.layers.0.mlp.gate_proj.weight"),
                                              HasSubstr("[96, 64]"), HasSubstr("[128, 64]")));
  // One layer fewer in config.json: layer 1's tensors are unexpected.
  c["intermediate_size"] = 96;
  c["num_hidden_layers"] = 1;
  WriteText(dir.path() + "/config.json", c.dump());
  absl::StatusOr<LoadedModel> extra = LoadHfCheckpoint(dir.path());
  ASSERT_EQ(extra.status().code(), absl::StatusCode::kInvalidArgument) << extra.status();
  EXPECT_THAT(extra.status().message(), HasSubstr("unexpected tensor 'model.layers.1."));
  // One layer more: layer 2's are missing.
  c["num_hidden_layers"] = 3;
  WriteText(dir.path() + "/config.json", c.dump());
  absl::StatusOr<LoadedModel> missing = LoadHfCheckpoint(dir.path());
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("missing tensor 'model.layers.2."));
}

TEST(HfExportTest, WritesTheConfigTransformersReads) {
  absl::StatusOr<ModelConfig> c = ParseHfConfig(kLlamaConfig, "x");
  ASSERT_TRUE(c.ok());
  absl::StatusOr<std::string> text = HfConfigJson(*c);
  ASSERT_TRUE(text.ok());
  const nlohmann::json j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["num_key_value_heads"], 2);
  EXPECT_EQ(j["head_dim"], 16);
  EXPECT_EQ(j["rope_theta"], 500000.0);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["eos_token_id"], 2);
  // Parsing it back gives the same config (seq aside: max_position_embeddings = seq).
  absl::StatusOr<ModelConfig> back = ParseHfConfig(*text, "back");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ConfigToString(*back), ConfigToString(*c));
  ModelConfig deepnet = *c;
  deepnet.residual_scale = 0.5;
  EXPECT_THAT(HfConfigJson(deepnet).status().message(), HasSubstr("residual_scale"));
}

// ---- llama2.c export refusal ----

TEST(Llama2cExportTest, RefusesShapesTheFormatCannotHoldWithTheReason) {
  const ModelConfig tiny = *ModelConfigByName("tiny");
  EXPECT_TRUE(CheckLlama2cCanHold(tiny).ok());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"head_dim=32", "head_dim"},       {"qk_norm=1", "qk_norm"},
      {"rope_style=half", "rope_style"}, {"rope_theta=1e6", "rope_theta"},
      {"norm_eps=1e-6", "norm_eps"},
  };
  for (const auto& [kv, field] : cases) {
    SCOPED_TRACE(kv);
    absl::StatusOr<ModelConfig> c = ParseCustomConfig(kv);
    ASSERT_TRUE(c.ok()) << c.status();
    absl::Status s = CheckLlama2cCanHold(*c);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), AllOf(HasSubstr(field), HasSubstr("--format hf")));
    testing::TempDir dir;
    std::vector<float> params(c->NumParams(), 0.0f);
    EXPECT_EQ(ExportLlama2c(dir.path() + "/m.bin", *c, params).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(Llama2cExportTest, UntiedClassifierRoundTrips) {
  absl::StatusOr<ModelConfig> c = ParseCustomConfig("tied=0");
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<float> params(c->NumParams());
  for (size_t i = 0; i < params.size(); ++i) params[i] = static_cast<float>(i % 97) * 0.01f;
  testing::TempDir dir;
  const std::string path = dir.path() + "/m.bin";
  ASSERT_TRUE(ExportLlama2c(path, *c, params).ok());
  absl::StatusOr<LoadedModel> m = LoadModelFile(path);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->config.tied_embeddings);
  EXPECT_EQ(m->params, params);
}

// ---- --init without --config ----

TEST(InitModelTest, TheShapeComesFromTheFile) {
  absl::StatusOr<ModelConfig> c =
      ParseCustomConfig("dim=48,hidden=80,layers=3,heads=6,kv_heads=2,vocab=300,seq=32");
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<float> params(c->NumParams(), 0.5f);
  testing::TempDir dir;
  const std::string path = dir.path() + "/m.bin";
  ASSERT_TRUE(ExportLlama2c(path, *c, params).ok());

  TrainSpec spec;
  spec.model = *ModelConfigByName("tiny");
  spec.init_model_path = path;
  spec.model_from_init = true;
  ASSERT_TRUE(ResolveInitModel(&spec).ok());
  EXPECT_EQ(ConfigToString(spec.model), ConfigToString(*c));
  EXPECT_EQ(spec.model.name, "llama2c");
  EXPECT_FALSE(spec.model_from_init);

  // --config overrides what does not change the weights...
  spec.model = *ModelConfigByName("tiny");
  spec.model_from_init = true;
  spec.model_overrides = "seq=16";
  ASSERT_TRUE(ResolveInitModel(&spec).ok());
  EXPECT_EQ(spec.model.seq, 16);
  EXPECT_EQ(spec.model.dim, 48);
  // ...and a mismatch names the field and both values.
  spec.model_from_init = true;
  spec.model_overrides = "seq=16,hidden=96";
  absl::Status s = ResolveInitModel(&spec);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("hidden"), HasSubstr("96"), HasSubstr("80"), HasSubstr(path)));
}

TEST(InitModelTest, AnHfCheckpointBringsItsConfig) {
  testing::TempDir dir;
  GEN_OR_SKIP(dir.path(), "qwen3", 5, "F32", 1);
  TrainSpec spec;
  spec.init_model_path = dir.path() + "/config.json";
  spec.model_from_init = true;
  ASSERT_TRUE(ResolveInitModel(&spec).ok());
  EXPECT_EQ(spec.model.name, "hf-qwen3");
  EXPECT_TRUE(spec.model.qk_norm);
  EXPECT_EQ(spec.model.rope_theta, 1e6);
  EXPECT_EQ(spec.model.seq, 16);
}

// ---- the PyTorch reference ----

// anerd's loss (fp32 numerics on the CPU backend) on the imported checkpoint equals the plain
// PyTorch forward of the exported one, and differs from the same forward with the other RoPE
// pairing (so a wrong import permutation cannot pass).
void ExpectEngineMatchesTorch(const char* kind, const char* dtype) {
  if (!PythonHas("numpy, torch")) GTEST_SKIP() << kPython << " lacks torch";
  testing::TempDir dir;
  const std::string src = dir.path() + "/src", out = dir.path() + "/out";
  GEN_OR_SKIP(src, kind, 11, dtype, 1);
  absl::StatusOr<LoadedModel> m = LoadModelFile(src + "/config.json");
  ASSERT_TRUE(m.ok()) << m.status();
  std::filesystem::create_directories(out);
  ASSERT_TRUE(ExportHf(out, m->config, m->params).ok());
  const ModelConfig& c = m->config;
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto model = Model::Create(c, c.residual_scale, backend::NumericsMode::kFp32, &cpu);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<uint32_t> tokens(c.seq), t1(c.seq), t2(c.seq);
  for (int i = 0; i < c.seq; ++i) {
    tokens[i] = static_cast<uint32_t>((7 * i + 3) % c.vocab);
    t1[i] = static_cast<uint32_t>((5 * i + 1) % c.vocab);
    t2[i] = static_cast<uint32_t>((11 * i + 9) % c.vocab);
  }
  PhaseTimes times;
  (*model)->StageWeights(m->params.data(), &times);
  std::vector<double> ours;
  for (const auto* t : {&t1, &t2}) {
    absl::StatusOr<double> loss =
        (*model)->Loss(m->params.data(), tokens.data(), t->data(), &times);
    ASSERT_TRUE(loss.ok()) << loss.status();
    ours.push_back(*loss);
  }
  auto run = testing::Run({kPython, kScript, "ref", out, absl::StrJoin(tokens, ","),
                                         absl::StrJoin(t1, ","), absl::StrJoin(t2, ",")});
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string last = run.out.substr(run.out.rfind('{'));
  const nlohmann::json ref = nlohmann::json::parse(last, nullptr, false);
  ASSERT_FALSE(ref.is_discarded()) << run.out;
  for (int k = 0; k < 2; ++k) {
    const double want = ref["loss"][k], other = ref["loss_interleaved"][k];
    EXPECT_NEAR(ours[k], want, 2e-3 * want) << "targets " << k;
    // The engine is far closer to the right pairing than to the other one.
    EXPECT_GT(std::fabs(ours[k] - other), 10 * std::max(std::fabs(ours[k] - want), 1e-4 * want))
        << "targets " << k << ": ours " << ours[k] << ", reference " << want
        << ", other pairing " << other;
  }
}

TEST(HfReferenceTest, LlamaLossMatchesPyTorch) { ExpectEngineMatchesTorch("llama", "F32"); }
TEST(HfReferenceTest, Qwen3LossMatchesPyTorch) { ExpectEngineMatchesTorch("qwen3", "BF16"); }

}  // namespace
}  // namespace anerd::training
