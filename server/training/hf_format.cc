#include "server/training/hf_format.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/training/file_io.h"
#include "server/training/model.h"

namespace anerd::training {
namespace {

using Json = nlohmann::json;

constexpr int kMaxSize = 1 << 20;

absl::Status BadField(absl::string_view file, absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("config.json ", file, ": ", field, ": ", why));
}

// An integer field in [lo, kMaxSize]; `fallback` when absent (or required when fallback < lo).
absl::StatusOr<int> IntField(const Json& j, const char* key, int fallback, int lo,
                             absl::string_view file) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback < lo) return BadField(file, key, "missing");
    return fallback;
  }
  if (!it->is_number_integer()) return BadField(file, key, "not an integer");
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > kMaxSize) {
    return BadField(file, key, absl::StrCat(v, " is outside [", lo, ", 2^20]"));
  }
  return static_cast<int>(v);
}

absl::StatusOr<double> NumberField(const Json& j, const char* key, double fallback, double lo,
                                   double hi, absl::string_view file) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) return BadField(file, key, "not a number");
  const double v = it->get<double>();
  if (!(v > lo && v <= hi)) {
    return BadField(file, key, absl::StrCat(v, " is outside (", lo, ", ", hi, "]"));
  }
  return v;
}

// A token id: absent/null → -1; an integer; a list keeps its first entry.
absl::StatusOr<int> TokenField(const Json& j, const char* key, int vocab, absl::string_view file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return -1;
  const Json* v = &*it;
  if (v->is_array()) {
    if (v->empty()) return -1;
    v = &(*v)[0];
  }
  if (!v->is_number_integer()) return BadField(file, key, "not an integer id");
  const int64_t id = v->get<int64_t>();
  if (id < 0 || id >= vocab) {
    return BadField(file, key, absl::StrCat(id, " is not a token id below vocab_size ", vocab));
  }
  return static_cast<int>(id);
}

absl::StatusOr<bool> IsQwen3(const Json& j, absl::string_view file) {
  std::string arch;
  const auto a = j.find("architectures");
  if (a != j.end() && a->is_array() && !a->empty() && (*a)[0].is_string()) {
    arch = (*a)[0].get<std::string>();
  } else if (const auto t = j.find("model_type"); t != j.end() && t->is_string()) {
    arch = t->get<std::string>() == "qwen3"   ? "Qwen3ForCausalLM"
           : t->get<std::string>() == "llama" ? "LlamaForCausalLM"
                                              : t->get<std::string>();
  } else {
    return BadField(file, "architectures", "missing (and no model_type)");
  }
  if (arch == "LlamaForCausalLM") return false;
  if (arch == "Qwen3ForCausalLM") return true;
  return BadField(
      file, "architectures",
      absl::StrCat("'", arch, "' is not supported (LlamaForCausalLM, Qwen3ForCausalLM)"));
}

// Fields whose non-default values change the computation in ways anerd does not implement.
absl::Status CheckUnsupported(const Json& j, absl::string_view file) {
  if (const auto a = j.find("hidden_act"); a != j.end() && *a != "silu") {
    return BadField(file, "hidden_act", "only silu is supported");
  }
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    if (const auto b = j.find(bias); b != j.end() && *b != false) {
      return BadField(file, bias, "biases are not supported");
    }
  }
  if (const auto r = j.find("rope_scaling"); r != j.end() && !r->is_null()) {
    return BadField(file, "rope_scaling", "RoPE scaling is not supported");
  }
  return absl::OkStatus();
}

// Rows of `rows`-row tensors grouped in heads of `hd` rows (`len` floats each): the transformers
// rotate-half pairing (i, i + hd/2) ↔ the interleaved pairing (2i, 2i+1).
void PermuteHeads(const float* src, float* dst, int64_t rows, int64_t len, int hd,
                  bool to_interleaved) {
  for (int64_t base = 0; base < rows; base += hd) {
    for (int i = 0; i < hd / 2; ++i) {
      for (int r = 0; r < 2; ++r) {
        const int64_t inter = base + 2 * i + r, half = base + r * (hd / 2) + i;
        const int64_t from = to_interleaved ? half : inter, to = to_interleaved ? inter : half;
        std::copy(src + from * len, src + from * len + len, dst + to * len);
      }
    }
  }
}

