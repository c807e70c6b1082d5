// The overlap seam (issue 24 item 2): Model::SetGradientsFinalHook reports ranges that cover the
// parameters exactly once per pass, each only when its gradient is final (the bits seen in the
// hook are the pass's final bits: the dW GEMMs of that range are done); and a Trainer whose
// reducer reduces bucket by bucket during the last backward pass (one rank, an identity reducer)
// trains to the same bits as a Trainer without a reducer, with and without accumulation.
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/training/bucketed_reducer.h"
#include "server/training/data.h"
#include "server/training/model.h"
#include "server/training/trainer.h"
#include "tests/testing/temp_dir.h"

namespace anerd::training {
namespace {

struct HookCase {
  const char* name;
  bool tied;
  bool qk_norm;
  bool compact;
};

class GradientsFinalHookTest : public ::testing::TestWithParam<HookCase> {};

TEST_P(GradientsFinalHookTest, RangesCoverEveryParameterOnceWithTheirFinalGradients) {
  ModelConfig c = *ModelConfigByName("tiny");
  c.tied_embeddings = GetParam().tied;
  c.qk_norm = GetParam().qk_norm;
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto model = Model::Create(c, 1.0, backend::NumericsMode::kFp32, &cpu);
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t total = (*model)->layout().total();
  std::vector<float> params(total);
  InitParams(c, 3, params.data());
  std::vector<uint32_t> tokens(c.seq + 1);
  for (int i = 0; i <= c.seq; ++i) tokens[i] = static_cast<uint32_t>((i * 37 + 11) % 97);
  if (GetParam().compact) {
    std::vector<uint32_t> ids(97);
    for (uint32_t i = 0; i < 97; ++i) ids[i] = i;
    (*model)->SetCompaction(ids);
  }
  PhaseTimes times;
  (*model)->StageWeights(params.data(), &times);

  std::vector<float> grads(total, 0.0f), seen(total, 0.0f);
  std::vector<int> covered(total, 0);
  std::vector<std::pair<int64_t, int64_t>> order;
  std::mutex mu;  // the hook runs on the dW worker or this thread (never at once)
  (*model)->SetGradientsFinalHook([&](int64_t offset, int64_t count) {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_GE(offset, 0);
    ASSERT_LE(offset + count, total);
    order.emplace_back(offset, count);
    for (int64_t i = offset; i < offset + count; ++i) ++covered[i];
    std::memcpy(seen.data() + offset, grads.data() + offset, count * sizeof(float));
  });
  // Twice into the same buffer (accumulation): the second pass's reports see its own final sums.
  for (int pass = 0; pass < 2; ++pass) {
    order.clear();
    std::fill(covered.begin(), covered.end(), 0);
    auto loss = (*model)->ForwardBackward(params.data(), tokens.data(), tokens.data() + 1, 256.0f,
                                          grads.data(), &times);
    ASSERT_TRUE(loss.ok()) << loss.status();
    std::lock_guard<std::mutex> lock(mu);
    for (int64_t i = 0; i < total; ++i) {
      ASSERT_EQ(covered[i], 1) << "element " << i << " reported " << covered[i] << " times";
    }
    EXPECT_EQ(std::memcmp(seen.data(), grads.data(), total * sizeof(float)), 0)
        << "a range was reported before its gradient was final";
    ASSERT_GE(order.size(), static_cast<size_t>(c.layers) + 2);
    // Backward order: the last layer's range before the first layer's, the embedding after both.
    const int64_t first_layer = (*model)->layout().layer(0).wq;
    const int64_t last_layer = (*model)->layout().layer(c.layers - 1).wq;
    size_t at_first = 0, at_last = 0, at_embed = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      if (order[k].first == first_layer) at_first = k;
      if (order[k].first == last_layer) at_last = k;
      if (order[k].first == 0) at_embed = k;
    }
    EXPECT_LT(at_last, at_first);
    EXPECT_LT(at_first, at_embed);
  }
  // Without a hook nothing is reported.
  (*model)->SetGradientsFinalHook(nullptr);
  order.clear();
  ASSERT_TRUE((*model)
                  ->ForwardBackward(params.data(), tokens.data(), tokens.data() + 1, 256.0f,
                                    grads.data(), &times)
                  .ok());
  EXPECT_TRUE(order.empty());
}

INSTANTIATE_TEST_SUITE_P(Layouts, GradientsFinalHookTest,
                         ::testing::Values(HookCase{"tied", true, false, false},
                                           HookCase{"untied", false, false, false},
                                           HookCase{"untied_qknorm", false, true, false},
                                           HookCase{"untied_compact", false, false, true},
                                           HookCase{"tied_compact", true, false, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// One rank: the sum over ranks is the identity. Counts the buckets it was given.
class IdentityReducer : public GradientReducer {
 public:
  int rank() const override { return 0; }
  int ranks() const override { return 1; }
  absl::Status Reduce(float*, int64_t, double*, ReduceStats*) override {
    return absl::UnimplementedError("overlapped only");
  }
  absl::Status ReduceRange(float*, int64_t n) override {
    elements_ += n;
    return absl::OkStatus();
  }
  absl::Status ReduceLoss(double*) override { return absl::OkStatus(); }
  int64_t elements() const { return elements_; }

 private:
  int64_t elements_ = 0;  // only the communication thread writes; read after FinishStep
};

class OverlappedTrainerTest : public ::testing::TestWithParam<int> {};

TEST_P(OverlappedTrainerTest, BucketedReductionDuringBackwardChangesNoBit) {
  testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string corpus = dir.path() + "/corpus.txt";
  std::ofstream(corpus, std::ios::binary) << SynthesizeStories(2, 60000);
  TrainSpec spec;
  spec.model = *ModelConfigByName("tiny");
  spec.data_path = corpus;
  spec.steps = 3;
  spec.lr = 3e-3;
  spec.warmup = 1;
  spec.accum = GetParam();
  spec.numerics = "fp32";
  spec.seed = 4;
  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  auto plain = Trainer::Create(spec, &cpu);
  auto overlapped = Trainer::Create(spec, &cpu);
  ASSERT_TRUE(plain.ok() && overlapped.ok());
  IdentityReducer identity;
  BucketedReducer bucketed(&identity, 5000);  // ~25 buckets of the tiny model's gradients
  (*overlapped)->SetGradientReducer(&bucketed);
  for (int step = 0; step < spec.steps; ++step) {
    auto a = (*plain)->Step();
    auto b = (*overlapped)->Step();
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << " " << b.status();
    EXPECT_EQ(a->loss, b->loss) << "step " << step + 1;
    EXPECT_EQ(a->grad_norm, b->grad_norm) << "step " << step + 1;
    ASSERT_TRUE(b->allreduce_buckets.has_value());
    const int64_t n = static_cast<int64_t>((*plain)->params().size());
    EXPECT_EQ(*b->allreduce_buckets, (n + 4999) / 5000);
    EXPECT_TRUE(b->phases.allreduce_total_ms.has_value());
    EXPECT_TRUE(b->phases.allreduce_hidden_ms.has_value());
    EXPECT_FALSE(a->phases.allreduce_ms.has_value()) << "no reducer: no reduction timed";
  }
  EXPECT_EQ(identity.elements(), spec.steps * static_cast<int64_t>((*plain)->params().size()));
  const std::vector<float>& pa = (*plain)->params();
  const std::vector<float>& pb = (*overlapped)->params();
  ASSERT_EQ(pa.size(), pb.size());
  EXPECT_EQ(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)), 0)
      << "final weights differ";
}

INSTANTIATE_TEST_SUITE_P(Accum, OverlappedTrainerTest, ::testing::Values(1, 3));

}  // namespace
}  // namespace anerd::training
