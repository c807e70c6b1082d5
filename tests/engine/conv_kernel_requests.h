// The compile requests, inputs and output check of the kernel-manager tests
// (tests/testing/kernel_fixtures.h's conv and scale kernels as engine requests). Test-only.
#ifndef ANERD_TESTS_ENGINE_CONV_KERNEL_REQUESTS_H_
#define ANERD_TESTS_ENGINE_CONV_KERNEL_REQUESTS_H_

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/fp16.h"
#include "gtest/gtest.h"
#include "server/engine/kernel_manager.h"
#include "tests/testing/kernel_fixtures.h"

namespace anerd::engine::kernel_test {

// The conv1x1 kernel with its weight file.
inline KernelCompileRequest ConvRequest() {
  KernelCompileRequest r;
  r.name = "conv";
  r.mil_text = anerd::testing::ConvMilText();
  r.weight_files = {{"weights/w.bin", anerd::testing::ConvWeightBytes()}};
  return r;
}

// y = scale * x on 4 channels, no weights.
inline KernelCompileRequest ScaleRequest(double scale) {
  KernelCompileRequest r;
  r.mil_text = anerd::testing::ScaleMilText(4, scale);
  return r;
}

// A conv input of fp16-representable values in [-1, 1], from `seed`.
inline std::vector<float> ConvInput(int seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(anerd::testing::kConvIn * anerd::testing::kConvSeq);
  for (float& v : x) v = RoundToHalf(u(rng));
  return x;
}

inline std::vector<backend::NamedTensor> ConvInputs(const std::vector<float>& x) {
  return {
      {"x", backend::Tensor::FromFloats(
                mil::DType::kFp16, {1, anerd::testing::kConvIn, 1, anerd::testing::kConvSeq}, x)}};
}

// The one output of the conv kernel matches the double-precision reference for input `x`.
inline void ExpectConvOutputMatches(const KernelEvalResult& result, const std::vector<float>& x) {
  ASSERT_EQ(result.outputs.size(), 1u);
  const std::vector<float> y = result.outputs[0].tensor.ToFloats();
  const std::vector<double> ref = anerd::testing::ReferenceConv(x);
  ASSERT_EQ(y.size(), ref.size());
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], ref[i], 2e-3 + 2e-3 * std::fabs(ref[i])) << i;
  }
}

}  // namespace anerd::engine::kernel_test

#endif  // ANERD_TESTS_ENGINE_CONV_KERNEL_REQUESTS_H_
