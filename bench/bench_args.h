// Small helpers the plain (non-Google-Benchmark) bench binaries share: "--name value" and bare
// flags and the median of a sample. Header-only; not for production code.
#ifndef ANERD_BENCH_BENCH_ARGS_H_
#define ANERD_BENCH_BENCH_ARGS_H_

#include <algorithm>
#include <cstring>
#include <vector>

namespace anerd::bench {

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The value after `name` in argv, or `def`.
inline const char* Flag(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

// True when the bare flag `name` is present.
inline bool HasFlag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return true;
  }
  return false;
}

}  // namespace anerd::bench

#endif  // ANERD_BENCH_BENCH_ARGS_H_
