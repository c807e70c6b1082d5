#include "server/training/model_io.h"

#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/training/file_io.h"
#include "server/training/hf_format.h"
#include "server/training/kernels.h"
#include "server/training/model.h"

namespace anerd::training {
namespace {

constexpr int32_t kSeedMagic = 0x424C5A54;
constexpr char kCkptMagic[8] = {'A', 'N', 'E', 'R', 'D', 'C', 'K', 'P'};
constexpr uint32_t kCkptVersion = 1;
constexpr int kMaxDimension = 1 << 20;

absl::Status Bad(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("model file ", path, ": ", why));
}

// Checks the raw header sizes of a model file; fills `c` (name "llama2c" / "seed_v4").
absl::Status CheckHeaderConfig(const std::string& path, ModelConfig* c) {
  const std::pair<const char*, int> fields[] = {
      {"dim", c->dim},       {"hidden_dim", c->hidden},   {"n_layers", c->layers},
      {"n_heads", c->heads}, {"n_kv_heads", c->kv_heads}, {"vocab_size", c->vocab},
      {"seq_len", c->seq},   {"head_dim", c->head_dim}};
  for (const auto& [name, v] : fields) {
    if (v <= 0 || v > kMaxDimension) {
      return Bad(path, absl::StrCat("header field ", name, " = ", v, " is out of range"));
    }
  }
  absl::Status s = ValidateConfig(*c);
  if (!s.ok()) return Bad(path, absl::StrCat("inconsistent header: ", s.message()));
  return absl::OkStatus();
}

// The parameter count of a header's config, refused (before any allocation) beyond kMaxParams.
absl::StatusOr<int64_t> CheckedParams(const std::string& path, const ModelConfig& c) {
  absl::StatusOr<int64_t> n = CheckedNumParams(c);
  if (!n.ok()) return Bad(path, n.status().message());
  return *n;
}

// The offset of the untied classifier (group "lm_head").
int64_t LmHeadOffset(const ParamLayout& layout) {
  for (const ParamGroup& g : layout.groups()) {
    if (g.name == "lm_head") return g.offset;
  }
  return layout.total();  // unreachable for an untied config's layout
}

// The arrays of one layer-stacked llama2.c tensor, in file order.
struct StackedArray {
  int64_t ParamLayout::Layer::*field;
  int64_t size;
};

// The per-layer arrays of a llama2.c file, in file order (each stacked over all layers). Import and
// export share this one table so they cannot disagree.
std::vector<StackedArray> Llama2cLayerArrays(const ModelConfig& c) {
  const int64_t d = c.dim, hd = c.hidden, qd = c.q_dim(), kvd = c.kv_dim();
  return {{&ParamLayout::Layer::rms_att, d},  {&ParamLayout::Layer::wq, qd * d},
          {&ParamLayout::Layer::wk, kvd * d}, {&ParamLayout::Layer::wv, kvd * d},
          {&ParamLayout::Layer::wo, d * qd},  {&ParamLayout::Layer::rms_ffn, d},
          {&ParamLayout::Layer::w1, hd * d},  {&ParamLayout::Layer::w2, d * hd},
          {&ParamLayout::Layer::w3, hd * d}};
}

}  // namespace

absl::Status CheckLlama2cCanHold(const ModelConfig& c) {
  const ModelConfig def;
  auto refuse = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the llama2.c format cannot hold this model: ", what, " (export --format hf or native)"));
  };
  if (c.rope_style != def.rope_style) {
    return refuse("rope_style half (llama2.c rotates interleaved pairs)");
  }
  if (c.rope_theta != def.rope_theta) return refuse("rope_theta other than 10000");
  if (c.qk_norm) return refuse("qk_norm (no q/k norm weights in the format)");
  if (c.norm_eps != def.norm_eps) return refuse("norm_eps other than 1e-5");
  if (c.residual_scale != def.residual_scale) return refuse("residual_scale other than 1");
  if (int64_t{c.heads} * c.head_dim != c.dim) {
    return refuse("head_dim other than dim / heads (the header has no head_dim)");
  }
  return absl::OkStatus();
}

