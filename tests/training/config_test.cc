// ModelConfig's architecture fields (issue 19 item 4): parsing, printing, validation, the
// architecture comparison used by --init, and that default configs render as before.
#include "server/training/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/training/model_io.h"
#include "server/training/trainer.h"

namespace anerd::training {
namespace {

TEST(ModelConfigFields, DefaultsAreTheSeedModelAndPrintAsBefore) {
  absl::StatusOr<ModelConfig> c = ParseCustomConfig("dim=32,heads=4,kv_heads=2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_style, ModelConfig::RopeStyle::kInterleaved);
  EXPECT_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_EQ(c->norm_eps, 1e-5);
  EXPECT_EQ(c->residual_scale, 1.0);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_EQ(c->bos_id, -1);
  EXPECT_EQ(c->eos_id, -1);
  // Exactly the text of configs written before the fields existed (checkpoint SPEC sections).
  EXPECT_EQ(ConfigToString(*c),
            "dim=32,hidden=192,layers=2,heads=4,kv_heads=2,head_dim=8,"
            "vocab=256,seq=64");
  absl::StatusOr<ModelConfig> q = ModelConfigByName("qwen3_0_6b");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->rope_style, ModelConfig::RopeStyle::kInterleaved);  // the seed's shape, not HF's
  EXPECT_FALSE(q->qk_norm);
  EXPECT_TRUE(q->tied_embeddings);
}

TEST(ModelConfigFields, Qwen3FieldsParseAndRoundTrip) {
  absl::StatusOr<ModelConfig> c = ParseCustomConfig(
      "dim=32,heads=4,kv_heads=2,head_dim=16,rope_style=half,rope_theta=1000000,qk_norm=1,"
      "tied=0,norm_eps=1e-6,residual_scale=0.25,bos_id=1,eos_id=2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_style, ModelConfig::RopeStyle::kHalf);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->tied_embeddings);
  EXPECT_EQ(c->norm_eps, 1e-6);
  EXPECT_EQ(c->residual_scale, 0.25);
  EXPECT_EQ(c->bos_id, 1);
  EXPECT_EQ(c->eos_id, 2);
  const std::string text = ConfigToString(*c);
  EXPECT_NE(text.find("rope_style=half,rope_theta=1000000,qk_norm=1,norm_eps=1e-06"),
            std::string::npos)
      << text;
  absl::StatusOr<ModelConfig> back = ParseCustomConfig(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(CheckSameArchitecture(*back, *c, "a", "b").ok());
  EXPECT_EQ(ConfigToString(*back), text);
  EXPECT_EQ(back->bos_id, 1);
  // A value that needs all 17 digits survives too.
  c->rope_theta = 1.0 / 3.0;
  back = ParseCustomConfig(ConfigToString(*c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->rope_theta, 1.0 / 3.0);
}

TEST(ModelConfigFields, ParamCountsIncludeQkNormAndLmHead) {
  ModelConfig c = *ParseCustomConfig("dim=32,hidden=64,layers=3,heads=4,kv_heads=2,vocab=100");
  const int64_t base = c.NumParams();
  c.qk_norm = true;
  EXPECT_EQ(c.NumParams(), base + 3 * 2 * c.head_dim);
  c.tied_embeddings = false;
  EXPECT_EQ(c.NumParams(), base + 3 * 2 * c.head_dim + 100 * 32);
  EXPECT_EQ(*CheckedNumParams(c), c.NumParams());
}

TEST(ModelConfigFields, BadValuesNameTheKey) {
  const std::pair<const char*, const char*> bad[] = {
      {"rope_style=rotary", "rope_style"},
      {"rope_theta=0", "rope_theta"},
      {"rope_theta=abc", "rope_theta"},
      {"rope_theta=nan", "rope_theta"},
      {"qk_norm=2", "qk_norm"},
      {"tied=yes", "tied"},
      {"norm_eps=0", "norm_eps"},
      {"norm_eps=1", "norm_eps"},
      {"residual_scale=-1", "residual_scale"},
      {"residual_scale=inf", "residual_scale"},
      {"bos_id=256", "bos_id"},
      {"eos_id=-2", "eos_id"},
      {"dim=8,heads=1,head_dim=16,qk_norm=1", "qk_norm"}};
  for (const auto& [text, key] : bad) {
    absl::StatusOr<ModelConfig> c = ParseCustomConfig(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(c.status().message().find(key), std::string::npos) << c.status();
  }
}

TEST(ModelConfigFields, ArchitectureMismatchIsAClearError) {
  const ModelConfig a = *ParseCustomConfig("dim=32,heads=4");
  const std::pair<const char*, const char*> other[] = {
      {"dim=32,heads=4,rope_style=half", "rope_style interleaved but the spec has half"},
      {"dim=32,heads=4,rope_theta=1000000", "rope_theta 10000 but the spec has 1000000"},
      {"dim=32,heads=4,qk_norm=1", "qk_norm 0 but the spec has 1"},
      {"dim=32,heads=4,tied=0", "tied 1 but the spec has 0"},
      {"dim=32,heads=4,norm_eps=1e-6", "norm_eps"},
      {"dim=32,heads=4,residual_scale=0.5", "residual_scale"},
      {"dim=32,heads=2", "heads 4 but the spec has 2"}};
  for (const auto& [text, want] : other) {
    absl::Status s = CheckSameArchitecture(a, *ParseCustomConfig(text), "the file", "the spec");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(s.message().find(want), std::string::npos) << s;
  }
  // seq and the special ids do not change the computation.
  EXPECT_TRUE(
      CheckSameArchitecture(a, *ParseCustomConfig("dim=32,heads=4,seq=8,bos_id=1"), "x", "y").ok());
}

TEST(ModelConfigFields, DeepnetAndAModelResidualScaleAreExclusive) {
  TrainSpec spec;
  spec.data_path = "d.txt";
  spec.model = *ParseCustomConfig("layers=2,residual_scale=0.5");
  EXPECT_TRUE(ValidateSpec(spec).ok());
  EXPECT_EQ(ResidualAlpha(spec), 0.5);
  spec.residual_scale = "deepnet";
  absl::Status s = ValidateSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("residual_scale"), std::string::npos) << s;
  spec.model.residual_scale = 1.0;
  EXPECT_DOUBLE_EQ(ResidualAlpha(spec), 0.5);  // 1/sqrt(2·2)
}

TEST(ModelConfigFields, SpecTextCarriesTheFields) {
  TrainSpec spec;
  spec.data_path = "d.txt";
  spec.model = *ParseCustomConfig("dim=32,heads=2,head_dim=16,rope_style=half,qk_norm=1,tied=0");
  absl::StatusOr<TrainSpec> back = SpecFromText(SpecToText(spec));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(CheckSameArchitecture(back->model, spec.model, "a", "b").ok());
  // A SPEC written before the fields existed reads as the defaults.
  back = SpecFromText(
      "name=custom\nmodel=dim=32,hidden=64,layers=1,heads=2,kv_heads=2,"
      "head_dim=16,vocab=256,seq=8\ndata_path=d.txt\n");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->model.rope_style, ModelConfig::RopeStyle::kInterleaved);
  EXPECT_FALSE(back->model.qk_norm);
  EXPECT_TRUE(back->model.tied_embeddings);
}

// Issue 20 item 4: the evaluation fields round-trip through a checkpoint's SPEC (the prompt with
// its newlines), are absent when off (SPECs stay as before), and bad values name the field.
TEST(EvalSpecFields, RoundTripAndValidate) {
  TrainSpec spec;
  spec.data_path = "d.txt";
  spec.model = *ModelConfigByName("tiny");
  const std::string plain = SpecToText(spec);
  EXPECT_EQ(plain.find("eval_every"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("sample_"), std::string::npos) << plain;
  spec.eval_every = 5;
  spec.eval_batches = 3;
  spec.sample_every = 7;
  spec.sample_prompt = "Once upon\na time=\"x\"";
  spec.sample_tokens = 20;
  absl::StatusOr<TrainSpec> back = SpecFromText(SpecToText(spec));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->eval_every, 5);
  EXPECT_EQ(back->eval_batches, 3);
  EXPECT_EQ(back->sample_every, 7);
  EXPECT_EQ(back->sample_prompt, spec.sample_prompt);
  EXPECT_EQ(back->sample_tokens, 20);
  EXPECT_TRUE(ValidateSpec(spec).ok());
  const std::pair<std::function<void(TrainSpec*)>, const char*> bad[] = {
      {[](TrainSpec* s) { s->eval_every = -1; }, "eval_every"},
      {[](TrainSpec* s) { s->eval_batches = 0; }, "eval_batches"},
      {[](TrainSpec* s) { s->eval_batches = kMaxEvalBatches + 1; }, "eval_batches"},
      {[](TrainSpec* s) { s->sample_tokens = 0; }, "sample_tokens"},
      {[](TrainSpec* s) { s->sample_prompt = ""; }, "sample_prompt"},
      {[](TrainSpec* s) { s->compact_vocab = true; }, "eval_every"},
  };
  for (const auto& [mutate, field] : bad) {
    TrainSpec t = spec;
    mutate(&t);
    absl::Status st = ValidateSpec(t);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st;
  }
}

std::string TempPath(const std::string& name) {
  return std::string(ANERD_BINARY_DIR) + "/training_config_test_" + std::to_string(getpid()) + "_" +
         name;
}

Checkpoint MakeCheckpoint(const std::string& model) {
  Checkpoint ck;
  ck.spec.model = *ParseCustomConfig(model);
  ck.spec.data_path = "d.txt";
  ck.params.assign(ck.spec.model.NumParams(), 0.5f);
  ck.adam_m.assign(ck.params.size(), 0.0f);
  ck.adam_v.assign(ck.params.size(), 0.0f);
  ck.state.adam_t = 3;
  return ck;
}

// The native checkpoint records the fields in its SPEC; they round-trip, and a default config's
// SPEC text is exactly the pre-fields one (no new keys).
TEST(CheckpointFields, RoundTripAndDefaultsUnchanged) {
  const std::string path = TempPath("fields.ckpt");
  const Checkpoint ck = MakeCheckpoint(
      "dim=32,heads=2,head_dim=16,rope_style=half,rope_theta=1000000,qk_norm=1,"
      "norm_eps=1e-6,tied=0,eos_id=3");
  ASSERT_TRUE(WriteCheckpoint(path, ck).ok());
  absl::StatusOr<Checkpoint> back = ReadCheckpoint(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(CheckSameArchitecture(back->spec.model, ck.spec.model, "read", "written").ok());
  EXPECT_EQ(back->spec.model.eos_id, 3);
  EXPECT_EQ(back->params.size(), ck.params.size());

  const Checkpoint plain = MakeCheckpoint("dim=32,heads=2");
  ASSERT_TRUE(WriteCheckpoint(path, plain).ok());
  std::ifstream f(path, std::ios::binary);
  std::stringstream bytes;
  bytes << f.rdbuf();
  EXPECT_NE(bytes.str().find("model=dim=32,hidden=192,layers=2,heads=2,kv_heads=2,head_dim=16,"
                             "vocab=256,seq=64\n"),
            std::string::npos);
  for (const char* key : {"rope_style", "rope_theta", "qk_norm", "norm_eps", "tied", "bos_id"}) {
    EXPECT_EQ(bytes.str().find(key), std::string::npos) << key;
  }
  std::remove(path.c_str());
}

// --init from a checkpoint of another architecture is refused, naming the field.
TEST(CheckpointFields, InitFromADifferentArchitectureIsAClearError) {
  const std::string path = TempPath("init.ckpt"), data = TempPath("data.txt");
  std::ofstream(data) << SynthesizeStories(1, 20000);
  ASSERT_TRUE(WriteCheckpoint(path, MakeCheckpoint("dim=32,heads=2,rope_style=half")).ok());
  absl::StatusOr<LoadedModel> loaded = LoadModelFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->config.rope_style, ModelConfig::RopeStyle::kHalf);
  EXPECT_EQ(loaded->adam_t, 3);

  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  TrainSpec spec;
  spec.data_path = data;
  spec.init_model_path = path;
  spec.steps = 1;
  spec.model = *ParseCustomConfig("dim=32,heads=2");  // interleaved
  auto t = Trainer::Create(spec, &cpu);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("rope_style half but the spec's model has interleaved"),
            std::string::npos)
      << t.status();
  spec.model = loaded->config;  // the same architecture trains
  t = Trainer::Create(spec, &cpu);
  EXPECT_TRUE(t.ok()) << t.status();
  std::remove(path.c_str());
  std::remove(data.c_str());
}

TEST(CheckpointFields, Llama2cExportRefusesWhatTheFormatCannotHold) {
  const std::string path = TempPath("x.bin");
  for (const char* model : {"dim=32,heads=2,rope_style=half", "dim=32,heads=2,rope_theta=500000",
                            "dim=32,heads=2,qk_norm=1", "dim=32,heads=2,norm_eps=1e-6",
                            "dim=32,heads=2,residual_scale=0.5", "dim=32,heads=2,head_dim=32"}) {
    const ModelConfig c = *ParseCustomConfig(model);
    absl::Status s = ExportLlama2c(path, c, std::vector<float>(c.NumParams()));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << model;
    EXPECT_NE(s.message().find("llama2.c format cannot hold"), std::string::npos) << s;
  }
  const ModelConfig c = *ParseCustomConfig("dim=32,heads=2");
  EXPECT_TRUE(ExportLlama2c(path, c, std::vector<float>(c.NumParams())).ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace anerd::training
