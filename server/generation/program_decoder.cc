// ProgramDecoder: the layer loop over the device programs and the CPU's KV cache
// (program_decoder.h).
#include "server/generation/program_decoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/fp16.h"
#include "common/status_macros.h"
#include "server/training/cpu_ops.h"
#include "server/training/kernels.h"
#include "server/training/staging.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd::generation {
namespace {

using training::ModelConfig;

// Bytes of one width's staged inputs over all layers (the three programs' fp16 surfaces).
double StagedBytes(const ModelConfig& c, int64_t w) {
  const double d = c.dim, h = c.hidden, qd = static_cast<double>(c.q_dim());
  const double kvd = static_cast<double>(c.kv_dim());
  return 2.0 * c.layers * (d * (w + qd + 2 * kvd) + qd * (w + d) + d * (2.0 * w + 3 * h));
}

// Writes act [rows][n] into columns [col, col + n) of an fp16 surface of row length ld, and zeros
// the padding columns [col + n, col + width).
void PutColumns(uint16_t* dst, int64_t ld, int64_t col, const float* act, int64_t rows, int64_t n,
                int64_t width) {
  for (int64_t r = 0; r < rows; ++r) {
    uint16_t* row = dst + r * ld + col;
    FloatToHalfArray(act + r * n, row, n);
    std::fill(row + n, row + width, uint16_t{0});
  }
}

// Copies channels [block.offset, +block.size) of an output [C][width], columns [0, n), to dst.
void GetColumns(const backend::Tensor& out, const training::Block& block, int64_t width, int64_t n,
                float* dst) {
  const auto* src = static_cast<const uint16_t*>(out.data());
  for (int64_t c = 0; c < block.size; ++c) {
    HalfToFloatArray(src + (block.offset + c) * width, dst + c * n, n);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProgramDecoder>> ProgramDecoder::Create(
    std::shared_ptr<DecodeProgramSet> programs, std::shared_ptr<const std::vector<float>> params,
    const DecoderOptions& options) {
  if (programs == nullptr) return absl::InvalidArgumentError("programs: none given");
  const ModelConfig& config = programs->config();
  ANERD_RETURN_IF_ERROR(training::ValidateConfig(config));
  const int64_t want = training::ParamLayout(config).total();
  if (params == nullptr || static_cast<int64_t>(params->size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat("params: has ",
                                                   params == nullptr ? 0 : params->size(),
                                                   " floats but the model config needs ", want));
  }
  if (options.max_context < 0 || options.max_context > kMaxDecoderContext) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_context: must be in [0, ", kMaxDecoderContext, "], got ", options.max_context));
  }
  const int64_t ctx = options.max_context > 0 ? options.max_context : config.seq;
  double bytes = KvCache::Bytes(config, ctx) + 2.0 * ctx * config.head_dim * sizeof(float);
  for (int64_t w : programs->widths()) bytes += StagedBytes(config, w);
  if (bytes > static_cast<double>(options.max_cache_bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_context: a KV cache of ", ctx, " positions and the staged program inputs need ", bytes,
        " bytes, over the limit of ", options.max_cache_bytes));
  }
  return std::unique_ptr<ProgramDecoder>(
      new ProgramDecoder(std::move(programs), std::move(params), ctx));
}

ProgramDecoder::ProgramDecoder(std::shared_ptr<DecodeProgramSet> programs,
                               std::shared_ptr<const std::vector<float>> params,
                               int64_t max_context)
    : c_(programs->config()),
      layout_(c_),
      programs_(std::move(programs)),
      params_(std::move(params)),
      p_(params_->data()),
      cache_(c_, max_context),
      logits_(c_.vocab) {
  training::RopeTables(max_context, c_.head_dim, c_.rope_theta,
                       c_.rope_style == ModelConfig::RopeStyle::kHalf, &rope_cos_, &rope_sin_);
}

int64_t ProgramDecoder::staged_bytes() const {
  double bytes = 0;
  for (const auto& [width, unused] : inputs_) bytes += StagedBytes(c_, width);
  return static_cast<int64_t>(bytes);
}

absl::StatusOr<absl::Span<const float>> ProgramDecoder::Prefill(absl::Span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size()), d = c_.dim;
  if (n == 0) return absl::InvalidArgumentError("tokens: empty");
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c_.vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens[", i, "]: id ", tokens[i], " outside the vocabulary [0, ", c_.vocab, ")"));
    }
  }
  const int64_t ctx = cache_.max_context();
  if (n > ctx - pos_) {
    return absl::OutOfRangeError(absl::StrCat("context: ", n, " tokens at position ", pos_,
                                              " pass the context of ", ctx, " positions"));
  }
  const int64_t start = pos_;
  int64_t m = 0;  // the last chunk's length: x_ is [D][m]
  for (int64_t begin = 0; begin < n; begin += m) {
    m = std::min(programs_->max_width(), n - begin);
    if (absl::Status s = RunChunk(tokens.subspan(begin, m)); !s.ok()) {
      pos_ = start;
      return s;
    }
    pos_ += m;
  }
  xl_.resize(d);
  rinv_.resize(std::max<int64_t>(rinv_.size(), 1));
  for (int64_t c = 0; c < d; ++c) xl_[c] = x_[c * m + m - 1];
  training::RmsNormForward(xl_.data(), p_ + layout_.rms_final(), d, 1, xl_.data(), rinv_.data(),
                           static_cast<float>(c_.norm_eps));
  cblas_sgemv(CblasRowMajor, CblasNoTrans, c_.vocab, d, 1.0f, p_ + layout_.classifier(), d,
              xl_.data(), 1, 0.0f, logits_.data(), 1);
  return absl::MakeConstSpan(logits_);
}

