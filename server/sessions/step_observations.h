// The observations a session adds to a training step (event_codec.h StepObservations): compile
// share, device utilisation against the backend's measured peak, energy from the telemetry
// sampler. Measured values only: with no measured peak there is no utilisation, with no energy
// source no energy (and the reason instead), never a 0 standing in for "unknown".
// Thread-safety: pure function.
#ifndef ANERD_SERVER_SESSIONS_STEP_OBSERVATIONS_H_
#define ANERD_SERVER_SESSIONS_STEP_OBSERVATIONS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "server/sessions/event_codec.h"
#include "server/telemetry/energy_sampler.h"
#include "server/training/trainer.h"

namespace anerd::sessions {

// A backend's peak FLOP rate as measured on this machine (a stored peak probe result).
struct MeasuredPeak {
  double tflops = 0;
  std::string source;  // "probe <result id>"
};

struct StepContext {
  int64_t tokens = 0;                // tokens the step trained on (accum × seq)
  std::optional<double> compile_ms;  // the trainer's compile time (unset: not measured)
  double run_step_ms = 0;            // step time of the trainer's run so far, this step included
  std::optional<MeasuredPeak> peak;  // the backend's measured peak, when there is one
  // Telemetry snapshots taken (without I/O) right before and after the step; unset when the
  // daemon has no telemetry sampler.
  std::optional<telemetry::EnergySnapshot> before, after;
};

StepObservations ObserveStep(const training::StepReport& report, const StepContext& context);

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_STEP_OBSERVATIONS_H_
