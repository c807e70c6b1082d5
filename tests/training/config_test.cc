// ModelConfig's architecture fields (issue 19 item 4): parsing, printing, validation, the
// architecture comparison used by --init, and that default configs render as before.
#include "server/training/config.h"

#include <string>

#include "gtest/gtest.h"

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

}  // namespace
}  // namespace anerd::training
