#include "server/training/memory_estimate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "server/training/kernels.h"

namespace anerd::training {
namespace {

constexpr double kF32 = 4, kF16 = 2;
// Kernels whose inputs carry weights are staged once per layer (model.cc HasWeights).
constexpr const char* kSharedKernels[] = {"sdpaBwd1", "sdpaBwd2"};

bool SharedKernel(const std::string& name) {
  return std::find(std::begin(kSharedKernels), std::end(kSharedKernels), name) !=
         std::end(kSharedKernels);
}

}  // namespace

uint64_t MemoryEstimate::total_bytes() const {
  const double t = std::ceil(total());
  if (!(t < 18446744073709551615.0)) return UINT64_MAX;
  return static_cast<uint64_t>(t);
}

std::string FormatBytes(double bytes) {
  const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(static_cast<int64_t>(bytes), " B")
                : absl::StrFormat("%.3g %s", bytes, units[u]);
}

std::string MemoryEstimate::ToString() const {
  return absl::StrCat(FormatBytes(total()), " (optimizer state ", FormatBytes(optimizer),
                      ", checkpoint copy ", FormatBytes(checkpoint), ", staged fp16 weights ",
                      FormatBytes(staged), ", activations ", FormatBytes(activations),
                      ", backend buffers ", FormatBytes(backend), ")");
}

absl::StatusOr<MemoryEstimate> EstimateTrainingMemory(const TrainSpec& spec) {
  const ModelConfig& c = spec.model;
  ANERD_RETURN_IF_ERROR(ValidateConfig(c));
  const double d = c.dim, h = c.hidden, l = c.layers, s = c.seq, v = c.vocab, hd = c.head_dim;
  const double qd = static_cast<double>(c.heads) * hd;
  const double kvd = static_cast<double>(c.kv_heads) * hd, nh = c.heads;
  const double n = (c.tied_embeddings ? 1 : 2) * v * d +
                   l * (2 * qd * d + 2 * kvd * d + 3 * h * d + 2 * d + (c.qk_norm ? 2 * hd : 0)) +
                   d;

  MemoryEstimate m;
  m.optimizer = 4 * n * kF32;
  m.checkpoint = 3 * n * kF32;

  ANERD_ASSIGN_OR_RETURN(std::vector<Kernel> kernels, AllKernels(c.Shape()));
  double backend = 0;
  for (const Kernel& k : kernels) {
    const KernelLayout& kl = k.layout;
    const double in = static_cast<double>(kl.in_channels) * kl.in_spatial;
    const double out = static_cast<double>(kl.out_channels) * kl.out_spatial;
    m.staged += (SharedKernel(kl.kernel) ? 1 : l) * in * kF16 + out * kF16;
    backend += 2 * (in + out) * kF32;
  }
  m.backend = backend + 2 * s * s * kF32 + 2 * s * hd * kF32 + 4 * nh * s * s * kF32;

  const double per_layer =
      (6 * d + 3 * qd + 4 * kvd + 5 * h + (c.qk_norm ? qd + kvd : 0)) * s + 2 * s;
  const double scratch = 5 * d * s + std::max({h, qd, d}) * s + 2 * std::max(qd, d) * s;
  const double classifier = s * v + (spec.compact_vocab ? 2 * v * d : 0);
  m.activations = (l * per_layer + scratch + classifier + 2 * s * hd) * kF32;
  return m;
}

}  // namespace anerd::training
