#include "server/sessions/tensorboard_scalars.h"

namespace anerd::sessions {

namespace {

void AddIfSet(const char* tag, const std::optional<double>& v, std::vector<metrics::Scalar>* out) {
  if (v.has_value()) out->push_back({tag, static_cast<float>(*v)});
}

}  // namespace

std::vector<metrics::Scalar> StepScalars(const training::StepReport& report, double queued_ms,
                                         const StepObservations& observed) {
  const training::PhaseTimes& p = report.phases;
  std::vector<metrics::Scalar> out = {
      {"loss/train", static_cast<float>(report.loss)},
      {"optim/lr", static_cast<float>(report.lr)},
      {"optim/grad_norm", static_cast<float>(report.grad_norm)},
      {"optim/loss_scale", static_cast<float>(report.loss_scale)},
      {"optim/skipped", report.skipped ? 1.0f : 0.0f},
      {"speed/step_ms", static_cast<float>(report.step_ms)},
      {"speed/tokens_per_s", static_cast<float>(report.tokens_per_s)},
      {"speed/tflops", static_cast<float>(report.tflops)},
      {"speed/queued_ms", static_cast<float>(queued_ms)},
      {"phase_ms/kernel", static_cast<float>(p.kernel_ms)},
      {"phase_ms/io", static_cast<float>(p.io_ms)},
      {"phase_ms/rms", static_cast<float>(p.rms_ms)},
      {"phase_ms/elem", static_cast<float>(p.elem_ms)},
      {"phase_ms/cls", static_cast<float>(p.cls_ms)},
      {"phase_ms/dw_wait", static_cast<float>(p.dw_wait_ms)},
      {"phase_ms/optim", static_cast<float>(p.optim_ms)},
  };
  AddIfSet("phase_ms/kernel_fwd", p.kernel_fwd_ms, &out);
  AddIfSet("phase_ms/kernel_bwd", p.kernel_bwd_ms, &out);
  AddIfSet("speed/compile_share", observed.compile_share, &out);
  AddIfSet("speed/device_utilization", observed.device_utilization, &out);
  AddIfSet("energy/joules", observed.energy_j, &out);
  AddIfSet("energy/joules_per_token", observed.energy_j_per_token, &out);
  AddIfSet("energy/watts", observed.power_w, &out);
  if (p.kernel_hw_ms.has_value()) {
    out.push_back({p.hw_simulated ? "phase_ms/kernel_hw_simulated" : "phase_ms/kernel_hw",
                   static_cast<float>(*p.kernel_hw_ms)});
  }
  return out;
}

std::vector<metrics::Scalar> EvalScalars(const training::EvalReport& report) {
  return {{"loss/val", static_cast<float>(report.loss)},
          {"loss/val_perplexity", static_cast<float>(report.perplexity)}};
}

}  // namespace anerd::sessions
