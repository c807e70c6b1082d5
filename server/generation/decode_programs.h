// The fixed-shape MIL programs of generation on a device backend (issue 20 item 2): for each
// width S — the decode lane (16 or 32 positions, the new token in lane 0, the rest padding: Orion
// reports that seq=1 compiles but fails at evaluation with 0x1d) and the prefill buckets
// kPrefillBuckets — three dynamic-weight kernels of training/kernels.h at seq = S:
//   qkvFwd   (xnorm, Wqᵀ, Wkᵀ, Wvᵀ) -> q, k, v           (the projections of sdpaFwd)
//   woFwd    (attn_out, Woᵀ) -> o
//   ffnFused (x2norm, x2, W1ᵀ, W3ᵀ, W2) -> x_next = x2 + α·W2(silu(W1·x2n)⊙W3·x2n)
// Weights travel in the input's spatial slots, so ONE program per (kernel, width) serves every
// layer (and every decoder of the same model shape sharing the set): at most 3·(1 + 4) = 15
// compiles per model shape, far inside the ANE's budget (common/mil/ane_rules.h compile_budget).
// Widths are multiples of 16 (surface_width_multiple); the lowering (server/backend/ane/) packs
// and pads the surfaces for the other rules.
//
// A width's programs are compiled on first use (Get), through the backend given at Create.
// Thread-safety: Get and the accessors may be called from any thread (a mutex guards the lazy
// compile); compiles and the programs' runs are device work: call Get where the caller's device
// work runs (the backend's executor, as the Trainer does). CompiledProgram::Run serialises
// concurrent runs of one program (backend.h), so decoders on different threads may share a set.
#ifndef ANERD_SERVER_GENERATION_DECODE_PROGRAMS_H_
#define ANERD_SERVER_GENERATION_DECODE_PROGRAMS_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/backend.h"
#include "server/training/config.h"
#include "server/training/kernels.h"

namespace anerd::generation {

// Prefill bucket widths (positions), ascending: a chunk of n positions runs in the smallest
// width >= n (as Orion's core/bucket.m); longer prompts run in chunks of the largest.
inline constexpr std::array<int64_t, 4> kPrefillBuckets = {32, 64, 128, 256};

struct DecodeProgramOptions {
  // Positions of the decode program: 16 or 32 (a multiple of the ANE's surface width multiple).
  int64_t lane = 16;
  // How the backend computes the programs' fp16 values (backend.h). kAne is what the ANE does.
  backend::NumericsMode numerics = backend::NumericsMode::kAne;
};

// The three programs of one width and their layouts (kernels.h).
struct WidthPrograms {
  enum Kind { kQkv, kWo, kFfn, kNumKinds };
  int64_t width = 0;
  std::array<training::KernelLayout, kNumKinds> layouts;
  std::array<std::unique_ptr<backend::CompiledProgram>, kNumKinds> programs;
};

class DecodeProgramSet {
 public:
  // Validates the config and options (INVALID_ARGUMENT naming "lane" or the config's field);
  // compiles nothing yet. `backend` is not owned and must outlive the set.
  static absl::StatusOr<std::shared_ptr<DecodeProgramSet>> Create(
      const training::ModelConfig& config, backend::Backend* backend,
      const DecodeProgramOptions& options = {});

  // Every width the set may compile, ascending: the lane, then the buckets above it.
  const std::vector<int64_t>& widths() const { return widths_; }
  int64_t max_width() const { return widths_.back(); }
  // The smallest width >= n, for 1 <= n <= max_width().
  int64_t WidthFor(int64_t n) const;
  // The programs of `width` (one of widths()), compiled on the first call for that width.
  // Errors from generation, verification or the backend's Compile (e.g. RESOURCE_EXHAUSTED when
  // its budget is used up); a failed width is retried on the next call.
  absl::StatusOr<const WidthPrograms*> Get(int64_t width);
  // The three kernels of `width` as generated (what Get compiles), for checkers and tests.
  absl::StatusOr<std::vector<training::Kernel>> Kernels(int64_t width) const;
  // Programs compiled by this set so far (3 per width used).
  int64_t programs_compiled() const;

  const training::ModelConfig& config() const { return c_; }
  const DecodeProgramOptions& options() const { return options_; }
  backend::Backend* backend() const { return backend_; }

 private:
  DecodeProgramSet(const training::ModelConfig& config, backend::Backend* backend,
                   const DecodeProgramOptions& options, std::vector<int64_t> widths);

  const training::ModelConfig c_;
  backend::Backend* const backend_;
  const DecodeProgramOptions options_;
  const std::vector<int64_t> widths_;
  mutable absl::Mutex mu_;
  std::map<int64_t, std::unique_ptr<WidthPrograms>> compiled_ ABSL_GUARDED_BY(mu_);
  int64_t programs_compiled_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace anerd::generation

#endif  // ANERD_SERVER_GENERATION_DECODE_PROGRAMS_H_