struct HfTensor {
  std::string hf, group;
  std::vector<int64_t> shape;
  bool rope_rows = false;  // rows pair up for RoPE (q/k projections and norms)
};

// The tensors of `c` in file order, shared by import and export.
std::vector<HfTensor> HfTensors(const ModelConfig& c) {
  const int64_t d = c.dim, h = c.hidden, qd = c.q_dim(), kvd = c.kv_dim(), hd = c.head_dim;
  std::vector<HfTensor> t = {{"model.embed_tokens.weight", "embed", {c.vocab, d}}};
  for (int l = 0; l < c.layers; ++l) {
    const std::string hf = absl::StrCat("model.layers.", l, "."),
                      g = absl::StrCat("layers.", l, ".");
    t.push_back({hf + "self_attn.q_proj.weight", g + "wq", {qd, d}, true});
    t.push_back({hf + "self_attn.k_proj.weight", g + "wk", {kvd, d}, true});
    t.push_back({hf + "self_attn.v_proj.weight", g + "wv", {kvd, d}});
    t.push_back({hf + "self_attn.o_proj.weight", g + "wo", {d, qd}});
    if (c.qk_norm) {
      t.push_back({hf + "self_attn.q_norm.weight", g + "q_norm", {hd}, true});
      t.push_back({hf + "self_attn.k_norm.weight", g + "k_norm", {hd}, true});
    }
    t.push_back({hf + "mlp.gate_proj.weight", g + "w1", {h, d}});
    t.push_back({hf + "mlp.up_proj.weight", g + "w3", {h, d}});
    t.push_back({hf + "mlp.down_proj.weight", g + "w2", {d, h}});
    t.push_back({hf + "input_layernorm.weight", g + "rms_att", {d}});
    t.push_back({hf + "post_attention_layernorm.weight", g + "rms_ffn", {d}});
  }
  t.push_back({"model.norm.weight", "rms_final", {d}});
  if (!c.tied_embeddings) t.push_back({"lm_head.weight", "lm_head", {c.vocab, d}});
  return t;
}

