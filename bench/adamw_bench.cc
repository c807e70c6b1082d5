// bench/adamw_bench: the training step's AdamW (server/training/adamw.cc) over a model's parameter
// count against the memory-traffic bound of the same bytes, measured in the same run. Not a test.
//
//   adamw_bench [--model stories110m] [--reps 7] [--threads 2]
//
// AdamW reads w, g, m, v and writes w, m, v: 28 bytes per parameter. The reference ("traffic")
// pass moves exactly those bytes with one add per array (w += g, m += g, v += g), so its time is
// what the memory system needs for the update; the ratio adamw / traffic is the figure of issue
// 22 (target ≤ 1.4). The compiler-vectorised portable path (the code before the AVX2 path) and a
// STREAM triad (a = b + s·c, counted as 12 bytes per element as STREAM does) are reported beside
// it. Every pass splits the arrays in equal contiguous parts over `threads` threads, as the
// trainer does; the three kinds are interleaved per repetition so machine drift hits all alike.
// Prints one JSON line.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include "bench/bench_args.h"
#include "server/training/config.h"
#include "server/training/cpu_ops.h"
#include "server/training/model.h"

namespace {

using anerd::bench::Flag;
using anerd::bench::Median;

// Runs fn(begin, end) over [0, n) in `threads` contiguous parts; returns the wall time in ms.
double Timed(int threads, int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    pool.emplace_back([&fn, t, threads, n] { fn(n * t / threads, n * (t + 1) / threads); });
  }
  fn(0, n / threads);
  for (std::thread& th : pool) th.join();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace anerd::training;
  const std::string model = Flag(argc, argv, "--model", "stories110m");
  const int reps = std::max(1, std::atoi(Flag(argc, argv, "--reps", "7")));
  const int threads = std::max(1, std::atoi(Flag(argc, argv, "--threads", "2")));
  auto config = ModelConfigByName(model);
  if (!config.ok()) config = ParseCustomConfig(model);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 2;
  }
  const int64_t n = ParamLayout(*config).total();
  std::vector<float> w(n, 0.01f), g(n, 1e-3f), m(n, 0.0f), v(n, 0.0f);
  AdamWParams p;
  p.lr = 3e-4, p.weight_decay = 0.1, p.grad_mult = 1;
  std::vector<double> adamw, portable, traffic, triad;
  for (int r = 0; r < reps + 1; ++r) {  // the first repetition warms up (page faults, caches)
    p.t = r + 1;
    const double a = Timed(threads, n, [&](int64_t b, int64_t e) {
      AdamW(w.data() + b, g.data() + b, m.data() + b, v.data() + b, e - b, p);
    });
    const double pp = Timed(threads, n, [&](int64_t b, int64_t e) {
      AdamWPortable(w.data() + b, g.data() + b, m.data() + b, v.data() + b, e - b, p);
    });
    const double t = Timed(threads, n, [&](int64_t b, int64_t e) {
      float *pw = w.data(), *pm = m.data(), *pv = v.data();
      const float* pg = g.data();
      for (int64_t i = b; i < e; ++i) {
        const float gi = pg[i];
        pw[i] += gi;
        pm[i] += gi;
        pv[i] += gi;
      }
    });
    const double s = Timed(threads, n, [&](int64_t b, int64_t e) {
      float* pa = w.data();
      const float *pb = m.data(), *pc = v.data();
      for (int64_t i = b; i < e; ++i) pa[i] = pb[i] + 0.5f * pc[i];
    });
    if (r == 0) continue;
    adamw.push_back(a);
    portable.push_back(pp);
    traffic.push_back(t);
    triad.push_back(s);
  }
  const double bytes = 28.0 * static_cast<double>(n);
  const double triad_gbs = 12.0 * static_cast<double>(n) / (Median(triad) * 1e6);
  std::printf(
      "{\"type\":\"adamw\",\"model\":\"%s\",\"params\":%lld,\"threads\":%d,\"reps\":%d,"
      "\"adamw_ms\":%.1f,\"portable_ms\":%.1f,\"traffic_ms\":%.1f,\"traffic_gbs\":%.1f,"
      "\"triad_gbs\":%.1f,\"triad_bound_ms\":%.1f,\"ratio\":%.2f,\"portable_ratio\":%.2f}\n",
      model.c_str(), static_cast<long long>(n), threads, reps, Median(adamw), Median(portable),
      Median(traffic), bytes / (Median(traffic) * 1e6), triad_gbs, bytes / (triad_gbs * 1e6),
      Median(adamw) / Median(traffic), Median(portable) / Median(traffic));
  return 0;
}
