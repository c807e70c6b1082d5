// anerd's half of bench/train_vs_torch: trains a model shape from scratch on the CPU backend (fp32
// numerics, seq = the config's, one sequence per step, AdamW) and prints one JSON line per step
// plus a summary line with the median ms/step, the median phase breakdown and the process's peak
// resident set (getrusage, MiB: the trainer, its backend and the data, as in a session). Not a
// test.
//
//   train_vs_torch_anerd --model stories15m --steps 8 --data FILE [--warmup-steps 2]
//                        [--numerics fp32] [--blas-threads N]
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_args.h"
#include "server/backend/cpu/cpu_backend.h"
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
  std::vector<double> ms, kernel, io, rms, elem, cls, dw, optim;
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
        "\"optim\":%.1f,\"tflops\":%.3f}\n",
        static_cast<long long>(r->step), r->loss, r->step_ms, p.kernel_ms, p.io_ms, p.rms_ms,
        p.elem_ms, p.cls_ms, p.dw_wait_ms, p.optim_ms, r->tflops);
    std::fflush(stdout);
    if (i < warm) continue;
    ms.push_back(r->step_ms);
    kernel.push_back(p.kernel_ms);
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
      "\"median_ms\":%.1f,\"kernel\":%.1f,\"io\":%.1f,\"rms\":%.1f,\"elem\":%.1f,"
      "\"cls\":%.1f,\"dw_wait\":%.1f,\"optim\":%.1f,\"gflop_per_step\":%.1f,"
      "\"numerics\":\"%s\",\"peak_rss_mib\":%.0f}\n",
      model.c_str(), steps, Median(ms), Median(kernel), Median(io), Median(rms), Median(elem),
      Median(cls), Median(dw), Median(optim), flops / 1e9, spec.numerics.c_str(), PeakRssMib());
  return 0;
}