// The layout's groups by name, checked to hold every tensor of `tensors` with its size.
absl::StatusOr<std::map<std::string, const ParamGroup*>> GroupsFor(
    const ParamLayout& layout, const std::vector<HfTensor>& tensors) {
  std::map<std::string, const ParamGroup*> out;
  for (const ParamGroup& g : layout.groups()) out[g.name] = &g;
  for (const HfTensor& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    const auto it = out.find(t.group);
    if (it == out.end() || it->second->size != n) {
      return absl::UnimplementedError(
          absl::StrCat("the parameter layout has no ", t.group, " of ", n, " elements"));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json, absl::string_view file) {
  const Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return BadField(file, "file", "not a JSON object");
  ANERD_ASSIGN_OR_RETURN(const bool qwen3, IsQwen3(j, file));
  ANERD_RETURN_IF_ERROR(CheckUnsupported(j, file));
  ModelConfig c;
  c.name = qwen3 ? "hf-qwen3" : "hf-llama";
  ANERD_ASSIGN_OR_RETURN(c.dim, IntField(j, "hidden_size", 0, 1, file));
  ANERD_ASSIGN_OR_RETURN(c.hidden, IntField(j, "intermediate_size", 0, 1, file));
  ANERD_ASSIGN_OR_RETURN(c.layers, IntField(j, "num_hidden_layers", 0, 1, file));
  ANERD_ASSIGN_OR_RETURN(c.heads, IntField(j, "num_attention_heads", 0, 1, file));
  ANERD_ASSIGN_OR_RETURN(c.kv_heads, IntField(j, "num_key_value_heads", c.heads, 1, file));
  if (c.heads % c.kv_heads != 0) {
    return BadField(file, "num_key_value_heads",
                    absl::StrCat(c.kv_heads, " does not divide num_attention_heads ", c.heads));
  }
  const bool has_head_dim = j.contains("head_dim") && !j["head_dim"].is_null();
  if (!has_head_dim && c.dim % c.heads != 0) {
    return BadField(file, "head_dim", "missing, and hidden_size is not divisible by the heads");
  }
  ANERD_ASSIGN_OR_RETURN(c.head_dim, IntField(j, "head_dim", c.dim / c.heads, 1, file));
  if (c.head_dim % 2 != 0) return BadField(file, "head_dim", "must be even (RoPE pairs)");
  ANERD_ASSIGN_OR_RETURN(c.vocab, IntField(j, "vocab_size", 0, 1, file));
  ANERD_ASSIGN_OR_RETURN(const int positions,
                         IntField(j, "max_position_embeddings", kHfDefaultSeq, 2, file));
  c.seq = std::min(positions, kHfDefaultSeq);
  ANERD_ASSIGN_OR_RETURN(c.rope_theta, NumberField(j, "rope_theta", 10000.0, 0, 1e12, file));
  ANERD_ASSIGN_OR_RETURN(c.norm_eps, NumberField(j, "rms_norm_eps", 1e-6, 0, 0.1, file));
  const auto tie = j.find("tie_word_embeddings");
  if (tie != j.end() && !tie->is_boolean()) {
    return BadField(file, "tie_word_embeddings", "not a boolean");
  }
  c.tied_embeddings = tie != j.end() && tie->get<bool>();
  ANERD_ASSIGN_OR_RETURN(c.bos_id, TokenField(j, "bos_token_id", c.vocab, file));
  ANERD_ASSIGN_OR_RETURN(c.eos_id, TokenField(j, "eos_token_id", c.vocab, file));
  c.qk_norm = qwen3;
  c.rope_style = ModelConfig::RopeStyle::kInterleaved;  // the import permutes (file comment)
  if (absl::Status s = ValidateConfig(c); !s.ok()) return BadField(file, "model", s.message());
  if (absl::StatusOr<int64_t> n = CheckedNumParams(c); !n.ok()) {
    return BadField(file, "model", n.status().message());
  }
  return c;
}

absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& dir) {
  const std::string path = dir + "/config.json";
  InFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path, "config.json"));
  if (f.size() > kMaxHfConfigBytes) return BadField(path, "file", "larger than 1 MiB");
  std::string text(f.size(), '\0');
  ANERD_RETURN_IF_ERROR(f.Read(0, text.data(), f.size()));
  return ParseHfConfig(text, path);
}

bool IsHfCheckpointPath(absl::string_view path) {
  return absl::EndsWith(path, "/config.json") || path == "config.json" ||
         absl::EndsWith(path, ".safetensors") || absl::EndsWith(path, ".safetensors.index.json");
}

std::string HfCheckpointDir(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? "." : std::string(path.substr(0, slash));
}

