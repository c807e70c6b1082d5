// Lowering snapshots: the MIL text the ANE devices are given for every training kernel
// (docs/ANE_NOTES.md §4.3) and every probe program, and SHA-256 digests of the weight files passed
// with it, compared with the files under tests/backend/ane_snapshots/. A change to the lowering,
// the printer or a generator shows up here as a diff to review. Regenerate with:
// ANERD_UPDATE_ANE_SNAPSHOTS=1 ./backend_ane_snapshot_test
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "gtest/gtest.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/ane/ane_lowering.h"
#include "server/probes/programs.h"
#include "server/training/kernels.h"

namespace anerd::backend::ane {
namespace {

const std::filesystem::path kDir =
    std::filesystem::path(ANERD_SOURCE_DIR) / "tests/backend/ane_snapshots";

bool Updating() {
  const char* v = std::getenv("ANERD_UPDATE_ANE_SNAPSHOTS");
  return v != nullptr && std::string(v) == "1";
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// One line per weight file: "<path> <bytes> <sha256>".
std::string BlobDigests(const LoweredProgram& lowered) {
  std::string out;
  for (const DeviceWeightFile& w : lowered.weights) {
    absl::StrAppend(&out, w.path, " ", w.bytes->size(), " ", Sha256Hex(*w.bytes), "\n");
  }
  return out;
}

void CheckSnapshot(const std::string& name, const mil::VerifiedProgram& program) {
  SCOPED_TRACE(name);
  const DeviceInfo sim = CreateSimDevice()->Info();
  LoweringOptions lo;
  lo.rules = sim.rules;
  lo.device_honors_attn_mask = sim.honors_attn_mask;
  absl::StatusOr<LoweredProgram> lowered = LowerForAne(program, lo);
  ASSERT_TRUE(lowered.ok()) << lowered.status();
  const std::string blobs = BlobDigests(*lowered);
  const std::filesystem::path mil_path = kDir / (name + ".mil");
  const std::filesystem::path blob_path = kDir / (name + ".blobs");
  if (Updating()) {
    std::filesystem::create_directories(kDir);
    std::ofstream(mil_path, std::ios::binary) << lowered->mil_text;
    std::ofstream(blob_path, std::ios::binary) << blobs;
    return;
  }
  ASSERT_TRUE(std::filesystem::exists(mil_path))
      << mil_path << " missing; run with ANERD_UPDATE_ANE_SNAPSHOTS=1";
  EXPECT_EQ(lowered->mil_text, ReadFile(mil_path)) << "MIL text differs from " << mil_path;
  EXPECT_EQ(blobs, ReadFile(blob_path)) << "weight files differ from " << blob_path;
}

training::ModelShape SnapshotShape() {
  training::ModelShape shape;
  shape.dim = 64;
  shape.hidden = 128;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 16;
  shape.seq = 16;
  shape.layers = 1;
  shape.vocab = 128;
  return shape;
}

// Snapshots the kernels of `shape` named in `only` (all when empty) as "<prefix><kernel>".
void CheckTrainingKernels(const training::ModelShape& shape, const std::string& prefix,
                          const std::vector<std::string>& only) {
  auto kernels = training::AllKernels(shape);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  auto constants = training::KernelConstants(shape);
  ASSERT_TRUE(constants.ok()) << constants.status();
  ASSERT_FALSE(kernels->empty());
  for (training::Kernel& k : *kernels) {
    if (!only.empty() && std::find(only.begin(), only.end(), k.layout.kernel) == only.end()) {
      continue;
    }
    mil::WeightFiles w;
    for (const auto& [path, bytes] : constants->files()) {
      ASSERT_TRUE(w.Add(path, *bytes).ok());
    }
    auto program = mil::VerifyProgram(k.program, std::move(w));
    ASSERT_TRUE(program.ok()) << k.layout.kernel << ": " << program.status();
    CheckSnapshot(prefix + k.layout.kernel, *program);
  }
}

TEST(AneLoweringSnapshots, TrainingKernels) { CheckTrainingKernels(SnapshotShape(), "train_", {}); }

// Hugging Face Qwen3's attention (issue 19 item 4): rotate-half RoPE with theta 1e6 and QK-norm
// change only sdpaFwd (program and RoPE tables).
TEST(AneLoweringSnapshots, TrainingKernelsQwen3) {
  training::ModelShape shape = SnapshotShape();
  shape.rope_half = true;
  shape.rope_theta = 1e6;
  shape.qk_norm = true;
  shape.norm_eps = 1e-6;
  CheckTrainingKernels(shape, "train_qwen3_", {"sdpaFwd"});
}

TEST(AneLoweringSnapshots, ProbePrograms) {
  std::vector<std::pair<std::string, absl::StatusOr<probes::ProbeProgram>>> all;
  all.emplace_back("probe_peak_fp32io", probes::PeakProgram(64, 64, 2, 1, true));
  all.emplace_back("probe_peak_fp16io", probes::PeakProgram(64, 64, 2, 1, false));
  all.emplace_back("probe_sram", probes::SramProgram(128, 64, 2, true));
  all.emplace_back("probe_latency", probes::LatencyProgram(3));
  all.emplace_back("probe_int8_fp16", probes::Int8Program(64, 4, 2, false, 4));
  all.emplace_back("probe_int8_w8a8", probes::Int8Program(64, 4, 2, true, 4));
  for (auto& [name, p] : all) {
    ASSERT_TRUE(p.ok()) << name << ": " << p.status();
    auto program = mil::VerifyProgram(p->program, p->weights);
    ASSERT_TRUE(program.ok()) << name << ": " << program.status();
    CheckSnapshot(name, *program);
  }
}

}  // namespace
}  // namespace anerd::backend::ane
