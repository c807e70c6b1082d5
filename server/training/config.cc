#include "server/training/config.h"

#include <cmath>
#include <vector>

#include "absl/strings/escaping.h"
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

// The shortest %g rendering that parses back to exactly `v`.
// Whole numbers print without an exponent (rope_theta=1000000).
std::string ExactDouble(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrFormat("%.0f", v);
  }
  for (int digits = 6; digits < 17; ++digits) {
    std::string out = absl::StrFormat("%.*g", digits, v);
    double back = 0;
    if (absl::SimpleAtod(out, &back) && back == v) return out;
  }
  return absl::StrFormat("%.17g", v);
}

bool ParseBool(absl::string_view v, bool* out) {
  if (v == "0" || v == "false") {
    *out = false;
  } else if (v == "1" || v == "true") {
    *out = true;
  } else {
    return false;
  }
  return true;
}

// The architecture keys (everything but the sizes). NOT_FOUND for an unknown key.
absl::Status SetArchitectureField(ModelConfig* c, absl::string_view key, absl::string_view v) {
  bool ok = true;
  if (key == "rope_style") {
    if (v == "interleaved") {
      c->rope_style = ModelConfig::RopeStyle::kInterleaved;
    } else if (v == "half") {
      c->rope_style = ModelConfig::RopeStyle::kHalf;
    } else {
      return Invalid(key, absl::StrCat("must be 'interleaved' or 'half', got '", v, "'"));
    }
  } else if (key == "rope_theta") {
    ok = absl::SimpleAtod(v, &c->rope_theta);
  } else if (key == "qk_norm") {
    ok = ParseBool(v, &c->qk_norm);
  } else if (key == "norm_eps") {
    ok = absl::SimpleAtod(v, &c->norm_eps);
  } else if (key == "residual_scale") {
    ok = absl::SimpleAtod(v, &c->residual_scale);
  } else if (key == "tied") {
    ok = ParseBool(v, &c->tied_embeddings);
  } else if (key == "bos_id") {
    ok = absl::SimpleAtoi(v, &c->bos_id);
  } else if (key == "eos_id") {
    ok = absl::SimpleAtoi(v, &c->eos_id);
  } else {
    return absl::NotFoundError(key);
  }
  if (!ok) return Invalid(key, absl::StrCat("bad value '", v, "'"));
  return absl::OkStatus();
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
  return 2 * q_dim() * d + 2 * kv_dim() * d + 3 * h * d + 2 * d + (qk_norm ? 2 * head_dim : 0);
}

int64_t ModelConfig::NumParams() const {
  const int64_t embeddings = (tied_embeddings ? 1 : 2) * int64_t{vocab} * dim;
  return embeddings + layers * LayerParams() + dim;
}

absl::string_view RopeStyleName(ModelConfig::RopeStyle style) {
  return style == ModelConfig::RopeStyle::kHalf ? "half" : "interleaved";
}

