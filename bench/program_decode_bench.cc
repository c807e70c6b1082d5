// Prefill and decode tokens/s of the program decoder (server/generation/program_decoder.h) on
// the cpu backend and ane-sim, beside the CPU fp32 Decoder, for a stories15m-shaped model with
// random weights (the speed does not depend on the values). Not a test: prints one line per
// decoder; the first Prefill of each width compiles its programs, so a warm-up pass runs first
// and compile time is reported apart.
//
//   program_decode_bench [--model stories15m] [--prompt 128] [--steps 64] [--reps 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "server/backend/ane/ane_backend.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/generation/make_decoder.h"
#include "server/generation/program_decoder.h"
#include "server/generation/sampler.h"
#include "server/training/config.h"
#include "server/training/model.h"

namespace {

using namespace anerd;  // NOLINT: a benchmark's main

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Figures {
  double prefill_tps = 0, decode_tps = 0;
};

// One pass: Reset, prefill `prompt`, then `steps` greedy steps; the best of `reps` passes.
bool Measure(generation::TokenDecoder* d, const std::vector<int32_t>& prompt, int steps, int reps,
             Figures* best) {
  for (int r = 0; r < reps; ++r) {
    d->Reset();
    const auto t0 = Clock::now();
    auto logits = d->Prefill(prompt);
    const auto t1 = Clock::now();
    if (!logits.ok()) {
      std::fprintf(stderr, "prefill: %s\n", logits.status().ToString().c_str());
      return false;
    }
    int32_t token = generation::SampleArgmax(logits->data(), static_cast<int>(logits->size()));
    for (int i = 0; i < steps; ++i) {
      logits = d->Step(token);
      if (!logits.ok()) {
        std::fprintf(stderr, "step: %s\n", logits.status().ToString().c_str());
        return false;
      }
      token = generation::SampleArgmax(logits->data(), static_cast<int>(logits->size()));
    }
    const auto t2 = Clock::now();
    best->prefill_tps = std::max(best->prefill_tps, prompt.size() / (Ms(t0, t1) / 1000));
    best->decode_tps = std::max(best->decode_tps, steps / (Ms(t1, t2) / 1000));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "stories15m";
  int prompt_len = 128, steps = 64, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model"))
      model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--prompt"))
      prompt_len = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps"))
      reps = std::atoi(argv[i + 1]);
  }
  auto config = training::ModelConfigByName(model);
  if (!config.ok() || prompt_len < 1 || steps < 1 || reps < 1 || prompt_len + steps > config->seq) {
    std::fprintf(stderr, "bad arguments (model %s, prompt + steps <= seq)\n", model.c_str());
    return 2;
  }
  auto params = std::make_shared<std::vector<float>>(training::ParamLayout(*config).total());
  training::InitParams(*config, 1, params->data());
  std::shared_ptr<const std::vector<float>> shared = params;
  std::vector<int32_t> prompt(prompt_len);
  for (int i = 0; i < prompt_len; ++i) prompt[i] = (i * 7919 + 13) % config->vocab;

  backend::cpu::CpuBackend cpu(backend::cpu::CpuBackendOptions{});
  backend::ane::AneBackend sim(
      std::shared_ptr<backend::ane::AneDevice>(backend::ane::CreateSimDevice()),
      backend::ane::AneBackendOptions{});
  struct Row {
    const char* label;
    const char* name;
    backend::Backend* backend;
    bool programs;
  };
  std::printf("model %s, prompt %d, decode %d steps, best of %d\n", model.c_str(), prompt_len,
              steps, reps);
  for (const Row& row : {Row{"fp32 Decoder (cpu)", "cpu", nullptr, false},
                         Row{"ProgramDecoder cpu", "cpu", &cpu, true},
                         Row{"ProgramDecoder ane-sim", "ane-sim", &sim, true}}) {
    generation::MakeDecoderOptions options;
    options.programs = row.programs;
    auto d = generation::MakeDecoder(row.name, row.backend, *config, shared, options);
    if (!d.ok()) {
      std::fprintf(stderr, "%s: %s\n", row.label, d.status().ToString().c_str());
      return 1;
    }
    const auto c0 = Clock::now();
    Figures warm;
    if (!Measure(d->get(), prompt, steps, 1, &warm)) return 1;  // compiles the widths it uses
    const double first_ms = Ms(c0, Clock::now());
    Figures f;
    if (!Measure(d->get(), prompt, steps, reps, &f)) return 1;
    std::printf(
        "%-24s prefill %8.1f tok/s   decode %7.1f tok/s   first pass (with compiles) %.0f ms\n",
        row.label, f.prefill_tps, f.decode_tps, first_ms);
  }
  return 0;
}
