// Small MIL kernels shared by the engine, service and integration tests, with independent
// reference results.
#ifndef ANERD_TESTS_TESTING_KERNEL_FIXTURES_H_
#define ANERD_TESTS_TESTING_KERNEL_FIXTURES_H_

#include <string>
#include <vector>

namespace anerd::testing {

// examples/kernels/conv1x1: y[1,32,1,256] = W[32,64] x[1,64,1,256], W stored in weights/w.bin.
std::string ConvMilText();
std::string ConvWeightBytes();  // the whole weights/w.bin file
// W as floats (read back from the blob, fp16 values), row-major [32][64].
std::vector<float> ConvWeights();
inline constexpr int kConvIn = 64, kConvOut = 32, kConvSeq = 256;

// A weight-free kernel: y = x * scale + x (scale a const), x fp32[1, C, 1, 8]. Distinct `scale`
// values give distinct programs (and kernel ids).
std::string ScaleMilText(int channels, double scale);

// Reference conv in double precision: out[o*S + t] = sum_i W[o][i] x[i*S + t].
std::vector<double> ReferenceConv(const std::vector<float>& x);

}  // namespace anerd::testing

#endif  // ANERD_TESTS_TESTING_KERNEL_FIXTURES_H_
