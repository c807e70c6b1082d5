#include "server/training/config.h"

#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace anerd::training {
namespace {

constexpr int kMaxSize = 1 << 20;

ModelConfig Make(const char* name, int dim, int hidden, int layers, int heads, int kv_heads,
                 int head_dim, int vocab, int seq) {
  ModelConfig c;
  c.name = name;
  c.dim = dim;
  c.hidden = hidden;
  c.layers = layers;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.vocab = vocab;
  c.seq = seq;
  return c;
}

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

int* ConfigField(ModelConfig* c, absl::string_view key) {
  if (key == "dim") return &c->dim;
  if (key == "hidden") return &c->hidden;
  if (key == "layers") return &c->layers;
  if (key == "heads") return &c->heads;
  if (key == "kv_heads") return &c->kv_heads;
  if (key == "head_dim") return &c->head_dim;
  if (key == "vocab") return &c->vocab;
  if (key == "seq") return &c->seq;
  return nullptr;
}

absl::Status CheckPositive(absl::string_view field, double v) {
  if (!(v > 0) || !std::isfinite(v)) return Invalid(field, "must be a positive finite number");
  return absl::OkStatus();
}

absl::Status CheckUnit(absl::string_view field, double v) {
  if (!(v >= 0 && v < 1)) return Invalid(field, "must be in [0, 1)");
  return absl::OkStatus();
}

}  // namespace

int64_t ModelConfig::LayerParams() const {
  const int64_t d = dim, h = hidden;
  return 2 * q_dim() * d + 2 * kv_dim() * d + 3 * h * d + 2 * d;
}

int64_t ModelConfig::NumParams() const {
  return int64_t{vocab} * dim + layers * LayerParams() + dim;
}

ModelShape ModelConfig::Shape() const {
  return ModelShape{dim, hidden, heads, kv_heads, head_dim, seq, layers, vocab};
}

absl::StatusOr<ModelConfig> ModelConfigByName(absl::string_view name) {
  if (name == "tiny") return Make("tiny", 64, 192, 2, 4, 4, 16, 256, 64);
  if (name == "stories15m") return Make("stories15m", 288, 768, 6, 6, 6, 48, 32000, 256);
  if (name == "stories110m") return Make("stories110m", 768, 2048, 12, 12, 12, 64, 32000, 256);
  if (name == "qwen3_0_6b") return Make("qwen3_0_6b", 1024, 3072, 28, 16, 8, 128, 151936, 256);
  return absl::NotFoundError(absl::StrCat("unknown model config '", name,
                                          "' (known: tiny, stories15m, stories110m, qwen3_0_6b)"));
}

absl::StatusOr<ModelConfig> ParseCustomConfig(absl::string_view kv) {
  ModelConfig c = Make("custom", 64, 192, 2, 4, 0, 0, 256, 64);
  for (absl::string_view item : absl::StrSplit(kv, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> p =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    const absl::string_view key = absl::StripAsciiWhitespace(p.first);
    int* field = ConfigField(&c, key);
    if (field == nullptr) return Invalid(key, "unknown model config key");
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(p.second), field)) {
      return Invalid(key, absl::StrCat("not an integer: '", p.second, "'"));
    }
  }
  if (c.kv_heads == 0) c.kv_heads = c.heads;
  if (c.head_dim == 0 && c.heads > 0) c.head_dim = c.dim / c.heads;
  ANERD_RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

