#include "server/probes/programs.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/mil/blob_writer.h"
#include "common/mil/builder.h"
#include "common/status_macros.h"

namespace anerd::probes {
namespace {

using mil::Builder;
using mil::DType;
using mil::TensorType;
using mil::Value;

// SplitMix64: a tiny, fully specified generator (std distributions differ between libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Symmetric() {
    return static_cast<float>(Next() >> 40) / static_cast<float>(1 << 23) - 1.0f;
  }

 private:
  uint64_t state_;
};

// Variance-preserving weights [C][C] for one layer.
std::vector<float> LayerWeights(Rng* rng, int64_t channels) {
  const float bound = std::sqrt(3.0f / static_cast<float>(channels));
  std::vector<float> w(channels * channels);
  for (float& v : w) v = rng->Symmetric() * bound;
  return w;
}

std::string WeightPath(int layer) { return absl::StrCat("@model_path/weights/w", layer, ".bin"); }

absl::Status CheckBounds(int64_t channels, int64_t spatial, int depth, int64_t elements) {
  if (channels < 1 || channels > kMaxProbeChannels || spatial < 1 || spatial > kMaxProbeSpatial ||
      depth < 1 || depth > kMaxProbeDepth || elements > (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(absl::StrCat("probe: channels ", channels, ", spatial ",
                                                   spatial, ", depth ", depth,
                                                   " outside the supported bounds"));
  }
  return absl::OkStatus();
}

// Adds layer `i`'s fp16 weight file and its BLOBFILE const; returns the const.
Value Fp16Weight(Builder* b, ProbeProgram* out, int i, const std::vector<float>& w, int64_t ch) {
  absl::Status st = out->weights.Add(WeightPath(i), mil::BuildFp16Blob(w));
  if (!st.ok()) return Value{};
  out->weight_bytes += ch * ch * 2;
  return b->ConstBlob(absl::StrCat("w", i), TensorType{DType::kFp16, {ch, ch, 1, 1}}, WeightPath(i),
                      64);
}

// Adds layer `i`'s int8 weight file and a constexpr_affine_dequantize of it.
Value Int8Weight(Builder* b, ProbeProgram* out, int i, const std::vector<float>& w, int64_t ch) {
  mil::Int8Quantized q = mil::QuantizeInt8PerTensor(w);
  absl::Status st = out->weights.Add(WeightPath(i), mil::BuildInt8Blob(q.data));
  if (!st.ok()) return Value{};
  out->weight_bytes += ch * ch;
  return b->ConstexprAffineDequantize(
      absl::StrCat("w", i),
      mil::BlobLiteral(TensorType{DType::kInt8, {ch, ch, 1, 1}}, WeightPath(i), 64),
      mil::ScalarLiteral(DType::kFp16, q.scales[0]), mil::ScalarLiteral(DType::kInt8, 0), 0);
}

absl::StatusOr<ProbeProgram> ConvChain(int64_t channels, int64_t spatial, int depth, uint64_t seed,
                                       bool fp32_io) {
  ANERD_RETURN_IF_ERROR(
      CheckBounds(channels, spatial, depth, channels * std::max(spatial, channels)));
  ProbeProgram out;
  Builder b;
  Rng rng(seed);
  const DType io = fp32_io ? DType::kFp32 : DType::kFp16;
  Value x = b.Input("x", TensorType{io, {1, channels, 1, spatial}});
  Value h = fp32_io ? b.Cast("x_fp16", x, DType::kFp16) : x;
  for (int i = 0; i < depth; ++i) {
    Value w = Fp16Weight(&b, &out, i, LayerWeights(&rng, channels), channels);
    const bool last = i + 1 == depth;
    h = b.Conv(last && !fp32_io ? "y" : absl::StrCat("conv", i), h, w);
  }
  b.Output(fp32_io ? b.Cast("y", h, DType::kFp32) : h);
  ANERD_ASSIGN_OR_RETURN(out.program, b.Finish());
  out.flops = 2 * channels * channels * spatial * depth;
  return out;
}

}  // namespace

absl::StatusOr<ProbeProgram> PeakProgram(int64_t channels, int64_t spatial, int depth,
                                         uint64_t seed, bool fp32_io) {
  return ConvChain(channels, spatial, depth, seed, fp32_io);
}

absl::StatusOr<ProbeProgram> SramProgram(int64_t channels, int64_t spatial, uint64_t seed,
                                         bool fp32_io) {
  return ConvChain(channels, spatial, 1, seed, fp32_io);
}

absl::StatusOr<ProbeProgram> LatencyProgram(uint64_t seed) {
  return ConvChain(64, 64, 1, seed, /*fp32_io=*/false);
}

absl::StatusOr<ProbeProgram> Int8Program(int64_t channels, int64_t spatial, int depth, bool w8a8,
                                         uint64_t seed) {
  ANERD_RETURN_IF_ERROR(CheckBounds(channels, spatial, depth,
                                    std::max(channels * spatial * spatial, channels * channels)));
  ProbeProgram out;
  Builder b;
  Rng rng(seed);
  Value h = b.Input("x", TensorType{DType::kFp16, {1, channels, spatial, spatial}});
  Value act_scale = w8a8 ? b.ConstFp16("act_scale", kInt8ActivationScale) : Value{};
  for (int i = 0; i < depth; ++i) {
    const std::vector<float> wf = LayerWeights(&rng, channels);
    Value w = w8a8 ? Int8Weight(&b, &out, i, wf, channels) : Fp16Weight(&b, &out, i, wf, channels);
    const bool last = i + 1 == depth;
    h = b.Conv(last ? "y" : absl::StrCat("conv", i), h, w);
    if (w8a8 && !last) {
      Value q = b.Quantize(absl::StrCat("q", i), h, act_scale, DType::kInt8);
      h = b.Dequantize(absl::StrCat("dq", i), q, act_scale);
    }
  }
  b.Output(h);
  ANERD_ASSIGN_OR_RETURN(out.program, b.Finish());
  out.flops = 2 * channels * channels * spatial * spatial * depth;
  return out;
}

}  // namespace anerd::probes
