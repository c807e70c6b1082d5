// End-to-end training of `tiny` on the synthetic story corpus (byte tokens): the loss must fall by
// a stated margin in both numerics modes; resuming from a checkpoint reproduces the uninterrupted
// run exactly; GQA and vocabulary compaction train; llama2.c export/import round-trips.
#include "server/training/trainer.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "server/backend/ane/ane_backend.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/kernels/kernels.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/training/span_log.h"
#include "server/training/validation_split.h"

namespace anerd::training {
namespace {

std::string TempPath(const std::string& name) {
  // ctest runs every test of this binary as its own process, in parallel: one file per process.
  return std::string(ANERD_BINARY_DIR) + "/training_trainer_test_" + std::to_string(getpid()) +
         "_" + name;
}

std::string WriteCorpus() {
  const std::string path = TempPath("corpus.txt");
  std::ofstream(path, std::ios::binary) << SynthesizeStories(1, 200000);
  return path;
}

TrainSpec TinySpec(const std::string& numerics, int64_t steps) {
  TrainSpec s;
  s.model = *ModelConfigByName("tiny");
  s.data_path = WriteCorpus();
  s.steps = steps;
  s.lr = 3e-3;
  s.min_lr = 3e-4;
  s.warmup = 20;
  s.numerics = numerics;
  s.seed = 5;
  return s;
}

// Trains and returns the per-step losses.
std::vector<double> Train(Trainer* t, int64_t n) {
  std::vector<double> losses;
  for (int64_t i = 0; i < n; ++i) {
    auto r = t->Step();
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) break;
    losses.push_back(r->loss);
  }
  return losses;
}

double Mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / (to - from);
}

class TrainTest : public ::testing::TestWithParam<const char*> {};

// Byte-level loss starts near ln 256 = 5.55; 200 steps on the synthetic grammar must bring the
// mean of the last 20 steps below 3.2, a drop of more than 2.3 nats (measured about 2.8 in both
// modes).
TEST_P(TrainTest, TinyLossFalls) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto t = Trainer::Create(TinySpec(GetParam(), 200), &cpu);
  ASSERT_TRUE(t.ok()) << t.status();
  const std::vector<double> losses = Train(t->get(), 200);
  ASSERT_EQ(losses.size(), 200u);
  EXPECT_GT(Mean(losses, 0, 5), 5.0);
  EXPECT_LT(Mean(losses, 180, 200), 3.2) << "first " << losses[0] << " last " << losses.back();
  EXPECT_TRUE((*t)->done());
  EXPECT_EQ((*t)->Step().status().code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Numerics, TrainTest, ::testing::Values("fp32", "ane"));

// Issue 18 item 6: the step breakdown carries the kernels' device time as a phase: modelled and
// labelled on ane-sim, absent (never 0) on cpu.
TEST(TrainerTest, StepBreakdownCarriesTheKernelsDeviceTimeWhereThereIsOne) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto on_cpu = Trainer::Create(TinySpec("ane", 1), &cpu);
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  auto rc = (*on_cpu)->Step();
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_GT(rc->phases.kernel_ms, 0);
  EXPECT_FALSE(rc->phases.kernel_hw_ms.has_value());

  backend::ane::AneBackend sim(
      std::shared_ptr<backend::ane::AneDevice>(backend::ane::CreateSimDevice()),
      backend::ane::AneBackendOptions{});
  auto on_sim = Trainer::Create(TinySpec("ane", 1), &sim);
  ASSERT_TRUE(on_sim.ok()) << on_sim.status();
  auto rs = (*on_sim)->Step();
  ASSERT_TRUE(rs.ok()) << rs.status();
  ASSERT_TRUE(rs->phases.kernel_hw_ms.has_value());
  EXPECT_TRUE(rs->phases.hw_simulated);
  // At least the modelled dispatch cost of one evaluation per kernel type (ten, docs/ANE_NOTES.md
  // §4.3).
  EXPECT_GE(*rs->phases.kernel_hw_ms, 10 * backend::ane::kSimDispatchNs / 1e6);
}

// Issue 21 item 2: the kernel time splits into the forward and backward kernels exactly (the
// same clock readings), and the kernels' compile time is measured.
TEST(TrainerTest, KernelTimeSplitsIntoForwardAndBackward) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto t = Trainer::Create(TinySpec("ane", 2), &cpu);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_GT((*t)->compile_ms(), 0);
  auto r = (*t)->Step();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->phases.kernel_fwd_ms.has_value()) << "a fresh step measures both passes";
  ASSERT_TRUE(r->phases.kernel_bwd_ms.has_value());
  EXPECT_GT(*r->phases.kernel_fwd_ms, 0);
  EXPECT_GT(*r->phases.kernel_bwd_ms, 0);
  EXPECT_NEAR(*r->phases.kernel_fwd_ms + *r->phases.kernel_bwd_ms, r->phases.kernel_ms,
              1e-9 * r->phases.kernel_ms + 1e-12);
}