uint32_t Crc32(const void* data, size_t n, uint32_t crc) {
  static const auto* table = [] {
    auto* t = new uint32_t[256];
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

namespace {

// The checked config of a llama2.c header; a negative vocab_size marks an untied classifier.
absl::StatusOr<ModelConfig> Llama2cHeaderConfig(const InFile& f) {
  const std::string& path = f.path();
  int32_t h[7];
  if (f.size() < static_cast<int64_t>(sizeof(h)))
    return Bad(path, "shorter than the 28-byte header");
  ANERD_RETURN_IF_ERROR(f.Read(0, h, sizeof(h)));
  ModelConfig c;
  c.name = "llama2c";
  c.dim = h[0], c.hidden = h[1], c.layers = h[2], c.heads = h[3], c.kv_heads = h[4];
  c.tied_embeddings = h[5] >= 0;
  c.vocab = h[5] == INT32_MIN ? 0 : std::abs(h[5]), c.seq = h[6];
  c.head_dim = c.heads > 0 ? c.dim / c.heads : 0;
  if (c.heads > 0 && c.dim % c.heads != 0) return Bad(path, "dim is not divisible by n_heads");
  ANERD_RETURN_IF_ERROR(CheckHeaderConfig(path, &c));
  return c;
}

// The checked config of a seed v4 checkpoint header and its Adam step count.
absl::StatusOr<ModelConfig> SeedV4HeaderConfig(const InFile& f, int64_t* adam_t) {
  const std::string& path = f.path();
  int32_t h[24];
  if (f.size() < 96) return Bad(path, "shorter than the seed's 96-byte checkpoint header");
  ANERD_RETURN_IF_ERROR(f.Read(0, h, 96));
  if (h[0] != kSeedMagic) return Bad(path, "not a seed checkpoint (bad magic)");
  if (h[1] != 4)
    return Bad(path, absl::StrCat("seed checkpoint version ", h[1], " (only 4 is supported)"));
  ModelConfig c;
  c.name = "seed_v4";
  c.layers = h[4], c.vocab = h[5], c.dim = h[6], c.hidden = h[7], c.heads = h[8], c.seq = h[9];
  c.kv_heads = h[21], c.head_dim = h[22];
  ANERD_RETURN_IF_ERROR(CheckHeaderConfig(path, &c));
  if (h[23] != c.q_dim()) return Bad(path, "q_dim does not equal n_heads * head_dim");
  *adam_t = h[20];
  return c;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadLlama2c(const std::string& path) {
  InFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  LoadedModel m;
  ANERD_ASSIGN_OR_RETURN(m.config, Llama2cHeaderConfig(f));
  const ModelConfig& c = m.config;
  // The header's size is checked against the file's before anything is allocated.
  ANERD_ASSIGN_OR_RETURN(const int64_t base, CheckedParams(path, c));
  const int64_t freq = int64_t{c.seq} * c.head_dim;  // real + imag, seq·HD/2 each
  const int64_t bytes_plain = 28 + 4 * base, bytes_freq = 28 + 4 * (base + freq);
  if (!c.tied_embeddings && f.size() != bytes_freq) {
    // An untied file's classifier follows the freq_cis tables (llama2.c export.py).
    return Bad(path, absl::StrCat("size ", f.size(), " does not match its header (expected ",
                                  bytes_freq, " bytes: an untied classifier after freq_cis)"));
  }
  if (f.size() != bytes_plain && f.size() != bytes_freq) {
    return Bad(path, absl::StrCat("size ", f.size(), " does not match its header (expected ",
                                  bytes_plain, " or ", bytes_freq, " bytes with freq_cis)"));
  }
  const ParamLayout layout(c);
  m.params.resize(base);
  const int64_t d = c.dim;
  int64_t off = 28;
  auto read = [&](float* dst, int64_t n) -> absl::Status {
    ANERD_RETURN_IF_ERROR(f.Read(off, dst, n * 4));
    off += n * 4;
    return absl::OkStatus();
  };
  ANERD_RETURN_IF_ERROR(read(m.params.data() + layout.embed(), int64_t{c.vocab} * d));
  for (const StackedArray& a : Llama2cLayerArrays(c)) {
    for (int l = 0; l < c.layers; ++l) {
      ANERD_RETURN_IF_ERROR(read(m.params.data() + layout.layer(l).*a.field, a.size));
    }
  }
  ANERD_RETURN_IF_ERROR(read(m.params.data() + layout.rms_final(), d));
  if (!c.tied_embeddings) {
    off += 4 * freq;
    ANERD_RETURN_IF_ERROR(read(m.params.data() + LmHeadOffset(layout), int64_t{c.vocab} * d));
  }
  return m;
}

absl::Status ExportLlama2c(const std::string& path, const ModelConfig& c,
                           const std::vector<float>& params) {
  ANERD_RETURN_IF_ERROR(CheckLlama2cCanHold(c));
  const ParamLayout layout(c);
  if (static_cast<int64_t>(params.size()) != layout.total()) {
    return absl::InvalidArgumentError("ExportLlama2c: parameter count does not match the config");
  }
  AtomicOutFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  const int32_t h[7] = {c.dim,   c.hidden,   c.layers,
                        c.heads, c.kv_heads, c.tied_embeddings ? c.vocab : -c.vocab,
                        c.seq};
  ANERD_RETURN_IF_ERROR(f.Write(h, sizeof(h)));
  const int64_t d = c.dim;
  ANERD_RETURN_IF_ERROR(f.Write(params.data() + layout.embed(), int64_t{c.vocab} * d * 4));
  for (const StackedArray& a : Llama2cLayerArrays(c)) {
    for (int l = 0; l < c.layers; ++l) {
      ANERD_RETURN_IF_ERROR(f.Write(params.data() + layout.layer(l).*a.field, a.size * 4));
    }
  }
  ANERD_RETURN_IF_ERROR(f.Write(params.data() + layout.rms_final(), d * 4));
  std::vector<float> cos, sin;
  RopeTables(c.seq, c.head_dim, &cos, &sin);
  std::vector<float> re, im;
  for (int t = 0; t < c.seq; ++t) {
    for (int i = 0; i < c.head_dim; i += 2) {
      re.push_back(cos[t * c.head_dim + i]);
      im.push_back(sin[t * c.head_dim + i]);
    }
  }
  ANERD_RETURN_IF_ERROR(f.Write(re.data(), re.size() * 4));
  ANERD_RETURN_IF_ERROR(f.Write(im.data(), im.size() * 4));
  if (!c.tied_embeddings) {
    ANERD_RETURN_IF_ERROR(f.Write(params.data() + LmHeadOffset(layout), int64_t{c.vocab} * d * 4));
  }
  return f.Commit();
}

absl::StatusOr<LoadedModel> LoadSeedV4(const std::string& path) {
  InFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  LoadedModel m;
  ANERD_ASSIGN_OR_RETURN(m.config, SeedV4HeaderConfig(f, &m.adam_t));
  const ModelConfig& c = m.config;
  ANERD_ASSIGN_OR_RETURN(const int64_t total, CheckedParams(path, c));
  const int64_t expected = 96 + 4 * 3 * total;
  if (f.size() != expected) {
    return Bad(path, absl::StrCat("size ", f.size(), " does not match its header (expected ",
                                  expected, " bytes)"));
  }
  const ParamLayout layout(c);
  m.params.resize(layout.total());
  m.adam_m.resize(layout.total());
  m.adam_v.resize(layout.total());
  int64_t off = 96;
  auto read3 = [&](const std::vector<const ParamGroup*>& groups) -> absl::Status {
    for (const ParamGroup* g : groups) {
      ANERD_RETURN_IF_ERROR(f.Read(off, m.params.data() + g->offset, g->size * 4));
      off += g->size * 4;
    }
    for (const ParamGroup* g : groups) {
      ANERD_RETURN_IF_ERROR(f.Read(off, m.adam_m.data() + g->offset, g->size * 4));
      ANERD_RETURN_IF_ERROR(f.Read(off + g->size * 4, m.adam_v.data() + g->offset, g->size * 4));
      off += g->size * 8;
    }
    return absl::OkStatus();
  };
  const auto& groups = layout.groups();  // embed, 9 per layer, rms_final
  for (int l = 0; l < c.layers; ++l) {
    std::vector<const ParamGroup*> layer;
    for (int k = 0; k < 9; ++k) layer.push_back(&groups[1 + 9 * l + k]);
    ANERD_RETURN_IF_ERROR(read3(layer));
  }
  ANERD_RETURN_IF_ERROR(read3({&groups.back()}));
  ANERD_RETURN_IF_ERROR(read3({&groups.front()}));
  return m;
}

absl::StatusOr<LoadedModel> LoadModelFile(const std::string& path) {
  if (IsHfCheckpointPath(path)) return LoadHfCheckpoint(HfCheckpointDir(path));
  InFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  char head[8] = {};
  if (f.size() >= 8) ANERD_RETURN_IF_ERROR(f.Read(0, head, 8));
  if (std::memcmp(head, kCkptMagic, 8) == 0) {
    ANERD_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(path));
    LoadedModel m;
    m.config = ck.spec.model;
    m.params = std::move(ck.params);
    m.adam_m = std::move(ck.adam_m);
    m.adam_v = std::move(ck.adam_v);
    m.adam_t = ck.state.adam_t;
    return m;
  }
  int32_t magic = 0;
  std::memcpy(&magic, head, 4);
  if (magic == kSeedMagic) return LoadSeedV4(path);
  return LoadLlama2c(path);
}

absl::StatusOr<ModelConfig> ReadModelFileConfig(const std::string& path) {
  if (IsHfCheckpointPath(path)) return ReadHfConfig(HfCheckpointDir(path));
  InFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  int32_t magic = 0;
  if (f.size() >= 4) ANERD_RETURN_IF_ERROR(f.Read(0, &magic, 4));
  int64_t adam_t = 0;
  if (magic == kSeedMagic) return SeedV4HeaderConfig(f, &adam_t);
  char head[8] = {};
  if (f.size() >= 8) ANERD_RETURN_IF_ERROR(f.Read(0, head, 8));
  if (std::memcmp(head, kCkptMagic, 8) == 0) {
    ANERD_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(path));  // CRCs checked: reads it all
    return ck.spec.model;
  }
  return Llama2cHeaderConfig(f);
}

namespace {

struct Section {
  const char* tag;
  const void* data;
  int64_t bytes;
};

// STATE payload: nine 8-byte little-endian fields in TrainState order.
std::string EncodeState(const TrainState& s) {
  std::string out(9 * 8, '\0');
  const int64_t ints[] = {s.step,
                          s.total_steps,
                          s.adam_t,
                          0,
                          s.good_steps,
                          s.micro_step,
                          static_cast<int64_t>(s.rng_seed),
                          0,
                          s.skipped_steps};
  std::memcpy(&out[0], ints, sizeof(ints));
  std::memcpy(&out[3 * 8], &s.loss_scale, 8);
  std::memcpy(&out[7 * 8], &s.last_loss, 8);
  return out;
}

TrainState DecodeState(const std::string& in) {
  int64_t ints[9];
  std::memcpy(ints, in.data(), sizeof(ints));
  TrainState s;
  s.step = ints[0], s.total_steps = ints[1], s.adam_t = ints[2], s.good_steps = ints[4];
  s.micro_step = ints[5], s.rng_seed = static_cast<uint64_t>(ints[6]), s.skipped_steps = ints[8];
  std::memcpy(&s.loss_scale, in.data() + 3 * 8, 8);
  std::memcpy(&s.last_loss, in.data() + 7 * 8, 8);
  return s;
}

absl::Status DataLoss(const std::string& path, absl::string_view why) {
  return absl::DataLossError(absl::StrCat("checkpoint ", path, ": ", why));
}

}  // namespace

absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& ckpt) {
  return WriteCheckpoint(
      path, CheckpointView{&ckpt.spec, &ckpt.state, ckpt.params, ckpt.adam_m, ckpt.adam_v});
}

absl::Status WriteCheckpoint(const std::string& path, const CheckpointView& ckpt) {
  const std::string spec = SpecToText(*ckpt.spec), state = EncodeState(*ckpt.state);
  const Section sections[] = {
      {"SPEC", spec.data(), static_cast<int64_t>(spec.size())},
      {"STATE", state.data(), static_cast<int64_t>(state.size())},
      {"PARAMS", ckpt.params.data(), static_cast<int64_t>(ckpt.params.size() * 4)},
      {"ADAM_M", ckpt.adam_m.data(), static_cast<int64_t>(ckpt.adam_m.size() * 4)},
      {"ADAM_V", ckpt.adam_v.data(), static_cast<int64_t>(ckpt.adam_v.size() * 4)}};
  AtomicOutFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  ANERD_RETURN_IF_ERROR(f.Write(kCkptMagic, 8));
  const uint32_t head[2] = {kCkptVersion, 5};
  ANERD_RETURN_IF_ERROR(f.Write(head, sizeof(head)));
  for (const Section& s : sections) {
    char tag[8] = {};
    std::memcpy(tag, s.tag, std::strlen(s.tag));
    const uint64_t len = static_cast<uint64_t>(s.bytes);
    const uint32_t crc[2] = {Crc32(s.data, s.bytes), 0};
    ANERD_RETURN_IF_ERROR(f.Write(tag, 8));
    ANERD_RETURN_IF_ERROR(f.Write(&len, 8));
    ANERD_RETURN_IF_ERROR(f.Write(crc, 8));
    ANERD_RETURN_IF_ERROR(f.Write(s.data, s.bytes));
  }
  return f.Commit();
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  InFile f;
  ANERD_RETURN_IF_ERROR(f.Open(path));
  char magic[8];
  uint32_t head[2];
  if (f.size() < 16) return DataLoss(path, "too short for the header");
  ANERD_RETURN_IF_ERROR(f.Read(0, magic, 8));
  ANERD_RETURN_IF_ERROR(f.Read(8, head, 8));
  if (std::memcmp(magic, kCkptMagic, 8) != 0) return DataLoss(path, "not an anerd checkpoint");
  if (head[0] != kCkptVersion) return DataLoss(path, absl::StrCat("unsupported version ", head[0]));
  Checkpoint ck;
  std::string spec, state;
  int64_t off = 16;
  const char* const order[] = {"SPEC", "STATE", "PARAMS", "ADAM_M", "ADAM_V"};
  if (head[1] != 5) return DataLoss(path, "unexpected section count");
  for (const char* want : order) {
    char tag[9] = {};
    uint64_t len = 0;
    uint32_t crc[2];
    if (off + 24 > f.size()) return DataLoss(path, absl::StrCat("truncated before section ", want));
    ANERD_RETURN_IF_ERROR(f.Read(off, tag, 8));
    ANERD_RETURN_IF_ERROR(f.Read(off + 8, &len, 8));
    ANERD_RETURN_IF_ERROR(f.Read(off + 16, crc, 8));
    off += 24;
    if (std::string(tag) != want) return DataLoss(path, absl::StrCat("expected section ", want));
    if (len > static_cast<uint64_t>(f.size() - off)) {
      return DataLoss(path, absl::StrCat("section ", want, " runs past the end of the file"));
    }
    std::string bytes(len, '\0');
    ANERD_RETURN_IF_ERROR(f.Read(off, bytes.data(), len));
    off += len;
    if (Crc32(bytes.data(), len) != crc[0]) {
      return DataLoss(path, absl::StrCat("CRC mismatch in section ", want));
    }
    const std::string w(want);
    if (w == "SPEC") {
      spec = std::move(bytes);
    } else if (w == "STATE") {
      if (len != 72) return DataLoss(path, "STATE section has the wrong size");
      state = std::move(bytes);
    } else {
      std::vector<float>& v = w == "PARAMS" ? ck.params : w == "ADAM_M" ? ck.adam_m : ck.adam_v;
      if (len % 4 != 0) return DataLoss(path, absl::StrCat("section ", want, " is not float32"));
      v.resize(len / 4);
      if (len > 0)
        std::memcpy(v.data(), bytes.data(), len);  // an empty vector's data() may be null
    }
  }
  if (off != f.size()) return DataLoss(path, "trailing bytes after the last section");
  auto parsed = SpecFromText(spec);
  if (!parsed.ok()) return DataLoss(path, absl::StrCat("bad SPEC: ", parsed.status().message()));
  ck.spec = *parsed;
  ck.state = DecodeState(state);
  absl::StatusOr<int64_t> n = CheckedNumParams(ck.spec.model);
  if (!n.ok()) return DataLoss(path, absl::StrCat("bad SPEC: ", n.status().message()));
  if (static_cast<int64_t>(ck.params.size()) != *n || ck.adam_m.size() != ck.params.size() ||
      ck.adam_v.size() != ck.params.size()) {
    return DataLoss(path, "parameter sections do not match the model config");
  }
  return ck;
}

}  // namespace anerd::training
