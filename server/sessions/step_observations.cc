#include "server/sessions/step_observations.h"

namespace anerd::sessions {

StepObservations ObserveStep(const training::StepReport& report, const StepContext& c) {
  StepObservations o;
  if (c.compile_ms.has_value()) {
    o.compile_ms = *c.compile_ms;
    const double wall = *c.compile_ms + c.run_step_ms;
    if (wall > 0) o.compile_share = *c.compile_ms / wall;
  }
  if (c.peak.has_value() && c.peak->tflops > 0) {
    o.peak_tflops = c.peak->tflops;
    o.peak_source = c.peak->source;
    o.device_utilization = report.tflops / c.peak->tflops;
  }
  if (!c.before.has_value() || !c.after.has_value()) {
    o.energy_unavailable = "no energy telemetry in this daemon";
    return o;
  }
  if (c.after->thermal.has_value()) o.thermal_state = *c.after->thermal;
  const std::optional<telemetry::IntervalEnergy> e =
      telemetry::EnergyOver(*c.before, *c.after, report.step_ms / 1000.0);
  if (!e.has_value()) {
    o.energy_unavailable = !c.after->unavailable.empty()
                               ? c.after->source + ": " + c.after->unavailable
                               : c.after->source + ": no power sampled yet";
    return o;
  }
  o.energy_source = c.after->source;
  o.energy_j = e->joules;
  o.power_w = e->watts;
  if (c.tokens > 0) o.energy_j_per_token = e->joules / static_cast<double>(c.tokens);
  return o;
}

}  // namespace anerd::sessions
