// The engine against an independent PyTorch implementation (tests/training/qwen3_reference.py,
// plain torch in float64, run with Debian's /usr/bin/python3): a Qwen3-shaped config (rotate-half
// RoPE with theta 1e6, QK-norm, norm eps 1e-6, untied lm_head, GQA, head_dim != dim/heads) and a
// llama2.c-style one (interleaved, theta 1e4, tied, residual_scale 0.5) from the same weights:
// the loss and every parameter group's gradient at weights whose norms are not 1, then the losses
// of four AdamW steps of the Trainer (CPU backend, fp32 numerics; and the Qwen3 config on ane-sim
// in ane numerics, with the fp16 tolerance). The kernels' inputs and outputs are fp16 even in fp32
// numerics (activations are staged as fp16), so gradients agree to ~1e-3 (relative L2 per group;
// 5e-3 allowed), losses to ~1e-5 relative (1e-4 allowed) and after four AdamW steps to ~1e-4
// (5e-4 allowed); a wrong pairing, theta, norm or classifier is off by O(1). Skips when PyTorch
// is not installed.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fp16.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/backend/ane/ane_backend.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/training/data.h"
#include "server/training/model.h"
#include "server/training/trainer.h"

namespace anerd::training {
namespace {

constexpr char kQwen3[] =
    "dim=32,hidden=48,layers=2,heads=4,kv_heads=2,head_dim=16,vocab=64,seq=16,rope_style=half,"
    "rope_theta=1000000,qk_norm=1,norm_eps=1e-6,tied=0";
constexpr char kLlama[] =
    "dim=32,hidden=48,layers=2,heads=4,kv_heads=2,vocab=64,seq=16,residual_scale=0.5";
constexpr int kSteps = 4;
constexpr double kLr = 3e-3;

// Debian's interpreter has python3-torch; a pyenv python3 first on PATH would not.
std::string Python() {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    if (std::system(absl::StrCat(py, " -c 'import torch, numpy' >/dev/null 2>&1").c_str()) == 0) {
      return py;
    }
  }
  return "";
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::path(ANERD_BINARY_DIR) /
            absl::StrCat("torch_reference_test_", getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->line());
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Deterministic values in [-1, 1).
double Uniform(uint64_t* s) {
  *s = SplitMix64(*s);
  return static_cast<double>(*s >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

void WriteFloats(const std::string& path, const std::vector<float>& v) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<double> ReadDoubles(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::vector<double> v(static_cast<size_t>(f.tellg()) / sizeof(double));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), v.size() * sizeof(double));
  return v;
}

// Random tokens < vocab, enough for kSteps windows.
std::string WriteTokens(const TempDir& dir, const ModelConfig& c) {
  std::vector<uint16_t> tokens(c.seq * (kSteps + 2) + 1);
  uint64_t s = 17;
  for (uint16_t& t : tokens) t = static_cast<uint16_t>((s = SplitMix64(s)) % c.vocab);
  const std::string path = dir / "tokens.bin";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 2);
  return path;
}

// Runs the reference; returns its JSON ({"loss0", "losses"}) and fills *grads.
nlohmann::json RunReference(const std::string& py, const TempDir& dir, const ModelConfig& c,
                            double alpha, const std::string& params, const std::string& tokens,
                            int steps, std::vector<double>* grads) {
  const std::string out = dir / "out.json", gpath = dir / "grads.bin";
  const std::string cmd = absl::StrFormat(
      "%s %s/tests/training/qwen3_reference.py --config '%s' --params %s --tokens %s --grads %s "
      "--steps %d --lr %.17g --alpha %.17g > %s",
      py, ANERD_SOURCE_DIR, ConfigToString(c), params, tokens, gpath, steps, kLr, alpha, out);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  *grads = ReadDoubles(gpath);
  std::ifstream f(out);
  return nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
}

TrainSpec Spec(const ModelConfig& c, const std::string& tokens, const std::string& numerics) {
  TrainSpec s;
  s.model = c;
  s.data_path = tokens;
  s.data_format = "tokens";
  s.steps = kSteps;
  s.lr = kLr;
  s.min_lr = 0;
  s.schedule = "constant";
  s.warmup = 0;
  s.clip = 0;
  s.loss_scale = "1";
  s.numerics = numerics;
  s.sampling = "sequential";
  s.seed = 3;
  return s;
}

class TorchReferenceTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TorchReferenceTest, LossAndGradientsMatch) {
  const std::string py = Python();
  if (py.empty())
    GTEST_SKIP() << "PyTorch is not installed (Debian: apt-get install python3-torch)";
  TempDir dir;
  const ModelConfig c = *ParseCustomConfig(GetParam());
  const std::string tokens_path = WriteTokens(dir, c);
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto model = Model::Create(c, c.residual_scale, backend::NumericsMode::kFp32, &cpu);
  ASSERT_TRUE(model.ok()) << model.status();
  const ParamLayout& lay = (*model)->layout();
  std::vector<float> params(lay.total());
  InitParams(c, 11, params.data());
  uint64_t rng = 5;
  for (const ParamGroup& g : lay.groups()) {
    for (int64_t i = 0; i < g.size; ++i) {
      float& w = params[g.offset + i];
      if (!g.decay) w = static_cast<float>(1.0 + 0.3 * Uniform(&rng));  // norms ≠ 1
      if (g.name == "embed" || g.name == "lm_head") w *= 25.0f;         // logits not flat
      w = RoundToHalf(w);  // staged weights are fp16 (exact in fp32 numerics' staging)
    }
  }
  WriteFloats(dir / "params.bin", params);
  std::ifstream tf(tokens_path, std::ios::binary);
  std::vector<uint16_t> file_tokens(c.seq + 1);
  tf.read(reinterpret_cast<char*>(file_tokens.data()), file_tokens.size() * 2);
  const std::vector<uint32_t> tokens(file_tokens.begin(), file_tokens.end());