absl::Status ValidateConfig(const ModelConfig& c) {
  const std::pair<const char*, int> sizes[] = {
      {"dim", c.dim},           {"hidden", c.hidden},     {"layers", c.layers}, {"heads", c.heads},
      {"kv_heads", c.kv_heads}, {"head_dim", c.head_dim}, {"vocab", c.vocab},   {"seq", c.seq}};
  for (const auto& [field, v] : sizes) {
    if (v <= 0 || v > kMaxSize)
      return Invalid(field, absl::StrCat("must be in [1, 2^20], got ", v));
  }
  if (c.heads % c.kv_heads != 0) {
    return Invalid("heads", absl::StrCat("heads (", c.heads, ") must be divisible by kv_heads (",
                                         c.kv_heads, ")"));
  }
  if (c.head_dim % 2 != 0) return Invalid("head_dim", "must be even (interleaved RoPE pairs)");
  if (c.seq < 2) return Invalid("seq", "must be at least 2");
  if (c.q_dim() > kMaxSize || c.kv_dim() > kMaxSize) {
    return Invalid("head_dim", "heads * head_dim must be <= 2^20");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CheckedNumParams(const ModelConfig& c) {
  ANERD_RETURN_IF_ERROR(ValidateConfig(c));
  const double d = c.dim,
               layer = 2.0 * c.q_dim() * d + 2.0 * c.kv_dim() * d + 3.0 * c.hidden * d + 2 * d;
  const double n = static_cast<double>(c.vocab) * d + c.layers * layer + d;
  if (n > static_cast<double>(kMaxParams)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("model: %.3g parameters, more than anerd's limit of 2^40", n));
  }
  return c.NumParams();  // every term is below 2^40 here
}

std::string ConfigToString(const ModelConfig& c) {
  return absl::StrCat("dim=", c.dim, ",hidden=", c.hidden, ",layers=", c.layers, ",heads=", c.heads,
                      ",kv_heads=", c.kv_heads, ",head_dim=", c.head_dim, ",vocab=", c.vocab,
                      ",seq=", c.seq);
}

absl::Status ValidateSpec(const TrainSpec& s) {
  ANERD_RETURN_IF_ERROR(ValidateConfig(s.model));
  if (s.data_path.empty() && s.data_artifact.empty()) return Invalid("data_path", "required");
  if (s.data_format != "" && s.data_format != "tokens" && s.data_format != "text") {
    return Invalid("data_format", "must be 'tokens', 'text' or empty");
  }
  if (s.steps <= 0) return Invalid("steps", "must be positive");
  ANERD_RETURN_IF_ERROR(CheckPositive("lr", s.lr));
  if (!(s.min_lr >= 0 && s.min_lr <= s.lr)) return Invalid("min_lr", "must be in [0, lr]");
  if (s.schedule != "cosine" && s.schedule != "constant") {
    return Invalid("schedule", "must be 'cosine' or 'constant'");
  }
  if (s.warmup < 0) return Invalid("warmup", "must be >= 0");
  if (s.accum < 1 || s.accum > 65536) return Invalid("accum", "must be in [1, 65536]");
  if (!(s.clip >= 0) || !std::isfinite(s.clip)) return Invalid("clip", "must be >= 0 (0 = off)");
  if (!(s.weight_decay >= 0 && s.weight_decay < 1))
    return Invalid("weight_decay", "must be in [0, 1)");
  ANERD_RETURN_IF_ERROR(CheckUnit("beta1", s.beta1));
  ANERD_RETURN_IF_ERROR(CheckUnit("beta2", s.beta2));
  ANERD_RETURN_IF_ERROR(CheckPositive("eps", s.eps));
  if (s.loss_scale != "dynamic") {
    double v = 0;
    if (!absl::SimpleAtod(s.loss_scale, &v) || !(v > 0) || !std::isfinite(v)) {
      return Invalid("loss_scale", "must be 'dynamic' or a positive number");
    }
  }
  if (s.numerics != "ane" && s.numerics != "fp32")
    return Invalid("numerics", "must be 'ane' or 'fp32'");
  if (s.sampling != "random" && s.sampling != "sequential") {
    return Invalid("sampling", "must be 'random' or 'sequential'");
  }
  if (s.residual_scale != "1" && s.residual_scale != "deepnet") {
    return Invalid("residual_scale", "must be '1' or 'deepnet'");
  }
  if (s.checkpoint_every < 0) return Invalid("checkpoint_every", "must be >= 0");
  return absl::OkStatus();
}

double ResidualAlpha(const TrainSpec& spec) {
  if (spec.residual_scale == "deepnet") return 1.0 / std::sqrt(2.0 * spec.model.layers);
  return 1.0;
}

namespace {

// The artifact and held-out fields, only when set (specs without them read as before).
std::string ArtifactSpecText(const TrainSpec& s) {
  std::string out;
  auto text = [&](const char* key, const std::string& v) {
    if (!v.empty()) absl::StrAppend(&out, key, "=", v, "\n");
  };
  text("data_artifact", s.data_artifact);
  text("init_artifact", s.init_artifact);
  text("val_artifact", s.val_artifact);
  if (s.val_fraction != 0) {
    absl::StrAppend(&out, "val_fraction=", absl::StrFormat("%.17g", s.val_fraction), "\n");
  }
  text("val_data_path", s.val_data_path);
  text("val_data_format", s.val_data_format);
  if (s.train_tokens != 0) absl::StrAppend(&out, "train_tokens=", s.train_tokens, "\n");
  if (s.val_end != 0) {
    absl::StrAppend(&out, "val_begin=", s.val_begin, "\nval_end=", s.val_end, "\n");
  }
  return out;
}

}  // namespace

std::string SpecToText(const TrainSpec& s) {
  return absl::StrCat(
      "name=", s.model.name, "\nmodel=", ConfigToString(s.model),
      "\ninit_model_path=", s.init_model_path, "\ndata_path=", s.data_path,
      "\ndata_format=", s.data_format, "\nsteps=", s.steps, "\nlr=", absl::StrFormat("%.17g", s.lr),
      "\nmin_lr=", absl::StrFormat("%.17g", s.min_lr), "\nschedule=", s.schedule,
      "\nwarmup=", s.warmup, "\naccum=", s.accum, "\nclip=", absl::StrFormat("%.17g", s.clip),
      "\nweight_decay=", absl::StrFormat("%.17g", s.weight_decay),
      "\nbeta1=", absl::StrFormat("%.17g", s.beta1), "\nbeta2=", absl::StrFormat("%.17g", s.beta2),
      "\neps=", absl::StrFormat("%.17g", s.eps), "\nloss_scale=", s.loss_scale,
      "\nnumerics=", s.numerics, "\nsampling=", s.sampling, "\nseed=", s.seed,
      "\nresidual_scale=", s.residual_scale, "\ncompact_vocab=", s.compact_vocab ? 1 : 0,
      "\ncheckpoint_every=", s.checkpoint_every, "\n", ArtifactSpecText(s));
}

namespace {

absl::Status SetSpecField(TrainSpec* s, absl::string_view key, absl::string_view v) {
  bool ok = true;
  if (key == "name") {
    s->model.name = std::string(v);
  } else if (key == "model") {
    ANERD_ASSIGN_OR_RETURN(ModelConfig c, ParseCustomConfig(v));
    const std::string name = s->model.name;
    s->model = c;
    if (!name.empty()) s->model.name = name;
  } else if (key == "init_model_path") {
    s->init_model_path = std::string(v);
  } else if (key == "data_path") {
    s->data_path = std::string(v);
  } else if (key == "data_format") {
    s->data_format = std::string(v);
  } else if (key == "steps") {
    ok = absl::SimpleAtoi(v, &s->steps);
  } else if (key == "lr") {
    ok = absl::SimpleAtod(v, &s->lr);
  } else if (key == "min_lr") {
    ok = absl::SimpleAtod(v, &s->min_lr);
  } else if (key == "schedule") {
    s->schedule = std::string(v);
  } else if (key == "warmup") {
    ok = absl::SimpleAtoi(v, &s->warmup);
  } else if (key == "accum") {
    ok = absl::SimpleAtoi(v, &s->accum);
  } else if (key == "clip") {
    ok = absl::SimpleAtod(v, &s->clip);
  } else if (key == "weight_decay") {
    ok = absl::SimpleAtod(v, &s->weight_decay);
  } else if (key == "beta1") {
    ok = absl::SimpleAtod(v, &s->beta1);
  } else if (key == "beta2") {
    ok = absl::SimpleAtod(v, &s->beta2);
  } else if (key == "eps") {
    ok = absl::SimpleAtod(v, &s->eps);
  } else if (key == "loss_scale") {
    s->loss_scale = std::string(v);
  } else if (key == "numerics") {
    s->numerics = std::string(v);
  } else if (key == "sampling") {
    s->sampling = std::string(v);
  } else if (key == "seed") {
    ok = absl::SimpleAtoi(v, &s->seed);
  } else if (key == "residual_scale") {
    s->residual_scale = std::string(v);
  } else if (key == "compact_vocab") {
    s->compact_vocab = v == "1";
  } else if (key == "checkpoint_every") {
    ok = absl::SimpleAtoi(v, &s->checkpoint_every);
  } else if (key == "data_artifact") {
    s->data_artifact = std::string(v);
  } else if (key == "init_artifact") {
    s->init_artifact = std::string(v);
  } else if (key == "val_artifact") {
    s->val_artifact = std::string(v);
  } else if (key == "val_fraction") {
    ok = absl::SimpleAtod(v, &s->val_fraction);
  } else if (key == "val_data_path") {
    s->val_data_path = std::string(v);
  } else if (key == "val_data_format") {
    s->val_data_format = std::string(v);
  } else if (key == "train_tokens") {
    ok = absl::SimpleAtoi(v, &s->train_tokens);
  } else if (key == "val_begin") {
    ok = absl::SimpleAtoi(v, &s->val_begin);
  } else if (key == "val_end") {
    ok = absl::SimpleAtoi(v, &s->val_end);
  } else {
    return Invalid(key, "unknown spec key");
  }
  if (!ok) return Invalid(key, absl::StrCat("bad value '", v, "'"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainSpec> SpecFromText(absl::string_view text) {
  TrainSpec s;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    ANERD_RETURN_IF_ERROR(SetSpecField(&s, p.first, p.second));
  }
  return s;
}

}  // namespace anerd::training
