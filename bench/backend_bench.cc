// CPU backend benchmarks. Every figure is reported next to a plain cblas_sgemm of the same
// M x N x K measured in the same process, interleaved with the program's iterations
// (ratio_to_sgemm = median sgemm time / median program time), so results on a shared, noisy
// machine compare like with like. See bench/README.md.
#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "benchmark/benchmark.h"
#include "common/mil/blob_writer.h"
#include "common/mil/builder.h"
#include "common/mil/verifier.h"
#include "server/backend/cpu/kernels/parallel.h"
#include "server/backend/registry.h"
#include "server/training/kernels.h"

#if defined(ANERD_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

namespace anerd {
namespace {

using backend::NamedTensor;
using backend::Tensor;

struct Gemm {
  int64_t m, n, k, batch;
};

// Operands for a plain sgemm of every shape in `gemms` (fp32, allocated once). With
// `distinct_batches`, each batch index gets its own A, B and C (as the program's batched matmuls
// have: 12 heads = 12 different matrices), else the batch reuses one cache-resident set.
class SgemmReference {
 public:
  SgemmReference(std::vector<Gemm> gemms, bool distinct_batches) : gemms_(std::move(gemms)) {
    for (const Gemm& g : gemms_) {
      const int64_t copies = distinct_batches ? g.batch : 1;
      a_.emplace_back(copies * g.m * g.k, 0.5f);
      b_.emplace_back(copies * g.k * g.n, 0.25f);
      c_.emplace_back(copies * g.m * g.n);
      stride_.push_back(distinct_batches ? 1 : 0);
    }
  }
  bool empty() const { return gemms_.empty(); }
  // Seconds for one sgemm of each shape (batch times), summed.
  double Seconds() {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t s = 0; s < gemms_.size(); ++s) {
      const Gemm& g = gemms_[s];
      for (int64_t i = 0; i < g.batch; ++i) {
        const int64_t j = i * stride_[s];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.m, g.n, g.k, 1.0f,
                    a_[s].data() + j * g.m * g.k, g.k, b_[s].data() + j * g.k * g.n, g.n, 0.0f,
                    c_[s].data() + j * g.m * g.n, g.n);
      }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  std::vector<Gemm> gemms_;
  std::vector<std::vector<float>> a_, b_, c_;
  std::vector<int64_t> stride_;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// The GEMMs a program performs (conv: OC x H*W x IC/groups per group; matmul: batched M x N x K).
std::vector<Gemm> GemmsOf(const mil::Function& f) {
  std::map<std::string, mil::TensorType> types;
  for (const auto& in : f.inputs) types[in.name] = in.type;
  std::vector<Gemm> out;
  for (const mil::Operation& op : f.ops) {
    for (const auto& o : op.outputs) types[o.name] = o.type;
    const mil::TensorType& t = op.outputs[0].type;
    if (op.op == "conv") {
      const mil::TensorType& w = types[op.FindParam("weight")->ref];
      out.push_back({w.shape[0], t.shape[2] * t.shape[3], w.shape[1], 1});
    } else if (op.op == "matmul") {
      const mil::TensorType& x = types[op.FindParam("x")->ref];
      const mil::Argument* tx = op.FindParam("transpose_x");
      bool tr = tx != nullptr && tx->kind == mil::Argument::Kind::kLiteral && tx->literal.values[0];
      if (tx != nullptr && tx->kind == mil::Argument::Kind::kRef) tr = false;
      const int r = t.rank();
      const int64_t k = tr ? x.shape[x.rank() - 2] : x.shape[x.rank() - 1];
      out.push_back(
          {t.shape[r - 2], t.shape[r - 1], k, t.NumElements() / (t.shape[r - 2] * t.shape[r - 1])});
    }
  }
  return out;
}

double Flops(const std::vector<Gemm>& gemms) {
  double f = 0;
  for (const Gemm& g : gemms) f += 2.0 * g.m * g.n * g.k * g.batch;
  return f;
}

std::vector<NamedTensor> RandomInputs(const mil::Function& f) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<NamedTensor> in;
  for (const auto& i : f.inputs) {
    std::vector<float> v(i.type.NumElements());
    for (float& x : v) x = u(rng);
    in.push_back({i.name, Tensor::FromFloats(i.type.dtype, i.type.shape, v)});
  }
  return in;
}

// The reference is cblas_sgemm as anyone would call it: OpenBLAS with its own thread pool. The
// backend made BLAS single-threaded for the process (its GEMMs run on its own pool), so the
// reference turns OpenBLAS's threads back on for its calls only. OpenBLAS's workers then
// busy-wait for ~0.1 s (2^28 cycles), which would steal a core from the program's next runs, so
// references run in batches, each followed by a pause long enough for the workers to sleep.
class ReferenceBatch {
 public:
  explicit ReferenceBatch(const std::vector<Gemm>& gemms)
      : reference_(gemms, false), distinct_(gemms, true) {
    batched_ = std::any_of(gemms.begin(), gemms.end(), [](const Gemm& g) { return g.batch > 1; });
  }
  bool batched() const { return batched_; }
  // Records that the program ran once more; runs the pending references once the batch holds
  // ~20 ms of program time.
  void ProgramRan(double seconds) {
    ++pending_;
    batch_s_ += seconds;
    if (batch_s_ >= 0.02) Flush();
  }
  // Runs one reference sample per program run since the last flush, then pauses.
  void Flush() {
    if (pending_ == 0 || reference_.empty()) return;
#if !defined(ANERD_BLAS_ACCELERATE)
    openblas_set_num_threads(backend::cpu::ConfigureBlasThreading());
#endif
    for (; pending_ > 0; --pending_) {
      sgemm_s.push_back(reference_.Seconds());
      if (batched_) distinct_s.push_back(distinct_.Seconds());
    }
#if !defined(ANERD_BLAS_ACCELERATE)
    openblas_set_num_threads(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
#endif
    batch_s_ = 0;
  }

  std::vector<double> sgemm_s, distinct_s;

 private:
  SgemmReference reference_, distinct_;
  bool batched_ = false;
  int64_t pending_ = 0;
  double batch_s_ = 0;
};

// Each iteration runs the program once (the timed part); reference sgemms run in batches of about
// the same duration right after the program runs they are compared with (ReferenceBatch), so
// both sample nearly the same machine load. ratio_to_sgemm is median sgemm / median program time,
// ratio_best the same for the fastest sample of each.
void RunProgram(benchmark::State& state, const mil::VerifiedProgram& program) {
  auto backends = backend::CreateBackends({});
  auto compiled = backends[0]->Compile(program, {});
  if (!compiled.ok()) {
    state.SkipWithError(std::string(compiled.status().message()).c_str());
    return;
  }
  const std::vector<NamedTensor> in = RandomInputs(program.main());
  const std::vector<Gemm> gemms = GemmsOf(program.main());
  ReferenceBatch refs(gemms);
  std::vector<double> program_s;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = (*compiled)->Run(in);
    benchmark::DoNotOptimize(r);
    program_s.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    state.SetIterationTime(program_s.back());
    refs.ProgramRan(program_s.back());
  }
  refs.Flush();
  const std::vector<double>& sgemm_s = refs.sgemm_s;
  const double flops = Flops(gemms), sgemm = Median(sgemm_s), prog = Median(program_s);
  state.counters["GFLOP/s"] = prog > 0 ? flops * 1e-9 / prog : 0;
  state.counters["sgemm_GFLOP/s"] = sgemm > 0 ? flops * 1e-9 / sgemm : 0;
  state.counters["sgemm_us"] = sgemm * 1e6;
  state.counters["program_us"] = prog * 1e6;  // median; Time is the mean
  state.counters["ratio_to_sgemm"] = prog > 0 ? sgemm / prog : 0;
  // Fastest sample of each: the least disturbed by other processes on a shared machine.
  const double best_sgemm = sgemm_s.empty() ? 0 : *std::min_element(sgemm_s.begin(), sgemm_s.end());
  const double best_prog = *std::min_element(program_s.begin(), program_s.end());
  state.counters["ratio_best"] = best_prog > 0 ? best_sgemm / best_prog : 0;
  // Against the batched GEMMs on distinct matrices per batch index (same memory traffic as the
  // program's per-head matmuls); only for programs with batched matmuls.
  if (refs.batched())
    state.counters["ratio_distinct"] = prog > 0 ? Median(refs.distinct_s) / prog : 0;
}

mil::VerifiedProgram ConvProgram(int64_t ch, int64_t sp) {
  mil::Builder b;
  mil::Value x = b.Input("x", {mil::DType::kFp16, {1, ch, 1, sp}});
  mil::Value w =
      b.ConstBlob("W", {mil::DType::kFp16, {ch, ch, 1, 1}}, "@model_path/weights/w.bin", 64);
  b.Output(b.Conv("y", x, w));
  std::vector<float> weights(ch * ch);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (float& v : weights) v = u(rng);
  mil::WeightFiles files;
  (void)files.Add("weights/w.bin", mil::BuildFp16Blob(weights));
  return *mil::VerifyProgram(*b.Finish(), std::move(files));
}

// Seed probe shapes (docs/ANE_NOTES.md §7: inmem_bench / sram_probe): 1x1 conv, sp 64.
void BM_Conv1x1(benchmark::State& state) {
  RunProgram(state, ConvProgram(state.range(0), state.range(1)));
}
BENCHMARK(BM_Conv1x1)
    ->Args({256, 64})
    ->Args({512, 64})
    ->Args({1024, 64})
    ->Args({2048, 64})
    ->Args({3072, 64})
    ->Args({4096, 64})
    ->Unit(benchmark::kMicrosecond)
    ->UseManualTime();

// Per-eval overhead of a tiny program: 64x64 conv over 64 positions.
void BM_TinyConv64(benchmark::State& state) { RunProgram(state, ConvProgram(64, 64)); }
BENCHMARK(BM_TinyConv64)->Unit(benchmark::kMicrosecond)->UseManualTime();

// The dynamic-weight training kernels at Stories110M shapes (docs/ANE_NOTES.md §4.3).
void BM_DynamicKernel(benchmark::State& state) {
  training::ModelShape s{768, 2048, 12, 12, 64, 256, 12, 32000};
  auto kernels = training::AllKernels(s);
  auto consts = training::KernelConstants(s);
  if (!kernels.ok() || !consts.ok()) {
    state.SkipWithError("kernel generation failed");
    return;
  }
  training::Kernel& k = (*kernels)[state.range(0)];
  state.SetLabel(k.layout.kernel);
  auto program = mil::VerifyProgram(k.program, *consts);
  if (!program.ok()) {
    state.SkipWithError(std::string(program.status().message()).c_str());
    return;
  }
  RunProgram(state, *program);
}
BENCHMARK(BM_DynamicKernel)->DenseRange(0, 9)->Unit(benchmark::kMillisecond)->UseManualTime();

// The same kernels with the whole program (GEMMs included) on the calling thread: what the
// backend's two-thread pool adds, measured in the same run. Only the kernels with much non-GEMM
// work (sdpaFwd, ffnFused, sdpaBwd1, sdpaBwd2).
void BM_DynamicKernelOneThread(benchmark::State& state) {
  const int previous = backend::cpu::SetParallelForThreads(1);
  BM_DynamicKernel(state);
  backend::cpu::SetParallelForThreads(previous);
}
BENCHMARK(BM_DynamicKernelOneThread)
    ->Arg(0)
    ->Arg(2)
    ->Arg(6)
    ->Arg(7)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace
}  // namespace anerd

BENCHMARK_MAIN();
