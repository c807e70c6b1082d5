// Helpers of the generation tests: Debian's python3 with numpy, per-test temp dirs, random
// parameters, JSON output of the reference script.
#ifndef ANERD_TESTS_GENERATION_GENERATION_TEST_UTIL_H_
#define ANERD_TESTS_GENERATION_GENERATION_TEST_UTIL_H_

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/training/config.h"
#include "server/training/data.h"
#include "server/training/model.h"

namespace anerd::generation::testing {

// Debian's interpreter has numpy; a pyenv python3 first on PATH may not. "" when none has it.
inline std::string NumpyPython() {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    if (std::system(absl::StrCat(py, " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0) return py;
  }
  return "";
}

inline std::string ReferenceScript() {
  return absl::StrCat(ANERD_SOURCE_DIR, "/tests/generation/runc_reference.py");
}

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        std::filesystem::path(ANERD_BINARY_DIR) /
        absl::StrCat("generation_test_", getpid(), "_", info->test_suite_name(), "_", info->name());
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Deterministic values in [-1, 1).
inline double Uniform(uint64_t* s) {
  *s = training::SplitMix64(*s);
  return static_cast<double>(*s >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

template <typename T>
void WriteRaw(const std::string& path, const std::vector<T>& v) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Parameters in ParamLayout order whose logits are O(1) and well separated: matrices
// U(-1,1)·1.7/sqrt(fan_in), norm weights 1 + 0.3·U (not 1, so a skipped norm weight shows),
// embedding and lm_head U(-1,1).
inline std::vector<float> RandomParams(const training::ModelConfig& c, uint64_t seed) {
  const training::ParamLayout layout(c);
  std::vector<float> p(layout.total());
  uint64_t s = seed;
  for (const training::ParamGroup& g : layout.groups()) {
    const bool norm = absl::StrContains(g.name, "rms") || absl::StrContains(g.name, "norm");
    const bool table = g.name == "embed" || g.name == "lm_head";
    double fan_in = c.dim;
    if (absl::EndsWith(g.name, ".wo")) fan_in = static_cast<double>(c.q_dim());
    if (absl::EndsWith(g.name, ".w2")) fan_in = c.hidden;
    for (int64_t i = 0; i < g.size; ++i) {
      const double u = Uniform(&s);
      p[g.offset + i] = static_cast<float>(norm    ? 1 + 0.3 * u
                                           : table ? u
                                                   : u * 1.7 / std::sqrt(fan_in));
    }
  }
  return p;
}

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
}

}  // namespace anerd::generation::testing

#endif  // ANERD_TESTS_GENERATION_GENERATION_TEST_UTIL_H_