absl::StatusOr<LoadedModel> LoadHfCheckpoint(const std::string& dir) {
  LoadedModel m;
  ANERD_ASSIGN_OR_RETURN(m.config, ReadHfConfig(dir));
  const ModelConfig& c = m.config;
  ANERD_ASSIGN_OR_RETURN(SafetensorsSet set, SafetensorsSet::Open(dir));
  const std::vector<HfTensor> tensors = HfTensors(c);
  std::set<std::string> expected;
  for (const HfTensor& t : tensors) expected.insert(t.hf);
  for (const std::string& name : set.Names()) {
    const bool ignorable = absl::EndsWith(name, ".rotary_emb.inv_freq") ||
                           (c.tied_embeddings && name == "lm_head.weight");
    if (expected.count(name) == 0 && !ignorable) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", dir, ": unexpected tensor '", name, "' for ", c.name));
    }
  }
  const ParamLayout layout(c);
  ANERD_ASSIGN_OR_RETURN(const auto groups, GroupsFor(layout, tensors));
  m.params.resize(layout.total());
  std::vector<float> tmp;
  for (const HfTensor& t : tensors) {
    if (!set.Has(t.hf)) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", dir, ": missing tensor '", t.hf, "'"));
    }
    float* dst = m.params.data() + groups.at(t.group)->offset;
    if (!t.rope_rows) {
      ANERD_RETURN_IF_ERROR(set.ReadF32(t.hf, t.shape, dst));
      continue;
    }
    const int64_t n = groups.at(t.group)->size;
    tmp.resize(n);
    ANERD_RETURN_IF_ERROR(set.ReadF32(t.hf, t.shape, tmp.data()));
    PermuteHeads(tmp.data(), dst, t.shape[0], n / t.shape[0], c.head_dim, /*to_interleaved=*/true);
  }
  return m;
}

absl::StatusOr<std::string> HfConfigJson(const ModelConfig& c) {
  if (c.residual_scale != 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: residual_scale ", c.residual_scale,
                     " cannot be expressed in a Hugging Face Llama/Qwen3 config (it must be 1)"));
  }
  using Ordered = nlohmann::ordered_json;
  Ordered j;
  j["architectures"] = Ordered::array({c.qk_norm ? "Qwen3ForCausalLM" : "LlamaForCausalLM"});
  j["model_type"] = c.qk_norm ? "qwen3" : "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden;
  j["num_hidden_layers"] = c.layers;
  j["num_attention_heads"] = c.heads;
  j["num_key_value_heads"] = c.kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab;
  j["max_position_embeddings"] = c.seq;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["rms_norm_eps"] = c.norm_eps;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["bos_token_id"] = c.bos_id >= 0 ? Ordered(c.bos_id) : Ordered(nullptr);
  j["eos_token_id"] = c.eos_id >= 0 ? Ordered(c.eos_id) : Ordered(nullptr);
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  if (!c.qk_norm) j["mlp_bias"] = false;
  if (c.qk_norm) {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = c.layers;
  }
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

absl::Status ExportHf(const std::string& dir, const ModelConfig& c,
                      const std::vector<float>& params, StDtype dtype) {
  const ParamLayout layout(c);
  if (static_cast<int64_t>(params.size()) != layout.total()) {
    return absl::InvalidArgumentError("ExportHf: parameter count does not match the config");
  }
  ANERD_ASSIGN_OR_RETURN(const std::string config, HfConfigJson(c));
  const std::vector<HfTensor> tensors = HfTensors(c);
  ANERD_ASSIGN_OR_RETURN(const auto groups, GroupsFor(layout, tensors));
  const bool permute = c.rope_style == ModelConfig::RopeStyle::kInterleaved;
  std::vector<std::vector<float>> permuted;  // holds the permuted copies until written
  std::vector<StWriteTensor> out;
  for (const HfTensor& t : tensors) {
    const ParamGroup* g = groups.at(t.group);
    const float* src = params.data() + g->offset;
    if (t.rope_rows && permute) {
      permuted.emplace_back(g->size);
      PermuteHeads(src, permuted.back().data(), t.shape[0], g->size / t.shape[0], c.head_dim,
                   /*to_interleaved=*/false);
      src = permuted.back().data();
    }
    out.push_back({t.hf, dtype, t.shape, src});
  }
  ANERD_RETURN_IF_ERROR(WriteSafetensors(dir + "/model.safetensors", out, {{"format", "pt"}}));
  AtomicOutFile f;
  ANERD_RETURN_IF_ERROR(f.Open(dir + "/config.json"));
  ANERD_RETURN_IF_ERROR(f.Write(config.data(), static_cast<int64_t>(config.size())));
  return f.Commit();
}

}  // namespace anerd::training