// Issue 22: the step's long CPU passes give way too, not only the kernels. Each yield notes which
// spans had ended by then; a span is recorded when it ends, so a yield that saw "backward" but
// not "optimizer" ran inside the optimizer, one that saw "optimizer" but not "stage_weights" ran
// while the weights were staged, one that saw every forward kernel but not "forward" ran inside
// the forward's classifier (its GEMMs run off the device thread meanwhile), and of those that saw
// "forward" and a single "cls", the first ran between the two classifiers and the others inside
// the backward's. Before, every yield came before a kernel evaluation (inside "forward" /
// "backward"). The yields change no bit: the run matches one without them.
TEST(TrainerTest, OptimizerAndStagingYieldToInteractiveCalls) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto plain = Trainer::Create(TinySpec("fp32", 2), &cpu);
  auto yielding = Trainer::Create(TinySpec("fp32", 2), &cpu);
  ASSERT_TRUE(plain.ok() && yielding.ok());
  const int spec_layers = TinySpec("fp32", 2).model.layers;
  SpanLog spans;
  (*yielding)->SetSpanLog(&spans);
  const int forward_kernels = 3 * spec_layers;  // sdpaFwd, woFwd, ffnFused per layer
  int in_optimizer = 0, in_staging = 0, in_forward_classifier = 0, at_backward_classifier = 0,
      total = 0;
  (*yielding)->SetKernelYield([&] {
    bool forward = false, backward = false, optimizer = false, staged = false;
    int classifiers = 0, kernels = 0;
    for (const TraceSpan& s : spans.Spans(1, 1, 1 << 16)) {
      const std::string name = s.name;
      forward |= name == "forward";
      classifiers += name == "cls";
      kernels += absl::StartsWith(name, "kernel ");
      backward |= name == "backward";
      optimizer |= name == "optimizer";
      staged |= name == "stage_weights";
    }
    ++total;
    // After the forward's last kernel and before "forward" ends: inside its classifier.
    if (!forward && kernels == forward_kernels) ++in_forward_classifier;
    // One yield before the backward's classifier, the others inside it.
    if (forward && classifiers == 1) ++at_backward_classifier;
    if (backward && !optimizer) ++in_optimizer;
    if (optimizer && !staged) ++in_staging;
  });
  Train(plain->get(), 1);
  Train(yielding->get(), 1);
  EXPECT_GT(total, 0);
  EXPECT_GE(in_optimizer, 1);
  EXPECT_GE(in_staging, 1);
  EXPECT_GE(in_forward_classifier, 1);
  EXPECT_GE(at_backward_classifier, 2);
  EXPECT_EQ((*plain)->params(), (*yielding)->params());
}

// Issue 22: the CPU backend's pool (kernels on one thread or two, the helper left out whenever the
// dW worker holds its CPU seat) changes no bit of training. A shape whose kernels' GEMMs and
// elementwise passes do split (GemmBlocks; 64K-element activations), fp32 numerics.
TEST(TrainerTest, PoolWidthLeavesTheBitsUnchanged) {
  ASSERT_GT(backend::cpu::GemmBlocks(768, 256, 256), 1);  // an ffn GEMM of this shape splits
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  TrainSpec spec = TinySpec("fp32", 3);
  spec.model = *ParseCustomConfig("dim=256,hidden=768,layers=2,heads=4,vocab=256,seq=256");
  std::vector<float> params[2];
  std::vector<double> losses[2];
  for (int width : {1, 2}) {
    const int previous = backend::cpu::SetParallelForThreads(width);
    auto t = Trainer::Create(spec, &cpu);
    ASSERT_TRUE(t.ok()) << t.status();
    losses[width - 1] = Train(t->get(), 3);
    params[width - 1] = (*t)->params();
    backend::cpu::SetParallelForThreads(previous);
  }
  ASSERT_EQ(losses[0].size(), 3u);
  EXPECT_EQ(losses[0], losses[1]);
  EXPECT_TRUE(params[0] == params[1]);  // bit-for-bit (no NaN in a healthy run)
}

