// The defaults of a training run: the one source for the engine's TrainSpec member initialisers
// (server/training/config.h) and the defaults anectl's `train start --help` prints, so the help
// cannot drift from what the daemon does with an unset field. Header-only constants.
#ifndef ANERD_COMMON_TRAINING_DEFAULTS_H_
#define ANERD_COMMON_TRAINING_DEFAULTS_H_

#include <cstdint>

namespace anerd::training_defaults {

inline constexpr int64_t kSteps = 1000;          // optimizer steps
inline constexpr double kLr = 3e-4;              // peak learning rate
inline constexpr double kMinLr = 3e-5;           // cosine floor
inline constexpr char kSchedule[] = "cosine";    // "cosine" | "constant"
inline constexpr int64_t kWarmup = 100;          // optimizer steps of linear warmup
inline constexpr int kAccum = 1;                 // sequences per optimizer step
inline constexpr double kClip = 1.0;             // global grad-norm clip; 0 = off
inline constexpr double kWeightDecay = 0.1;      // AdamW, on matrices and the embedding
inline constexpr double kBeta1 = 0.9;            // AdamW
inline constexpr double kBeta2 = 0.95;           // AdamW
inline constexpr double kEps = 1e-8;             // AdamW
inline constexpr char kLossScale[] = "dynamic";  // "dynamic" or a positive number
inline constexpr char kNumerics[] = "ane";       // "ane" | "fp32"
inline constexpr char kSampling[] = "random";    // "random" | "sequential"
inline constexpr uint64_t kSeed = 42;            // init and sampling
inline constexpr char kResidualScale[] = "1";    // "1" | "deepnet"

}  // namespace anerd::training_defaults

#endif  // ANERD_COMMON_TRAINING_DEFAULTS_H_
