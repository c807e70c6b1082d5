// ParamLayout and InitParams (declared in model.h): where each parameter lives in the flat fp32
// array, and the deterministic initialisation from a seed.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/training/data.h"
#include "server/training/model.h"

namespace anerd::training {

ParamLayout::ParamLayout(const ModelConfig& c) {
  const int64_t d = c.dim, h = c.hidden, qd = c.q_dim(), kvd = c.kv_dim();
  auto add = [this](std::string name, int64_t size, bool decay) {
    groups_.push_back(ParamGroup{std::move(name), total_, size, decay});
    total_ += size;
    return groups_.back().offset;
  };
  add("embed", int64_t{c.vocab} * d, true);
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = absl::StrCat("layers.", l, ".");
    Layer ly;
    ly.wq = add(p + "wq", qd * d, true);
    ly.wk = add(p + "wk", kvd * d, true);
    ly.wv = add(p + "wv", kvd * d, true);
    ly.wo = add(p + "wo", d * qd, true);
    ly.w1 = add(p + "w1", h * d, true);
    ly.w2 = add(p + "w2", d * h, true);
    ly.w3 = add(p + "w3", h * d, true);
    ly.rms_att = add(p + "rms_att", d, false);
    ly.rms_ffn = add(p + "rms_ffn", d, false);
    if (c.qk_norm) {
      ly.q_norm = add(p + "q_norm", c.head_dim, false);
      ly.k_norm = add(p + "k_norm", c.head_dim, false);
    }
    layers_.push_back(ly);
  }
  rms_final_ = add("rms_final", d, false);
  classifier_ = c.tied_embeddings ? 0 : add("lm_head", int64_t{c.vocab} * d, true);
}

void InitParams(const ModelConfig& c, uint64_t seed, float* params) {
  const ParamLayout layout(c);
  uint64_t state = seed;
  auto uniform = [&state]() {
    state = SplitMix64(state);
    return static_cast<float>(static_cast<double>(state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  };
  auto fill = [&](int64_t off, int64_t n, double scale) {
    for (int64_t i = 0; i < n; ++i) params[off + i] = static_cast<float>(uniform() * scale);
  };
  const double d = c.dim, h = c.hidden, qd = static_cast<double>(c.q_dim());
  const double res = 1.0 / std::sqrt(2.0 * c.layers);
  for (int l = 0; l < c.layers; ++l) {
    const ParamLayout::Layer& ly = layout.layer(l);
    fill(ly.wq, c.q_dim() * c.dim, 1 / std::sqrt(d));
    fill(ly.wk, c.kv_dim() * c.dim, 1 / std::sqrt(d));
    fill(ly.wv, c.kv_dim() * c.dim, 1 / std::sqrt(d));
    fill(ly.wo, c.dim * c.q_dim(), res / std::sqrt(qd));
    fill(ly.w1, c.hidden * int64_t{c.dim}, 1 / std::sqrt(d));
    fill(ly.w2, c.dim * int64_t{c.hidden}, res / std::sqrt(h));
    fill(ly.w3, c.hidden * int64_t{c.dim}, 1 / std::sqrt(d));
    std::fill(params + ly.rms_att, params + ly.rms_att + c.dim, 1.0f);
    std::fill(params + ly.rms_ffn, params + ly.rms_ffn + c.dim, 1.0f);
    if (c.qk_norm) {
      std::fill(params + ly.q_norm, params + ly.q_norm + c.head_dim, 1.0f);
      std::fill(params + ly.k_norm, params + ly.k_norm + c.head_dim, 1.0f);
    }
  }
  std::fill(params + layout.rms_final(), params + layout.rms_final() + c.dim, 1.0f);
  fill(layout.embed(), int64_t{c.vocab} * c.dim, 0.02);
  if (!c.tied_embeddings) fill(layout.classifier(), int64_t{c.vocab} * c.dim, 0.02);
}

}  // namespace anerd::training
