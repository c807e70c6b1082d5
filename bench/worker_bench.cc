// Worker isolation overhead (issue: disposable backend workers): the same work through the
// in-process CPU backend and through a WorkerBackend (the anerd binary as a worker process), in
// one run, interleaved so that machine noise hits both alike. Not a test; prints JSON lines.
//
//   worker_bench [--evals 2000] [--steps 6] [--model stories15m] [--anerd PATH]
//
// (a) tiny kernel evaluation round trip (64x64 1x1 conv over 64 positions, fp16): median
//     microseconds per Run, and the difference (target <= 50 us);
// (b) training step of --model (fp32 numerics): median ms per step, and the overhead in percent
//     (target <= 5% for stories15m).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "common/paths.h"
#include "common/synth_stories.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/training/trainer.h"
#include "server/worker/worker_backend.h"

namespace {

using anerd::backend::Backend;

const char* Flag(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string TinyConvMil() {
  std::string w = "[";
  for (int i = 0; i < 64 * 64; ++i) w += (i ? "," : "") + std::to_string((i % 7) * 0.125 - 0.375);
  w += "]";
  return absl::StrFormat(R"(program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 64]> x) {
        tensor<fp16, [64, 64, 1, 1]> W = const()[name = string("W"), val = tensor<fp16, [64, 64, 1, 1]>(%s)];
        string pt = const()[name = string("pt"), val = string("valid")];
        tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];
        tensor<int32, [4]> pd = const()[name = string("pd"), val = tensor<int32, [4]>([0, 0, 0, 0])];
        tensor<int32, [2]> dl = const()[name = string("dl"), val = tensor<int32, [2]>([1, 1])];
        int32 gr = const()[name = string("gr"), val = int32(1)];
        tensor<fp16, [1, 64, 1, 64]> y = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = W, x = x)[name = string("y")];
    } -> (y);
}
)",
                         w);
}

// Median microseconds per Run of `program` on `backend`, `evals` runs after 50 warm-up runs.
std::vector<double> EvalTimes(Backend& backend, const anerd::mil::VerifiedProgram& program,
                              int evals) {
  auto compiled = backend.Compile(program, {});
  if (!compiled.ok()) {
    std::fprintf(stderr, "compile: %s\n", compiled.status().ToString().c_str());
    std::exit(1);
  }
  std::vector<float> x(64 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) * 0.1f;
  std::vector<anerd::backend::NamedTensor> in = {
      {"x", anerd::backend::Tensor::FromFloats(anerd::mil::DType::kFp16, {1, 64, 1, 64}, x)}};
  std::vector<double> us;
  for (int i = 0; i < evals + 50; ++i) {
    const absl::Time t0 = absl::Now();
    auto r = (*compiled)->Run(in);
    const double dt = absl::ToDoubleMicroseconds(absl::Now() - t0);
    if (!r.ok()) {
      std::fprintf(stderr, "run: %s\n", r.status().ToString().c_str());
      std::exit(1);
    }
    if (i >= 50) us.push_back(dt);
  }
  return us;
}

void BenchEval(Backend& local, Backend& worker, int evals) {
  auto program = anerd::mil::ParseProgram(TinyConvMil());
  auto verified = anerd::mil::VerifyProgram(*std::move(program));
  if (!verified.ok()) {
    std::fprintf(stderr, "%s\n", verified.status().ToString().c_str());
    std::exit(1);
  }
  std::vector<double> a, b;
  for (int round = 0; round < 4; ++round) {  // interleaved rounds
    for (double v : EvalTimes(local, *verified, evals / 4)) a.push_back(v);
    for (double v : EvalTimes(worker, *verified, evals / 4)) b.push_back(v);
  }
  std::printf(
      "{\"type\":\"tiny_eval\",\"evals\":%d,\"in_process_us\":%.1f,\"worker_us\":%.1f,"
      "\"overhead_us\":%.1f,\"target_us\":50}\n",
      evals, Median(a), Median(b), Median(b) - Median(a));
}

void BenchTraining(Backend& local, Backend& worker, const std::string& model, int steps) {
  using namespace anerd::training;
  char dir[] = "/tmp/worker-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) std::exit(1);
  const std::string data = std::string(dir) + "/stories.txt";
  std::ofstream(data) << anerd::SynthesizeStories(3, 2 << 20);
  TrainSpec spec;
  auto config = ModelConfigByName(model);
  if (!config.ok()) std::exit(2);
  spec.model = *config;
  spec.data_path = data;
  spec.steps = steps + 2;
  spec.numerics = "fp32";
  spec.loss_scale = "1";
  spec.warmup = 0;
  auto a = Trainer::Create(spec, &local);
  auto b = Trainer::Create(spec, &worker);
  if (!a.ok() || !b.ok()) {
    std::fprintf(stderr, "trainer: %s %s\n", a.status().ToString().c_str(),
                 b.status().ToString().c_str());
    std::exit(1);
  }
  std::vector<double> ma, mb;
  bool identical = true;
  for (int i = 0; i < steps + 2; ++i) {
    auto ra = (*a)->Step();
    auto rb = (*b)->Step();
    if (!ra.ok() || !rb.ok()) std::exit(1);
    if (ra->loss != rb->loss) {
      identical = false;
      std::fprintf(stderr, "step %d: losses differ (%g vs %g)\n", i + 1, ra->loss, rb->loss);
    }
    if (i < 2) continue;
    ma.push_back(ra->step_ms);
    mb.push_back(rb->step_ms);
  }
  std::printf(
      "{\"type\":\"train_step\",\"model\":\"%s\",\"steps\":%d,\"in_process_ms\":%.1f,"
      "\"worker_ms\":%.1f,\"overhead_pct\":%.2f,\"target_pct\":5,\"losses_identical\":%s}\n",
      model.c_str(), steps, Median(ma), Median(mb), 100.0 * (Median(mb) / Median(ma) - 1.0),
      identical ? "true" : "false");
  std::remove(data.c_str());
  rmdir(dir);
}

}  // namespace

int main(int argc, char** argv) {
  std::string self = anerd::SelfExecutablePath();
  std::string anerd_path = self.substr(0, self.rfind('/')) + "/../bin/anerd";
  anerd_path = Flag(argc, argv, "--anerd", anerd_path.c_str());
  anerd::backend::cpu::CpuBackend local(anerd::backend::cpu::CpuBackendOptions{});
  anerd::worker::WorkerOptions options;
  options.backend = "cpu";
  options.binary = anerd_path;
  options.log_level = "warn";
  auto worker = anerd::worker::WorkerBackend::Start(options);
  if (!worker.ok()) {
    std::fprintf(stderr, "%s\n", worker.status().ToString().c_str());
    return 1;
  }
  BenchEval(local, **worker, std::atoi(Flag(argc, argv, "--evals", "2000")));
  BenchTraining(local, **worker, Flag(argc, argv, "--model", "stories15m"),
                std::atoi(Flag(argc, argv, "--steps", "6")));
  return 0;
}
