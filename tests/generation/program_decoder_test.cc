// The program decoder (issue 20 item 2) on the cpu backend and on ane-sim: its greedy tokens over
// 72 steps equal the fp32 Decoder's, for a llama2.c-shaped and a Qwen3-shaped model (GQA,
// head_dim != dim/heads, rotate-half RoPE, QK-norm, untied lm_head, residual scale), with logits
// within fp16's bound; a bucket-padded prefill equals unpadded ones; one program per (kernel,
// width), shared by decoders; the programs pass the ANE rules checker after lowering; bad ids and
// context overflow fail as token_decoder.h says; MakeDecoder picks by backend name.
#include "server/generation/program_decoder.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/mil/ane_rules.h"
#include "common/mil/verifier.h"
#include "gtest/gtest.h"
#include "server/backend/ane/ane_backend.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/ane/ane_lowering.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/generation/decoder.h"
#include "server/generation/make_decoder.h"
#include "server/generation/sampler.h"
#include "tests/generation/generation_test_util.h"

namespace anerd::generation {
namespace {

using testing::RandomParams;
using training::ModelConfig;

constexpr char kLlama[] = "dim=64,hidden=96,layers=2,heads=4,kv_heads=2,vocab=96,seq=128";
constexpr char kQwen3[] =
    "dim=64,hidden=96,layers=2,heads=4,kv_heads=2,head_dim=32,vocab=96,seq=128,rope_style=half,"
    "rope_theta=1000000,qk_norm=1,norm_eps=1e-6,tied=0,residual_scale=0.7";

// Logits of the programs (fp16 weights and activations between ops, fp32 accumulation) against
// the fp32 Decoder's. fp16 keeps 11 significant bits: each rounding is within 2^-11 ≈ 4.9e-4
// relative; a logit here is a sum over D = 64 products of O(1) values after 2 layers of about 6
// rounded ops each, so an error of a few 1e-3 relative to logits of magnitude up to ~5 is expected.
// 0.05 absolute is that with a 2-3x margin, and well below the gaps between these models'
// top-two logits (checked by the equal greedy tokens).
constexpr double kFp16Tolerance = 0.05;

struct Fixture {
  ModelConfig config;
  std::shared_ptr<const std::vector<float>> params;
};

Fixture Make(const char* kv, uint64_t seed = 7) {
  absl::StatusOr<ModelConfig> c = training::ParseCustomConfig(kv);
  EXPECT_TRUE(c.ok()) << c.status();
  return {*c, std::make_shared<const std::vector<float>>(RandomParams(*c, seed))};
}

std::unique_ptr<backend::Backend> MakeBackend(const std::string& name) {
  if (name == "cpu")
    return std::make_unique<backend::cpu::CpuBackend>(backend::cpu::CpuBackendOptions{});
  return std::make_unique<backend::ane::AneBackend>(
      std::shared_ptr<backend::ane::AneDevice>(backend::ane::CreateSimDevice()),
      backend::ane::AneBackendOptions{});
}

std::shared_ptr<DecodeProgramSet> MakeSet(const Fixture& f, backend::Backend* b,
                                          DecodeProgramOptions options = {}) {
  auto set = DecodeProgramSet::Create(f.config, b, options);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *set : nullptr;
}

std::unique_ptr<ProgramDecoder> MakeProgramDecoder(const Fixture& f,
                                                   std::shared_ptr<DecodeProgramSet> set,
                                                   DecoderOptions options = {}) {
  auto d = ProgramDecoder::Create(std::move(set), f.params, options);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

std::vector<float> Copy(absl::StatusOr<absl::Span<const float>> logits) {
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? std::vector<float>(logits->begin(), logits->end()) : std::vector<float>();
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() && !a.empty() ? 0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  return m;
}

std::vector<int32_t> Prompt(int64_t n, int vocab) {
  std::vector<int32_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>((i * 37 + 11) % vocab);
  return p;
}

// Greedy decoding of `steps` tokens after `prompt`; the logits of every call in *logits.
std::vector<int32_t> Greedy(TokenDecoder* d, const std::vector<int32_t>& prompt, int steps,
                            std::vector<std::vector<float>>* logits) {
  std::vector<int32_t> out;
  logits->push_back(Copy(d->Prefill(prompt)));
  for (int i = 0; i < steps && !logits->back().empty(); ++i) {
    out.push_back(SampleArgmax(logits->back().data(), static_cast<int>(logits->back().size())));
    logits->push_back(Copy(d->Step(out.back())));
  }
  return out;
}

struct Param {
  const char* config;
  const char* backend;
};

class ProgramDecoderTest : public ::testing::TestWithParam<Param> {};

// The fp32 Decoder decodes greedily; the program decoder, fed the same tokens, gives logits within
// kFp16Tolerance at every step and picks the same token wherever fp16 can decide: where the fp32
// logits' top two are at least 2·kFp16Tolerance apart (closer ones are ties that the fp16
// rounding of either side may flip, after which free-running sequences part). At least 64 of the
// 96 steps must be decidable, so the comparison cannot pass empty.
TEST_P(ProgramDecoderTest, GreedyTokensEqualTheFp32Decoder) {
  const Fixture f = Make(GetParam().config);
  auto b = MakeBackend(GetParam().backend);
  auto pd = MakeProgramDecoder(f, MakeSet(f, b.get()));
  auto ref = Decoder::Create(f.config, f.params);
  ASSERT_TRUE(pd && ref.ok());
  const std::vector<int32_t> prompt = Prompt(20, f.config.vocab);  // bucket 32, 12 padded
  std::vector<float> want = Copy((*ref)->Prefill(prompt));
  std::vector<float> got = Copy(pd->Prefill(prompt));
  double worst = 0;
  int decidable = 0;
  for (int step = 0; step < 96 && !want.empty() && !got.empty(); ++step) {
    worst = std::max(worst, MaxAbsDiff(got, want));
    const int32_t token = SampleArgmax(want.data(), f.config.vocab);
    std::vector<float> sorted = want;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    if (sorted[0] - sorted[1] >= 2 * kFp16Tolerance) {
      ++decidable;
      EXPECT_EQ(SampleArgmax(got.data(), f.config.vocab), token) << "step " << step;
    }
    want = Copy((*ref)->Step(token));
    got = Copy(pd->Step(token));
  }
  EXPECT_GE(decidable, 64);
  EXPECT_LE(worst, kFp16Tolerance);
  EXPECT_GT(worst, 0) << "the programs are meant to compute in fp16";
  EXPECT_EQ(pd->position(), 20 + 96);
  // Two widths used (the 32 bucket and the decode lane), three programs each.
  EXPECT_EQ(pd->programs().programs_compiled(), 6);
  EXPECT_EQ(b->compiles_used(), 6);
}

// 48 positions padded into the 64 bucket give the logits of the same positions run unpadded (a
// 32 bucket, then a 16 lane, both full) and of the fp32 Decoder: padding never reaches real
// positions.
TEST_P(ProgramDecoderTest, BucketPaddedPrefillEqualsUnpadded) {
  const Fixture f = Make(GetParam().config);
  auto b = MakeBackend(GetParam().backend);
  auto set = MakeSet(f, b.get());
  auto padded = MakeProgramDecoder(f, set);
  auto unpadded = MakeProgramDecoder(f, set);
  ASSERT_TRUE(padded && unpadded);
  const std::vector<int32_t> prompt = Prompt(48, f.config.vocab);
  const std::vector<float> a = Copy(padded->Prefill(prompt));
  ASSERT_TRUE(unpadded->Prefill(absl::MakeConstSpan(prompt).subspan(0, 32)).ok());
  const std::vector<float> c = Copy(unpadded->Prefill(absl::MakeConstSpan(prompt).subspan(32)));
  // Per position the same fp16 operations; only the fp32 accumulation order of the GEMMs differs
  // between widths, which moves an fp16 result by one unit in the last place now and then (QK-norm
  // amplifies it): measured up to 0.01 here, within the fp16 bound. A padded position leaking
  // into a real one (attention over it, a cache entry written from it) moves logits by O(1).
  EXPECT_LE(MaxAbsDiff(a, c), kFp16Tolerance);
  auto ref = Decoder::Create(f.config, f.params);
  ASSERT_TRUE(ref.ok());
  EXPECT_LE(MaxAbsDiff(a, Copy((*ref)->Prefill(prompt))), kFp16Tolerance);
  // And both continue alike.
  EXPECT_LE(MaxAbsDiff(Copy(padded->Step(5)), Copy(unpadded->Step(5))), kFp16Tolerance);
}

// Every width compiles its three programs once; a second decoder on the same set and a prompt
// longer than the largest bucket (chunks of 256) compile nothing more.
TEST_P(ProgramDecoderTest, CompilesOneProgramPerKernelAndWidth) {
  const Fixture f = Make(GetParam().config);
  auto b = MakeBackend(GetParam().backend);
  auto set = MakeSet(f, b.get());
  DecoderOptions options;
  options.max_context = 640;
  auto d = MakeProgramDecoder(f, set, options);
  auto ref = Decoder::Create(f.config, f.params, options);
  ASSERT_TRUE(d && ref.ok());
  ASSERT_EQ(set->widths(), (std::vector<int64_t>{16, 32, 64, 128, 256}));
  int64_t want = 0;
  for (int64_t n : {5, 20, 40, 100, 200}) {  // each chunk in the next width up
    d->Reset();
    ASSERT_TRUE(d->Prefill(Prompt(n, f.config.vocab)).ok());
    want += 3;
    EXPECT_EQ(set->programs_compiled(), want) << n << " positions";
  }
  d->Reset();
  const std::vector<int32_t> long_prompt = Prompt(600, f.config.vocab);  // 256 + 256 + 88
  EXPECT_LE(MaxAbsDiff(Copy(d->Prefill(long_prompt)), Copy((*ref)->Prefill(long_prompt))),
            kFp16Tolerance);
  auto second = MakeProgramDecoder(f, set, options);
  ASSERT_TRUE(second);
  for (int64_t n : {5, 20, 40, 100, 200}) ASSERT_TRUE(second->Prefill(Prompt(n, 96)).ok());
  EXPECT_EQ(set->programs_compiled(), 15);
  EXPECT_EQ(b->compiles_used(), 15);
}

TEST_P(ProgramDecoderTest, BadIdsAndOverflowFailAndLeaveThePositionAlone) {
  const Fixture f = Make(GetParam().config);
  auto b = MakeBackend(GetParam().backend);
  auto d = MakeProgramDecoder(f, MakeSet(f, b.get()));
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->Prefill(Prompt(10, f.config.vocab)).ok());
  for (int32_t bad : {-1, f.config.vocab}) {
    const std::vector<int32_t> tokens = {1, bad};
    absl::StatusOr<absl::Span<const float>> r = d->Prefill(tokens);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find("tokens[1]"), std::string::npos) << r.status();
  }
  EXPECT_EQ(d->Prefill({}).status().code(), absl::StatusCode::kInvalidArgument);
  const auto over = d->Prefill(Prompt(d->max_context() - 9, f.config.vocab));
  EXPECT_EQ(over.status().code(), absl::StatusCode::kOutOfRange) << over.status();
  EXPECT_EQ(d->position(), 10);
  // Filling the context exactly still works; one more does not.
  EXPECT_TRUE(d->Prefill(Prompt(d->max_context() - 10, f.config.vocab)).ok());
  EXPECT_EQ(d->Step(1).status().code(), absl::StatusCode::kOutOfRange);
}

INSTANTIATE_TEST_SUITE_P(Configs, ProgramDecoderTest,
                         ::testing::Values(Param{kLlama, "cpu"}, Param{kLlama, "ane-sim"},
                                           Param{kQwen3, "cpu"}, Param{kQwen3, "ane-sim"}),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           std::string name =
                               std::string(info.param.config == kLlama ? "Llama_" : "Qwen3_") +
                               info.param.backend;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Every program of every width, as the ANE device is given it (after the lowering, under
// ane-sim's rules), breaks none of the ANE rules table's program rules; its surfaces are all of
// one size, at least the minimum, aligned.
TEST(DecodeProgramRulesTest, EveryProgramPassesTheAneRulesCheckerAfterLowering) {
  const backend::ane::DeviceInfo sim = backend::ane::CreateSimDevice()->Info();
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  for (const char* kv : {kLlama, kQwen3}) {
    for (int64_t lane : {16, 32}) {
      const Fixture f = Make(kv);
      DecodeProgramOptions options;
      options.lane = lane;
      auto set = MakeSet(f, &cpu, options);
      ASSERT_TRUE(set);
      for (int64_t width : set->widths()) {
        auto kernels = set->Kernels(width);
        ASSERT_TRUE(kernels.ok()) << kernels.status();
        ASSERT_EQ(kernels->size(), 3u);
        for (training::Kernel& k : *kernels) {
          SCOPED_TRACE(::testing::Message() << kv << " " << k.layout.kernel << " width " << width);
          auto verified = mil::VerifyProgram(k.program);
          ASSERT_TRUE(verified.ok()) << verified.status();
          backend::ane::LoweringOptions lo;
          lo.rules = sim.rules;
          lo.device_honors_attn_mask = sim.honors_attn_mask;
          auto lowered = backend::ane::LowerForAne(*verified, lo);
          ASSERT_TRUE(lowered.ok()) << lowered.status();
          for (const mil::AneViolation& v : mil::CheckAneProgram(lowered->program, sim.rules)) {
            // Allocation rules assume surfaces of the declared sizes; checked below instead.
            if (v.rule == "min_surface_bytes" || v.rule == "uniform_surface_sizes") continue;
            ADD_FAILURE() << "breaks " << v.rule << ": " << v.message;
          }
          for (const auto* sizes :
               {&lowered->input_surface_bytes, &lowered->output_surface_bytes}) {
            for (int64_t bytes : *sizes) {
              EXPECT_GE(bytes, sim.rules.min_surface_bytes);
              EXPECT_EQ(bytes, sizes->front());
              EXPECT_EQ(bytes % sim.rules.surface_alignment, 0);
            }
          }
        }
      }
    }
  }
}

TEST(DecodeProgramSetTest, RefusesLanesOutsideSixteenOrThirtyTwo) {
  const Fixture f = Make(kLlama);
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  for (int64_t lane : {0, 1, 8, 24, 64}) {
    DecodeProgramOptions options;
    options.lane = lane;
    auto set = DecodeProgramSet::Create(f.config, &cpu, options);
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument) << lane;
    EXPECT_NE(set.status().message().find("lane"), std::string::npos) << set.status();
  }
  EXPECT_EQ(DecodeProgramSet::Create(f.config, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A device error (ane-sim failing every compile from the 4th attempt: the decode lane's) is
// returned as the device gave it, leaves the position where it was, and the decoder goes on in
// the widths it has.
TEST(ProgramDecoderDeviceErrorTest, AFailedCompileLeavesThePositionAndTheDecoderUsable) {
  const Fixture f = Make(kLlama);
  backend::ane::SimRules rules;
  rules.faults.compile_fail_from_attempt = 4;
  backend::ane::AneBackend sim(
      std::shared_ptr<backend::ane::AneDevice>(backend::ane::CreateSimDevice(rules)),
      backend::ane::AneBackendOptions{});
  auto d = MakeProgramDecoder(f, MakeSet(f, &sim));
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->Prefill(Prompt(20, f.config.vocab)).ok());   // the 32 bucket: attempts 1-3
  absl::StatusOr<absl::Span<const float>> step = d->Step(3);  // the 16 lane: attempt 4 fails
  EXPECT_FALSE(step.ok());
  EXPECT_EQ(d->position(), 20);
  EXPECT_EQ(d->programs().programs_compiled(), 3);
  auto ref = Decoder::Create(f.config, f.params);
  ASSERT_TRUE(ref.ok());
  const std::vector<int32_t> more = Prompt(20, f.config.vocab);  // again the 32 bucket
  ASSERT_TRUE((*ref)->Prefill(Prompt(20, f.config.vocab)).ok());
  EXPECT_LE(MaxAbsDiff(Copy(d->Prefill(more)), Copy((*ref)->Prefill(more))), kFp16Tolerance);
  EXPECT_EQ(d->position(), 40);
}

TEST(ProgramDecoderBoundsTest, RefusesWrongParametersAndBoundsBytesBeforeAllocating) {
  const Fixture f = Make(kLlama);
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto set = MakeSet(f, &cpu);
  auto short_params = std::make_shared<const std::vector<float>>(10, 0.0f);
  auto r = ProgramDecoder::Create(set, short_params);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("params"), std::string::npos) << r.status();
  DecoderOptions huge;
  huge.max_context = kMaxDecoderContext;
  huge.max_cache_bytes = int64_t{64} << 20;
  r = ProgramDecoder::Create(set, f.params, huge);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  DecoderOptions bad;
  bad.max_context = -1;
  EXPECT_EQ(ProgramDecoder::Create(set, f.params, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set->programs_compiled(), 0);  // Create compiles nothing
}

TEST(MakeDecoderTest, PicksTheDecoderByBackendName) {
  const Fixture f = Make(kLlama);
  auto cpu = MakeBackend("cpu");
  auto sim = MakeBackend("ane-sim");
  auto fp32 = MakeDecoder("cpu", nullptr, f.config, f.params);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_NE(dynamic_cast<Decoder*>(fp32->get()), nullptr);
  MakeDecoderOptions programs;
  programs.programs = true;
  auto on_cpu = MakeDecoder("cpu", cpu.get(), f.config, f.params, programs);
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  EXPECT_NE(dynamic_cast<ProgramDecoder*>(on_cpu->get()), nullptr);
  auto on_sim = MakeDecoder("ane-sim", sim.get(), f.config, f.params);
  ASSERT_TRUE(on_sim.ok()) << on_sim.status();
  EXPECT_NE(dynamic_cast<ProgramDecoder*>(on_sim->get()), nullptr);
  for (auto* b : {static_cast<backend::Backend*>(nullptr), cpu.get()}) {
    auto wrong = MakeDecoder("ane-sim", b, f.config, f.params);
    EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(wrong.status().message().find("backend"), std::string::npos) << wrong.status();
  }
  // A shared program set is reused, and refused for another architecture.
  MakeDecoderOptions shared;
  shared.program_set = MakeSet(f, sim.get());
  ASSERT_TRUE(MakeDecoder("ane-sim", sim.get(), f.config, f.params, shared).ok());
  const Fixture other = Make(kQwen3);
  EXPECT_EQ(MakeDecoder("ane-sim", sim.get(), other.config, other.params, shared).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace anerd::generation