ModelShape ModelConfig::Shape() const {
  ModelShape shape{dim, hidden, heads, kv_heads, head_dim, seq, layers, vocab};
  shape.rope_half = rope_style == RopeStyle::kHalf;
  shape.rope_theta = rope_theta;
  shape.qk_norm = qk_norm;
  shape.norm_eps = norm_eps;
  return shape;
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
    const absl::string_view value = absl::StripAsciiWhitespace(p.second);
    int* field = ConfigField(&c, key);
    if (field == nullptr) {
      absl::Status s = SetArchitectureField(&c, key, value);
      if (absl::IsNotFound(s)) return Invalid(key, "unknown model config key");
      ANERD_RETURN_IF_ERROR(s);
      continue;
    }
    if (!absl::SimpleAtoi(value, field)) {
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
  if (c.head_dim % 2 != 0) return Invalid("head_dim", "must be even (RoPE rotates pairs)");
  if (c.seq < 2) return Invalid("seq", "must be at least 2");
  if (c.q_dim() > kMaxSize || c.kv_dim() > kMaxSize) {
    return Invalid("head_dim", "heads * head_dim must be <= 2^20");
  }
  if (!(c.rope_theta > 0 && c.rope_theta <= 1e12)) {
    return Invalid("rope_theta", absl::StrCat("must be in (0, 1e12], got ", c.rope_theta));
  }
  if (!(c.norm_eps > 0 && c.norm_eps <= 0.1)) {
    return Invalid("norm_eps", absl::StrCat("must be in (0, 0.1], got ", c.norm_eps));
  }
  if (!(c.residual_scale > 0 && c.residual_scale <= 1000)) {
    return Invalid("residual_scale", absl::StrCat("must be in (0, 1000], got ", c.residual_scale));
  }
  if (c.qk_norm && c.dim < c.head_dim) {
    return Invalid("qk_norm", absl::StrCat("needs dim (", c.dim, ") >= head_dim (", c.head_dim,
                                           "): the norm weights are staged in dim channels"));
  }
  for (const auto& [field, id] : {std::pair<const char*, int>{"bos_id", c.bos_id},
                                  std::pair<const char*, int>{"eos_id", c.eos_id}}) {
    if (id < -1 || id >= c.vocab) {
      return Invalid(field,
                     absl::StrCat("must be -1 (none) or in [0, vocab = ", c.vocab, "), got ", id));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CheckedNumParams(const ModelConfig& c) {
  ANERD_RETURN_IF_ERROR(ValidateConfig(c));
  const double d = c.dim, layer = 2.0 * c.q_dim() * d + 2.0 * c.kv_dim() * d + 3.0 * c.hidden * d +
                                  2 * d + (c.qk_norm ? 2.0 * c.head_dim : 0.0);
  const double n =
      (c.tied_embeddings ? 1.0 : 2.0) * static_cast<double>(c.vocab) * d + c.layers * layer + d;
  if (n > static_cast<double>(kMaxParams)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("model: %.3g parameters, more than anerd's limit of 2^40", n));
  }
  return c.NumParams();  // every term is below 2^40 here
}

std::string ConfigToString(const ModelConfig& c) {
  const ModelConfig def;
  std::string out = absl::StrCat("dim=", c.dim, ",hidden=", c.hidden, ",layers=", c.layers,
                                 ",heads=", c.heads, ",kv_heads=", c.kv_heads,
                                 ",head_dim=", c.head_dim, ",vocab=", c.vocab, ",seq=", c.seq);
  if (c.rope_style != def.rope_style)
    absl::StrAppend(&out, ",rope_style=", RopeStyleName(c.rope_style));
  if (c.rope_theta != def.rope_theta)
    absl::StrAppend(&out, ",rope_theta=", ExactDouble(c.rope_theta));
  if (c.qk_norm != def.qk_norm) absl::StrAppend(&out, ",qk_norm=", c.qk_norm ? 1 : 0);
  if (c.norm_eps != def.norm_eps) absl::StrAppend(&out, ",norm_eps=", ExactDouble(c.norm_eps));
  if (c.residual_scale != def.residual_scale) {
    absl::StrAppend(&out, ",residual_scale=", ExactDouble(c.residual_scale));
  }
  if (c.tied_embeddings != def.tied_embeddings) {
    absl::StrAppend(&out, ",tied=", c.tied_embeddings ? 1 : 0);
  }
  if (c.bos_id != def.bos_id) absl::StrAppend(&out, ",bos_id=", c.bos_id);
  if (c.eos_id != def.eos_id) absl::StrAppend(&out, ",eos_id=", c.eos_id);
  return out;
}

absl::Status CheckSameArchitecture(const ModelConfig& a, const ModelConfig& b,
                                   absl::string_view what, absl::string_view other) {
  auto differs = [&](absl::string_view field, const std::string& x, const std::string& y) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", field, " ", x, " but ", other, " has ", y));
  };
  const std::pair<const char*, std::pair<int, int>> sizes[] = {
      {"dim", {a.dim, b.dim}},
      {"hidden", {a.hidden, b.hidden}},
      {"layers", {a.layers, b.layers}},
      {"heads", {a.heads, b.heads}},
      {"kv_heads", {a.kv_heads, b.kv_heads}},
      {"head_dim", {a.head_dim, b.head_dim}},
      {"vocab", {a.vocab, b.vocab}},
      {"qk_norm", {a.qk_norm, b.qk_norm}},
      {"tied", {a.tied_embeddings, b.tied_embeddings}}};
  for (const auto& [field, v] : sizes) {
    if (v.first != v.second) return differs(field, absl::StrCat(v.first), absl::StrCat(v.second));
  }
  if (a.rope_style != b.rope_style) {
    return differs("rope_style", std::string(RopeStyleName(a.rope_style)),
                   std::string(RopeStyleName(b.rope_style)));
  }
  const std::pair<const char*, std::pair<double, double>> reals[] = {
      {"rope_theta", {a.rope_theta, b.rope_theta}},
      {"norm_eps", {a.norm_eps, b.norm_eps}},
      {"residual_scale", {a.residual_scale, b.residual_scale}}};
  for (const auto& [field, v] : reals) {
    if (v.first != v.second) {
      return differs(field, ExactDouble(v.first), ExactDouble(v.second));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status ValidateEvalFields(const TrainSpec& s) {
  if (s.eval_every < 0) return Invalid("eval_every", "must be >= 0 (0 = off)");
  if (s.eval_batches < 1 || s.eval_batches > kMaxEvalBatches) {
    return Invalid("eval_batches", absl::StrCat("must be in [1, ", kMaxEvalBatches, "]"));
  }
  if (s.eval_every > 0 && s.compact_vocab) {
    return Invalid("eval_every",
                   "cannot be combined with compact_vocab (held-out tokens may lie outside the "
                   "training data's vocabulary)");
  }
  if (s.sample_every < 0) return Invalid("sample_every", "must be >= 0 (0 = off)");
  if (s.sample_tokens < 1 || s.sample_tokens > kMaxSampleTokens) {
    return Invalid("sample_tokens", absl::StrCat("must be in [1, ", kMaxSampleTokens, "]"));
  }
  if (s.sample_prompt.size() > kMaxSamplePromptBytes) {
    return Invalid("sample_prompt", absl::StrCat("is ", s.sample_prompt.size(), " bytes (at most ",
                                                 kMaxSamplePromptBytes, ")"));
  }
  if (s.sample_every > 0 && s.sample_prompt.empty()) {
    return Invalid("sample_prompt", "required with sample_every");
  }
  return absl::OkStatus();
}

absl::Status ValidateDistributedFields(const TrainSpec& s) {
  if (s.ranks < 1 || s.ranks > kMaxRanks) {
    return Invalid("ranks", absl::StrCat("must be in [1, ", kMaxRanks, "]"));
  }
  if (s.reduce != "sum" && s.reduce != "ordered") {
    return Invalid("reduce", "must be 'sum' or 'ordered'");
  }
  if (s.digest_every < 0) return Invalid("digest_every", "must be >= 0 (0 = never)");
  if (s.max_restarts < 0 || s.max_restarts > kMaxRestarts) {
    return Invalid("max_restarts", absl::StrCat("must be in [0, ", kMaxRestarts, "]"));
  }
  if (s.hostfile.size() > 4096) return Invalid("hostfile", "path longer than 4096 bytes");
  if (s.ranks == 1 && !s.hostfile.empty()) return Invalid("hostfile", "needs ranks > 1");
  if (s.allreduce_bucket_kb < 0 || s.allreduce_bucket_kb > kMaxBucketKb) {
    return Invalid("allreduce_bucket_kb", absl::StrCat("must be in [0, ", kMaxBucketKb, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ResumeOnRanks(int ranks, TrainSpec* spec) {
  if (ranks == spec->ranks) return absl::OkStatus();
  const int64_t batch = int64_t{spec->accum} * spec->ranks;
  if (ranks < 1 || ranks > kMaxRanks || batch % ranks != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ranks: the checkpoint's steps take ", batch, " sequences (ranks=", spec->ranks,
        " x accum=", spec->accum, "), which ", ranks,
        " ranks cannot share evenly: resume with a number of ranks that divides ", batch));
  }
  TrainSpec adopted = *spec;
  adopted.accum = static_cast<int>(batch / ranks);
  adopted.ranks = ranks;
  if (ranks == 1) adopted.hostfile.clear();
  ANERD_RETURN_IF_ERROR(ValidateSpec(adopted));
  *spec = std::move(adopted);
  return absl::OkStatus();
}

absl::Status ValidateSpec(const TrainSpec& s) {
  ANERD_RETURN_IF_ERROR(ValidateConfig(s.model));
  if (s.data_path.empty() && s.data_artifact.empty()) return Invalid("data_path", "required");
  if (s.data_format != "" && s.data_format != "tokens" && s.data_format != "tokens32" &&
      s.data_format != "text") {
    return Invalid("data_format", "must be 'tokens', 'tokens32', 'text' or empty");
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
  if (s.residual_scale == "deepnet" && s.model.residual_scale != 1.0) {
    return Invalid("residual_scale",
                   "'deepnet' cannot be combined with a model config residual_scale other than 1");
  }
  if (s.checkpoint_every < 0) return Invalid("checkpoint_every", "must be >= 0");
  ANERD_RETURN_IF_ERROR(ValidateDistributedFields(s));
  return ValidateEvalFields(s);
}

double ResidualAlpha(const TrainSpec& spec) {
  if (spec.residual_scale == "deepnet") return 1.0 / std::sqrt(2.0 * spec.model.layers);
  return spec.model.residual_scale;
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

// The distributed fields, only for more than one rank (one-rank specs read as before).
std::string DistributedSpecText(const TrainSpec& s) {
  if (s.ranks == 1) return "";
  return absl::StrCat("ranks=", s.ranks, "\nreduce=", s.reduce, "\ndigest_every=", s.digest_every,
                      "\nhostfile=", s.hostfile, "\nmax_restarts=", s.max_restarts, "\n");
}

// The overlap fields (issue 24 item 2), only when not the defaults.
std::string OverlapSpecText(const TrainSpec& s) {
  std::string out;
  if (s.allreduce_bucket_kb != 0)
    absl::StrAppend(&out, "allreduce_bucket_kb=", s.allreduce_bucket_kb, "\n");
  if (!s.allreduce_overlap) absl::StrAppend(&out, "allreduce_overlap=0\n");
  return out;
}

// The evaluation fields, only when evaluation or sampling is on (the prompt C-escaped: it may
// hold newlines).
std::string EvalSpecText(const TrainSpec& s) {
  std::string out;
  if (s.eval_every != 0) {
    absl::StrAppend(&out, "eval_every=", s.eval_every, "\neval_batches=", s.eval_batches, "\n");
  }
  if (s.sample_every != 0) {
    absl::StrAppend(&out, "sample_every=", s.sample_every, "\nsample_tokens=", s.sample_tokens,
                    "\nsample_prompt=", absl::CEscape(s.sample_prompt), "\n");
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
      "\ncheckpoint_every=", s.checkpoint_every, "\n", ArtifactSpecText(s), EvalSpecText(s),
      DistributedSpecText(s), OverlapSpecText(s));
}

namespace {

absl::Status SetSpecField(TrainSpec* s, absl::string_view key, absl::string_view v) {
  bool ok = true;
  if (key == "name") {
    s->model.name = std::string(v);
  } else if (key == "model") {
    // A model name ("model=tiny", as hand-written specs for anerd-rank say) or a full config.
    absl::StatusOr<ModelConfig> named = ModelConfigByName(v);
    ANERD_ASSIGN_OR_RETURN(ModelConfig c, named.ok() ? named : ParseCustomConfig(v));
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
  } else if (key == "eval_every") {
    ok = absl::SimpleAtoi(v, &s->eval_every);
  } else if (key == "eval_batches") {
    ok = absl::SimpleAtoi(v, &s->eval_batches);
  } else if (key == "sample_every") {
    ok = absl::SimpleAtoi(v, &s->sample_every);
  } else if (key == "sample_tokens") {
    ok = absl::SimpleAtoi(v, &s->sample_tokens);
  } else if (key == "ranks") {
    ok = absl::SimpleAtoi(v, &s->ranks);
  } else if (key == "reduce") {
    s->reduce = std::string(v);
  } else if (key == "digest_every") {
    ok = absl::SimpleAtoi(v, &s->digest_every);
  } else if (key == "hostfile") {
    s->hostfile = std::string(v);
  } else if (key == "max_restarts") {
    ok = absl::SimpleAtoi(v, &s->max_restarts);
  } else if (key == "allreduce_bucket_kb") {
    ok = absl::SimpleAtoi(v, &s->allreduce_bucket_kb);
  } else if (key == "allreduce_overlap") {
    ok = absl::SimpleAtob(v, &s->allreduce_overlap);
  } else if (key == "sample_prompt") {
    ok = absl::CUnescape(v, &s->sample_prompt);
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
