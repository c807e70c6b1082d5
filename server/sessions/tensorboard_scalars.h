// The TensorBoard scalars of one training step (tags grouped as TensorBoard shows them: "loss/…",
// "optim/…", "speed/…", "phase_ms/…", "energy/…"). Only measured values are returned: the device's
// own kernel time appears when the backend reported it, never as zero. Thread-safety: pure
// function.
#ifndef ANERD_SERVER_SESSIONS_TENSORBOARD_SCALARS_H_
#define ANERD_SERVER_SESSIONS_TENSORBOARD_SCALARS_H_

#include <vector>

#include "server/metrics/tfevents_writer.h"
#include "server/sessions/event_codec.h"
#include "server/training/trainer.h"

namespace anerd::sessions {

// With the session's observations (event_codec.h): "phase_ms/kernel_fwd", "phase_ms/kernel_bwd",
// "speed/compile_share", "speed/device_utilization" (only with a measured peak), "energy/joules",
// "energy/joules_per_token", "energy/watts" (only when the step's energy was measured).
std::vector<metrics::Scalar> StepScalars(const training::StepReport& report, double queued_ms,
                                         const StepObservations& observed = {});

// An evaluation's scalars: "loss/val" and "loss/val_perplexity".
std::vector<metrics::Scalar> EvalScalars(const training::EvalReport& report);

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_TENSORBOARD_SCALARS_H_
