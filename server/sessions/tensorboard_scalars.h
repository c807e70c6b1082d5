// The TensorBoard scalars of one training step (tags grouped as TensorBoard shows them: "loss/…",
// "optim/…", "speed/…", "phase_ms/…"). Only measured values are returned: the device's own kernel
// time appears when the backend reported it, never as zero.
// Thread-safety: pure function.
#ifndef ANERD_SERVER_SESSIONS_TENSORBOARD_SCALARS_H_
#define ANERD_SERVER_SESSIONS_TENSORBOARD_SCALARS_H_

#include <vector>

#include "server/metrics/tfevents_writer.h"
#include "server/training/trainer.h"

namespace anerd::sessions {

std::vector<metrics::Scalar> StepScalars(const training::StepReport& report, double queued_ms);

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_TENSORBOARD_SCALARS_H_