absl::StatusOr<ProgramDecoder::Inputs*> ProgramDecoder::Prepare(const WidthPrograms& w) {
  auto it = inputs_.find(w.width);
  if (it != inputs_.end()) return &it->second;
  Inputs in;
  std::vector<float> scratch;
  for (int k = 0; k < WidthPrograms::kNumKinds; ++k) {
    const training::KernelLayout& kl = w.layouts[k];
    const mil::TensorType type{mil::DType::kFp16, {1, kl.in_channels, 1, kl.in_spatial}};
    for (int l = 0; l < c_.layers; ++l) {
      std::vector<backend::NamedTensor> one;
      one.push_back({"x", backend::Tensor(type)});
      in[k].push_back(std::move(one));
    }
  }
  auto slot = [&](int k, int l, const char* name) {
    return static_cast<uint16_t*>(in[k][l][0].tensor.mutable_data()) +
           w.layouts[k].FindSlot(name)->offset;
  };
  const int64_t d = c_.dim, h = c_.hidden, qd = c_.q_dim(), kvd = c_.kv_dim();
  const int64_t sq = w.layouts[WidthPrograms::kQkv].in_spatial;
  const int64_t so = w.layouts[WidthPrograms::kWo].in_spatial;
  const int64_t sf = w.layouts[WidthPrograms::kFfn].in_spatial;
  for (int l = 0; l < c_.layers; ++l) {
    const training::ParamLayout::Layer& pl = layout_.layer(l);
    const int q = WidthPrograms::kQkv, o = WidthPrograms::kWo, f = WidthPrograms::kFfn;
    training::PutTransposed(slot(q, l, "wq_t"), sq, p_ + pl.wq, qd, d, &scratch);
    training::PutTransposed(slot(q, l, "wk_t"), sq, p_ + pl.wk, kvd, d, &scratch);
    training::PutTransposed(slot(q, l, "wv_t"), sq, p_ + pl.wv, kvd, d, &scratch);
    training::PutTransposed(slot(o, l, "wo_t"), so, p_ + pl.wo, d, qd, &scratch);
    training::PutTransposed(slot(f, l, "w1_t"), sf, p_ + pl.w1, h, d, &scratch);
    training::PutTransposed(slot(f, l, "w3_t"), sf, p_ + pl.w3, h, d, &scratch);
    training::PutRows(slot(f, l, "w2"), sf, p_ + pl.w2, d, h);
  }
  return &inputs_.emplace(w.width, std::move(in)).first->second;
}

absl::Status ProgramDecoder::RunChunk(absl::Span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size()), d = c_.dim;
  ANERD_ASSIGN_OR_RETURN(const WidthPrograms* w, programs_->Get(programs_->WidthFor(n)));
  ANERD_ASSIGN_OR_RETURN(Inputs * in, Prepare(*w));
  for (auto* v : {&x_, &xn_, &x2_, &o_}) v->resize(d * n);
  for (auto* v : {&q_, &att_}) v->resize(c_.q_dim() * n);
  for (auto* v : {&k_, &v_}) v->resize(c_.kv_dim() * n);
  rinv_.resize(n);
  const float* embed = p_ + layout_.embed();
  for (int64_t t = 0; t < n; ++t) {
    const float* row = embed + int64_t{tokens[t]} * d;
    for (int64_t c = 0; c < d; ++c) x_[c * n + t] = row[c];
  }
  for (int l = 0; l < c_.layers; ++l) ANERD_RETURN_IF_ERROR(Layer(l, n, *w, in));
  return absl::OkStatus();
}

