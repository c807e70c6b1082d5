// anerd's half of bench/train_vs_torch: trains a model shape from scratch on the CPU backend (fp32
// numerics, seq = the config's, one sequence per step, AdamW) and prints one JSON line per step
// plus a summary line with the median ms/step, the median phase breakdown and the process's peak
// resident set (getrusage, MiB: the trainer, its backend and the data, as in a session), the
// kernel time split into forward and backward kernels, and the CPU backend's pool width. Not a
// test. --blas-threads N (N > 0) sets OpenBLAS's thread count before the backend reads it, which
// makes the pool N wide (at most 2; parallel.h ConfigureBlasThreading); 0 keeps OpenBLAS's own
// count (the cores, or OPENBLAS_NUM_THREADS), as the daemon does. --spans records the session's
// trace spans (span_log.h) and adds, per step, the forward and backward walls and the dW worker's
// busy time (its "dW ..." tasks) to the step lines and their medians to the summary.
//
//   train_vs_torch_anerd --model stories15m --steps 8 --data FILE [--warmup-steps 2]
//                        [--numerics fp32] [--blas-threads N] [--spans]
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_args.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/training/span_log.h"
#include "server/training/trainer.h"

#if !defined(ANERD_BLAS_ACCELERATE)
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

using anerd::bench::Flag;
using anerd::bench::Median;

// Peak resident set of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS).
double PeakRssMib() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
#if defined(__APPLE__)
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
#else
  return static_cast<double>(u.ru_maxrss) / 1024.0;
#endif
}

// Walls of the step's forward and backward passes and the dW worker's busy time, in ms.
struct StepSpans {
  double fwd = 0, bwd = 0, dw_busy = 0;
};

StepSpans SumSpans(const anerd::training::SpanLog& log, int64_t step) {
  StepSpans s;
  for (const anerd::training::TraceSpan& span : log.Spans(step, step, size_t{1} << 16)) {
    const double ms = static_cast<double>(span.duration_ns) / 1e6;
    if (std::strcmp(span.name, "forward") == 0) s.fwd += ms;
    if (std::strcmp(span.name, "backward") == 0) s.bwd += ms;
    if (std::strncmp(span.name, "dW ", 3) == 0) s.dw_busy += ms;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace anerd::training;
  const std::string model = Flag(argc, argv, "--model", "stories15m");
  const int steps = std::atoi(Flag(argc, argv, "--steps", "8"));
  const int warm = std::atoi(Flag(argc, argv, "--warmup-steps", "2"));
  const int threads = std::atoi(Flag(argc, argv, "--blas-threads", "0"));
#if !defined(ANERD_BLAS_ACCELERATE)
  if (threads > 0) openblas_set_num_threads(threads);
#endif
  auto config = ModelConfigByName(model);
  if (!config.ok()) config = ParseCustomConfig(model);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 2;
  }
  TrainSpec spec;
  spec.model = *config;
  spec.data_path = Flag(argc, argv, "--data", "");
  spec.steps = steps + warm;
  spec.numerics = Flag(argc, argv, "--numerics", "fp32");
  spec.loss_scale = "1";
  spec.warmup = 0;
  anerd::backend::cpu::CpuBackend cpu(anerd::backend::cpu::CpuBackendOptions{});
  auto trainer = Trainer::Create(spec, &cpu);
  if (!trainer.ok()) {
    std::fprintf(stderr, "%s\n", trainer.status().ToString().c_str());
    return 1;
  }
  const bool with_spans = anerd::bench::HasFlag(argc, argv, "--spans");
  SpanLog spans;
  if (with_spans) (*trainer)->SetSpanLog(&spans);
  std::vector<double> ms, kernel, kernel_fwd, kernel_bwd, io, rms, elem, cls, dw, optim;
  std::vector<double> fwd_wall, bwd_wall, dw_busy;
  double flops = 0;
  for (int i = 0; i < steps + warm; ++i) {
    auto r = (*trainer)->Step();
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    const PhaseTimes& p = r->phases;
    std::printf(
        "{\"type\":\"step\",\"step\":%lld,\"loss\":%.4f,\"ms\":%.1f,\"kernel\":%.1f,"
        "\"io\":%.1f,\"rms\":%.1f,\"elem\":%.1f,\"cls\":%.1f,\"dw_wait\":%.1f,"
        "\"optim\":%.1f,\"tflops\":%.3f",
        static_cast<long long>(r->step), r->loss, r->step_ms, p.kernel_ms, p.io_ms, p.rms_ms,
        p.elem_ms, p.cls_ms, p.dw_wait_ms, p.optim_ms, r->tflops);
    const StepSpans walls = with_spans ? SumSpans(spans, r->step) : StepSpans{};
    if (with_spans) {
      std::printf(",\"fwd_wall\":%.1f,\"bwd_wall\":%.1f,\"dw_busy\":%.1f", walls.fwd, walls.bwd,
                  walls.dw_busy);
    }
    std::printf("}\n");
    std::fflush(stdout);
    if (i < warm) continue;
    fwd_wall.push_back(walls.fwd);
    bwd_wall.push_back(walls.bwd);
    dw_busy.push_back(walls.dw_busy);
    ms.push_back(r->step_ms);
    kernel.push_back(p.kernel_ms);
    kernel_fwd.push_back(p.kernel_fwd_ms.value_or(0));
    kernel_bwd.push_back(p.kernel_bwd_ms.value_or(0));
    io.push_back(p.io_ms);
    rms.push_back(p.rms_ms);
    elem.push_back(p.elem_ms);
    cls.push_back(p.cls_ms);
    dw.push_back(p.dw_wait_ms);
    optim.push_back(p.optim_ms);
    flops = r->flops;
  }
  std::printf(
      "{\"type\":\"summary\",\"impl\":\"anerd\",\"model\":\"%s\",\"steps\":%d,"
      "\"median_ms\":%.1f,\"kernel\":%.1f,\"kernel_fwd\":%.1f,\"kernel_bwd\":%.1f,"
      "\"io\":%.1f,\"rms\":%.1f,\"elem\":%.1f,\"cls\":%.1f,\"dw_wait\":%.1f,\"optim\":%.1f,"
      "\"gflop_per_step\":%.1f,\"numerics\":\"%s\",\"peak_rss_mib\":%.0f,"
      "\"pool_threads\":%d",
      model.c_str(), steps, Median(ms), Median(kernel), Median(kernel_fwd), Median(kernel_bwd),
      Median(io), Median(rms), Median(elem), Median(cls), Median(dw), Median(optim), flops / 1e9,
      spec.numerics.c_str(), PeakRssMib(), anerd::backend::cpu::ConfigureBlasThreading());
  if (with_spans) {
    std::printf(",\"fwd_wall\":%.1f,\"bwd_wall\":%.1f,\"dw_busy\":%.1f", Median(fwd_wall),
                Median(bwd_wall), Median(dw_busy));
  }
  std::printf("}\n");
  return 0;
}