TEST(TrainerTest, ResumeReproducesTheUninterruptedRun) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  TrainSpec spec = TinySpec("fp32", 30);
  spec.accum = 2;
  spec.sampling = "random";
  auto full = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(full.ok()) << full.status();
  const std::vector<double> expected = Train(full->get(), 30);

  auto part = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(part.ok());
  Train(part->get(), 12);
  const std::string ckpt = TempPath("resume.ckpt");
  ASSERT_TRUE((*part)->SaveCheckpoint(ckpt).ok());
  part->reset();
  auto resumed = Trainer::Resume(ckpt, &cpu);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->step(), 12);
  EXPECT_EQ((*resumed)->total_steps(), 30);
  const std::vector<double> rest = Train(resumed->get(), 18);
  ASSERT_EQ(rest.size(), 18u);
  for (size_t i = 0; i < rest.size(); ++i)
    EXPECT_EQ(rest[i], expected[12 + i]) << "step " << 13 + i;
  EXPECT_EQ((*resumed)->params(), (*full)->params());

  auto extended = Trainer::Resume(ckpt, &cpu, 5);
  ASSERT_TRUE(extended.ok());
  EXPECT_EQ((*extended)->total_steps(), 35);
  std::remove(ckpt.c_str());
}

// Issue 20 item 4: evaluating on the held-out tail between steps changes nothing of the run
// (same losses, same weights), uses eval_batches windows of the held-out range, and the same
// weights give the same loss on a second call.
TEST(TrainerTest, EvalHeldOutLeavesTheRunUnchanged) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  TrainSpec spec = TinySpec("fp32", 6);
  spec.val_fraction = 0.1;
  spec.eval_every = 1;
  spec.eval_batches = 3;
  ASSERT_TRUE(ResolveValidationSplit(&spec).ok());
  auto plain = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(plain.ok()) << plain.status();
  const std::vector<double> expected = Train(plain->get(), 6);
  auto evaluated = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(evaluated.ok()) << evaluated.status();
  for (int i = 0; i < 6; ++i) {
    auto r = (*evaluated)->Step();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->loss, expected[i]) << "step " << i + 1;
    auto e = (*evaluated)->EvalHeldOut();
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->source, "val_split");
    EXPECT_EQ(e->sequences, 3);
    EXPECT_EQ(e->tokens, 3 * spec.model.seq);
    EXPECT_TRUE(std::isfinite(e->loss));
    auto again = (*evaluated)->EvalHeldOut();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->loss, e->loss);
  }
  EXPECT_EQ((*evaluated)->params(), (*plain)->params());
}

TEST(TrainerTest, CorruptCheckpointIsRejected) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto t = Trainer::Create(TinySpec("fp32", 2), &cpu);
  ASSERT_TRUE(t.ok());
  const std::string ckpt = TempPath("corrupt.ckpt");
  ASSERT_TRUE((*t)->SaveCheckpoint(ckpt).ok());
  std::fstream f(ckpt, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(2000);
  f.put('\x5a');
  f.close();
  auto r = Trainer::Resume(ckpt, &cpu);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find("CRC"), std::string::npos) << r.status();
  std::remove(ckpt.c_str());
}

TEST(TrainerTest, GqaTrains) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  TrainSpec spec = TinySpec("fp32", 80);
  spec.model = *ParseCustomConfig("dim=64,hidden=192,layers=2,heads=4,kv_heads=2,vocab=256,seq=64");
  auto t = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(t.ok()) << t.status();
  const std::vector<double> losses = Train(t->get(), 80);
  ASSERT_EQ(losses.size(), 80u);
  EXPECT_LT(Mean(losses, 70, 80), Mean(losses, 0, 5) - 2.0);
}

// Compaction restricts the softmax to the ~70 byte values the corpus uses, so the initial loss is
// near ln(70) = 4.2 instead of ln(256) = 5.5 and training still converges.
TEST(TrainerTest, CompactVocabTrains) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  TrainSpec spec = TinySpec("fp32", 80);
  spec.compact_vocab = true;
  auto t = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(t.ok()) << t.status();
  const std::vector<double> losses = Train(t->get(), 80);
  ASSERT_EQ(losses.size(), 80u);
  EXPECT_LT(losses[0], 4.6);
  EXPECT_LT(Mean(losses, 70, 80), losses[0] - 0.9);
}

TEST(TrainerTest, ExportedModelReimportsIdentically) {
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto t = Trainer::Create(TinySpec("fp32", 3), &cpu);
  ASSERT_TRUE(t.ok());
  Train(t->get(), 3);
  const std::string path = TempPath("export.bin");
  ASSERT_TRUE((*t)->ExportLlama2c(path).ok());
  TrainSpec spec = TinySpec("fp32", 1);
  spec.init_model_path = path;
  auto t2 = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(t2.ok()) << t2.status();
  EXPECT_EQ((*t2)->params(), (*t)->params());
  spec.model.hidden = 128;
  auto mismatch = Trainer::Create(spec, &cpu);
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("hidden"), std::string::npos) << mismatch.status();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace anerd::training
