// How much memory one training run takes, estimated before anything is allocated, so that a
// session too large for the machine is refused instead of dying in std::bad_alloc.
//
// Derived from what Trainer/Model/the CPU backend allocate for a model shape (bytes):
//   optimizer     params, grads, Adam m and v: 4 fp32 arrays of NumParams (trainer.h)
//   checkpoint    the copy of params, m and v a checkpoint write or read makes (model_io.h)
//   staged        fp16 kernel inputs: the eight weight-carrying kernels once per layer, the two
//                 attention-backward kernels once (kernels.h layouts; model.cc Compile)
//   activations   per-layer saved activations and backward temporaries, the model's scratch
//                 buffers, RoPE tables, logits [S][V] and the compact classifier (model.cc)
//   backend       the backend's buffers for the ten compiled kernels, estimated as fp32 copies of
//                 each kernel's input and output (twice: input and working buffers), the causal
//                 mask constants and four NH·S·S attention score buffers
// The data file is not counted (it is mapped or at most twice its size). Sizes are doubles so
// that no shape overflows; the estimate is within tens of percent of the measured peak.
// Thread-safety: pure functions.
#ifndef ANERD_SERVER_TRAINING_MEMORY_ESTIMATE_H_
#define ANERD_SERVER_TRAINING_MEMORY_ESTIMATE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/training/config.h"

namespace anerd::training {

struct MemoryEstimate {
  double optimizer = 0;
  double checkpoint = 0;
  double staged = 0;
  double activations = 0;
  double backend = 0;

  double total() const { return optimizer + checkpoint + staged + activations + backend; }
  // total() rounded up and saturated at UINT64_MAX.
  uint64_t total_bytes() const;
  // "12.3 GiB (optimizer 4 GiB, checkpoint 3 GiB, ...)".
  std::string ToString() const;
};

// INVALID_ARGUMENT when the spec's model config is invalid (ValidateSpec's message).
absl::StatusOr<MemoryEstimate> EstimateTrainingMemory(const TrainSpec& spec);

// "1.5 GiB", "640 MiB", "12 KiB", "100 B".
std::string FormatBytes(double bytes);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_MEMORY_ESTIMATE_H_
