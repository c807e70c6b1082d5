#include "tests/testing/kernel_fixtures.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fp16.h"
#include "tests/testing/process_harness.h"

namespace anerd::testing {

std::string ConvMilText() {
  return ReadFile(std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil");
}

std::string ConvWeightBytes() {
  return ReadFile(std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/weights/w.bin");
}

std::vector<float> ConvWeights() {
  const std::string blob = ConvWeightBytes();
  std::vector<float> w(kConvOut * kConvIn);
  for (size_t i = 0; i < w.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, blob.data() + 128 + 2 * i, 2);  // data follows the 64+64-byte headers
    w[i] = HalfToFloat(h);
  }
  return w;
}

std::string ScaleMilText(int channels, double scale) {
  return absl::StrFormat(R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [1, %d, 1, 8]> x) {
        fp32 s = const()[name = string("s"), val = fp32(%.17g)];
        tensor<fp32, [1, %d, 1, 8]> xs = mul(x = x, y = s)[name = string("xs")];
        tensor<fp32, [1, %d, 1, 8]> y = add(x = xs, y = x)[name = string("y")];
    } -> (y);
}
)",
                         channels, scale, channels, channels);
}

std::vector<double> ReferenceConv(const std::vector<float>& x) {
  const std::vector<float> w = ConvWeights();
  std::vector<double> out(kConvOut * kConvSeq, 0.0);
  for (int o = 0; o < kConvOut; ++o) {
    for (int i = 0; i < kConvIn; ++i) {
      for (int t = 0; t < kConvSeq; ++t) {
        out[o * kConvSeq + t] += static_cast<double>(w[o * kConvIn + i]) * x[i * kConvSeq + t];
      }
    }
  }
  return out;
}

}  // namespace anerd::testing