  std::vector<float> grads(lay.total(), 0.0f);
  PhaseTimes times;
  (*model)->StageWeights(params.data(), &times);
  auto loss = (*model)->ForwardBackward(params.data(), tokens.data(), tokens.data() + 1, 1.0f,
                                        grads.data(), &times);
  ASSERT_TRUE(loss.ok()) << loss.status();
  std::vector<double> ref_grads;
  const nlohmann::json ref =
      RunReference(py, dir, c, c.residual_scale, dir / "params.bin", tokens_path, 0, &ref_grads);
  ASSERT_TRUE(ref.is_object()) << "no JSON from the reference";
  ASSERT_EQ(ref_grads.size(), grads.size());
  EXPECT_NEAR(*loss, ref["loss0"].get<double>(), 1e-4 * *loss);
  for (const ParamGroup& g : lay.groups()) {
    double err = 0, norm = 0;
    for (int64_t i = g.offset; i < g.offset + g.size; ++i) {
      err += (grads[i] - ref_grads[i]) * (grads[i] - ref_grads[i]);
      norm += ref_grads[i] * ref_grads[i];
    }
    EXPECT_GT(norm, 0) << g.name;
    EXPECT_LT(std::sqrt(err), 5e-3 * std::sqrt(norm) + 1e-9)
        << g.name << ": relative L2 error " << std::sqrt(err / norm);
  }
}

// Four AdamW steps of the Trainer from its own initial weights against torch.optim.AdamW.
TEST_P(TorchReferenceTest, TrainingLossesMatchStepByStep) {
  const std::string py = Python();
  if (py.empty())
    GTEST_SKIP() << "PyTorch is not installed (Debian: apt-get install python3-torch)";
  TempDir dir;
  const ModelConfig c = *ParseCustomConfig(GetParam());
  const std::string tokens = WriteTokens(dir, c);
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto t = Trainer::Create(Spec(c, tokens, "fp32"), &cpu);
  ASSERT_TRUE(t.ok()) << t.status();
  WriteFloats(dir / "init.bin", (*t)->params());
  std::vector<double> unused;
  const nlohmann::json ref =
      RunReference(py, dir, c, c.residual_scale, dir / "init.bin", tokens, kSteps, &unused);
  ASSERT_TRUE(ref.is_object()) << "no JSON from the reference";
  for (int i = 0; i < kSteps; ++i) {
    auto r = (*t)->Step();
    ASSERT_TRUE(r.ok()) << r.status();
    const double want = ref["losses"][i].get<double>();
    EXPECT_NEAR(r->loss, want, 5e-4 * want) << "step " << i + 1;
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, TorchReferenceTest, ::testing::Values(kQwen3, kLlama),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.index == 0 ? "qwen3" : "llama");
                         });

// The Qwen3 kernels under ane-sim's rules (the lowering and the strict simulator) in ane numerics
// (fp16 on the kernels): the same losses within fp16's tolerance.
TEST(TorchReference, Qwen3TrainsOnAneSim) {
  const std::string py = Python();
  if (py.empty())
    GTEST_SKIP() << "PyTorch is not installed (Debian: apt-get install python3-torch)";
  TempDir dir;
  const ModelConfig c = *ParseCustomConfig(kQwen3);
  const std::string tokens = WriteTokens(dir, c);
  backend::ane::AneBackend sim(
      std::shared_ptr<backend::ane::AneDevice>(backend::ane::CreateSimDevice()),
      backend::ane::AneBackendOptions{});
  auto t = Trainer::Create(Spec(c, tokens, "ane"), &sim);
  ASSERT_TRUE(t.ok()) << t.status();
  WriteFloats(dir / "init.bin", (*t)->params());
  std::vector<double> unused;
  const nlohmann::json ref =
      RunReference(py, dir, c, 1.0, dir / "init.bin", tokens, kSteps, &unused);
  ASSERT_TRUE(ref.is_object()) << "no JSON from the reference";
  for (int i = 0; i < kSteps; ++i) {
    auto r = (*t)->Step();
    ASSERT_TRUE(r.ok()) << r.status();
    const double want = ref["losses"][i].get<double>();
    EXPECT_NEAR(r->loss, want, 5e-3 * want) << "step " << i + 1;
  }
}

}  // namespace
}  // namespace anerd::training
