// The same checks as ane_backend_test.cc, on the real ANE ("ane" backend) when the registry offers
// it — i.e. on a Mac where AppleNeuralEngine.framework loads and the canary matches the CPU.
// Everywhere else every test skips with the registry's reason. Run on a Mac via
// scripts/ci-macos.sh; results there are what "verified on hardware" in the README means.
#include <cmath>
#include <memory>
#include <random>

#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "gtest/gtest.h"
#include "server/backend/ane/ane_backend.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/registry.h"
#include "server/training/kernels.h"

namespace anerd::backend {
namespace {

class AneHardware : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_unique<BackendRegistry>(RegistryOptions{});
    ane_ = registry_->Find("ane");
    if (ane_ == nullptr) {
      std::string why = "no 'ane' backend";
      for (const UnavailableBackend& u : registry_->unavailable()) {
        if (u.name == "ane") why = u.reason;
      }
      GTEST_SKIP() << "no Apple Neural Engine here: " << why;
    }
  }
  // Compiles `program` on the ANE and the CPU backend, runs both on the same inputs in [-1, 1)
  // and compares every output with fp16 tolerance scaled by `tol`.
  void ExpectMatchesCpu(const mil::VerifiedProgram& program, double tol = 1) {
    cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
    auto a = ane_->Compile(program, CompileOptions{});
    ASSERT_TRUE(a.ok()) << a.status();
    auto b = cpu.Compile(program, CompileOptions{});
    ASSERT_TRUE(b.ok()) << b.status();
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<NamedTensor> in;
    for (const TensorSignature& s : (*a)->inputs()) {
      std::vector<float> v(s.type.NumElements());
      for (float& x : v) x = mil::IsInteger(s.type.dtype) ? static_cast<float>(rng() % 2) : u(rng);
      in.push_back({s.name, Tensor::FromFloats(s.type.dtype, s.type.shape, v)});
    }
    auto ra = (*a)->Run(in);
    ASSERT_TRUE(ra.ok()) << ra.status();
    auto rb = (*b)->Run(in);
    ASSERT_TRUE(rb.ok()) << rb.status();
    for (size_t i = 0; i < ra->outputs.size(); ++i) {
      const auto x = ra->outputs[i].tensor.ToDoubles(), y = rb->outputs[i].tensor.ToDoubles();
      int bad = 0;
      for (size_t j = 0; j < x.size() && bad < 5; ++j) {
        if (std::fabs(x[j] - y[j]) > tol * (1e-2 + 1e-2 * std::fabs(y[j]))) {
          ADD_FAILURE() << ra->outputs[i].name << "[" << j << "]: ane " << x[j] << " cpu " << y[j];
          ++bad;
        }
      }
    }
  }
  std::unique_ptr<BackendRegistry> registry_;
  Backend* ane_ = nullptr;
};

mil::VerifiedProgram Verify(const std::string& text) {
  auto parsed = mil::ParseProgram(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  auto program = mil::VerifyProgram(*std::move(parsed));
  EXPECT_TRUE(program.ok()) << program.status();
  return *std::move(program);
}

TEST_F(AneHardware, IsPreferredAndReportsItsBudget) {
  EXPECT_EQ(registry_->names().front(), "ane");
  EXPECT_GT(ane_->Describe().capabilities.compile_budget, 0);
  cpu::CpuBackend cpu(cpu::CpuBackendOptions{});
  EXPECT_TRUE(ane::RunCanary(*ane_, cpu).ok());
}

TEST_F(AneHardware, PackedMultiInputProgramMatchesCpu) {
  ExpectMatchesCpu(
      Verify("program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 64, 1, 64]> a, "
             "tensor<fp16, [1, 64, 1, 64]> b) {\n"
             "        tensor<fp16, [1, 64, 1, 64]> y = add(x = a, y = b)[name = string(\"y\")];\n"
             "        tensor<fp16, [1, 64, 1, 64]> z = mul(x = a, y = b)[name = string(\"z\")];\n"
             "    } -> (y, z);\n}\n"));
}

TEST_F(AneHardware, MaskedAttentionMatchesCpu) {
  ExpectMatchesCpu(Verify("program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4, 64, 64]> q, "
                          "tensor<fp16, [1, 4, 64, 64]> k, tensor<fp16, [1, 4, 64, 64]> v, "
                          "tensor<fp16, [1, 1, 64, 64]> m) {\n"
                          "        tensor<fp16, [1, 4, 64, 64]> y = "
                          "scaled_dot_product_attention(query = q, key = k, "
                          "value = v, attn_mask = m)[name = string(\"y\")];\n"
                          "    } -> (y);\n}\n"),
                   2);
}

TEST_F(AneHardware, TrainingKernelsMatchCpu) {
  training::ModelShape shape;
  shape.dim = 64;
  shape.hidden = 128;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 16;
  shape.seq = 64;
  shape.layers = 1;
  shape.vocab = 128;
  auto kernels = training::AllKernels(shape);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  auto constants = training::KernelConstants(shape);
  ASSERT_TRUE(constants.ok()) << constants.status();
  for (training::Kernel& k : *kernels) {
    SCOPED_TRACE(k.layout.kernel);
    mil::WeightFiles w;
    for (const auto& [path, bytes] : constants->files()) ASSERT_TRUE(w.Add(path, *bytes).ok());
    auto program = mil::VerifyProgram(k.program, std::move(w));
    ASSERT_TRUE(program.ok()) << program.status();
    ExpectMatchesCpu(*program, 4);
  }
}

}  // namespace
}  // namespace anerd::backend