absl::StatusOr<backend::Tensor> ProgramDecoder::RunProgram(const WidthPrograms& w, Inputs* in,
                                                           int kind, int l) {
  const auto start = std::chrono::steady_clock::now();
  ANERD_ASSIGN_OR_RETURN(backend::RunResult r, w.programs[kind]->Run((*in)[kind][l]));
  device_ms_ +=
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (r.outputs.size() != 1) {
    return absl::InternalError(
        absl::StrCat(w.layouts[kind].kernel, ": expected one output, got ", r.outputs.size()));
  }
  return std::move(r.outputs[0].tensor);
}

absl::Status ProgramDecoder::Layer(int l, int64_t n, const WidthPrograms& w, Inputs* in) {
  const training::ParamLayout::Layer& pl = layout_.layer(l);
  const int64_t d = c_.dim, hd = c_.head_dim, qd = c_.q_dim(), width = w.width;
  const float eps = static_cast<float>(c_.norm_eps), alpha = static_cast<float>(c_.residual_scale);
  const bool half = c_.rope_style == ModelConfig::RopeStyle::kHalf;
  const int kq = WidthPrograms::kQkv, ko = WidthPrograms::kWo, kf = WidthPrograms::kFfn;
  auto surface = [&](int k) {
    return static_cast<uint16_t*>((*in)[k][l][0].tensor.mutable_data());
  };
  auto sp = [&](int k) { return w.layouts[k].in_spatial; };

  training::RmsNormForward(x_.data(), p_ + pl.rms_att, d, n, xn_.data(), rinv_.data(), eps);
  PutColumns(surface(kq), sp(kq), 0, xn_.data(), d, n, width);
  ANERD_ASSIGN_OR_RETURN(backend::Tensor qkv, RunProgram(w, in, kq, l));
  GetColumns(qkv, *w.layouts[kq].FindOutput("q"), width, n, q_.data());
  GetColumns(qkv, *w.layouts[kq].FindOutput("k"), width, n, k_.data());
  GetColumns(qkv, *w.layouts[kq].FindOutput("v"), width, n, v_.data());
  if (c_.qk_norm) {
    training::HeadRmsNormForward(q_.data(), p_ + pl.q_norm, c_.heads, hd, n, eps, q_.data());
    training::HeadRmsNormForward(k_.data(), p_ + pl.k_norm, c_.kv_heads, hd, n, eps, k_.data());
  }
  const float* cos = rope_cos_.data() + pos_ * hd;  // tables start at this chunk's position
  const float* sin = rope_sin_.data() + pos_ * hd;
  training::RopeForward(q_.data(), c_.heads, hd, n, cos, sin, half);
  training::RopeForward(k_.data(), c_.kv_heads, hd, n, cos, sin, half);
  cache_.Append(l, pos_, n, k_.data(), v_.data());
  cache_.Attend(l, pos_, n, q_.data(), att_.data());

  PutColumns(surface(ko), sp(ko), 0, att_.data(), qd, n, width);
  ANERD_ASSIGN_OR_RETURN(backend::Tensor o, RunProgram(w, in, ko, l));
  GetColumns(o, *w.layouts[ko].FindOutput("o_out"), width, n, o_.data());
  for (int64_t i = 0; i < d * n; ++i) x2_[i] = x_[i] + alpha * o_[i];
  training::RmsNormForward(x2_.data(), p_ + pl.rms_ffn, d, n, xn_.data(), rinv_.data(), eps);

  PutColumns(surface(kf), sp(kf), 0, xn_.data(), d, n, width);
  PutColumns(surface(kf), sp(kf), width, x2_.data(), d, n, width);
  ANERD_ASSIGN_OR_RETURN(backend::Tensor f, RunProgram(w, in, kf, l));
  GetColumns(f, *w.layouts[kf].FindOutput("x_next"), width, n, x_.data());
  return absl::OkStatus();
}

}  // namespace anerd::generation
