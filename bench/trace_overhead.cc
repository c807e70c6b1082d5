// Tracing overhead: two trainers of the same spec on the CPU backend, one recording measured spans
// (training/span_log.h) and one not, stepped alternately so machine drift hits both alike. Prints
// the median step time of each and their ratio (target: traced ≤ 1.02 × untraced). Not a test.
//
//   trace_overhead --model stories15m --data FILE [--steps 20] [--warmup-steps 2]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_args.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/training/span_log.h"
#include "server/training/trainer.h"

namespace {

using anerd::bench::Flag;
using anerd::bench::Median;

}  // namespace

int main(int argc, char** argv) {
  using namespace anerd::training;
  const std::string model = Flag(argc, argv, "--model", "stories15m");
  const int steps = std::atoi(Flag(argc, argv, "--steps", "20"));
  const int warm = std::atoi(Flag(argc, argv, "--warmup-steps", "2"));
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
  spec.numerics = "fp32";
  spec.loss_scale = "1";
  spec.warmup = 0;
  anerd::backend::cpu::CpuBackend cpu(anerd::backend::cpu::CpuBackendOptions{});
  auto plain = Trainer::Create(spec, &cpu);
  auto traced = Trainer::Create(spec, &cpu);
  if (!plain.ok() || !traced.ok()) {
    std::fprintf(stderr, "%s\n",
                 (plain.ok() ? traced.status() : plain.status()).ToString().c_str());
    return 1;
  }
  SpanLog spans;
  (*traced)->SetSpanLog(&spans);
  std::vector<double> off, on;
  for (int i = 0; i < steps + warm; ++i) {
    auto a = (*plain)->Step();
    auto b = (*traced)->Step();
    if (!a.ok() || !b.ok()) {
      std::fprintf(stderr, "%s\n", (a.ok() ? b.status() : a.status()).ToString().c_str());
      return 1;
    }
    if (i < warm) continue;
    off.push_back(a->step_ms);
    on.push_back(b->step_ms);
  }
  const size_t per_step = spans.Spans(1, 1, SIZE_MAX).size();
  std::printf(
      "{\"model\":\"%s\",\"steps\":%d,\"untraced_median_ms\":%.2f,\"traced_median_ms\":%.2f,"
      "\"ratio\":%.4f,\"spans_per_step\":%zu}\n",
      model.c_str(), steps, Median(off), Median(on), Median(on) / Median(off), per_step);
  return 0;
}
