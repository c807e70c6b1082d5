// anerd's half of bench/generate_vs_runc.sh: greedy generation with the CPU Decoder from a llama2.c
// model file, the prompt encoded with the llama2.c tokenizer.bin as run.c encodes it (bos, then
// the text). Prints one JSON line: prompt tokens, prefill tokens/s (the whole prompt in one
// Prefill call), decode tokens/s (one Step per generated token, forward passes up to position
// steps - 1 as run.c's -n), and the generated text (for the driver's comparison with run.c's). Not
// a test.
//
//   generate_vs_runc_anerd --model FILE --tokenizer FILE [--prompt TEXT] [--steps 256]
//                          [--threads 0] [--out-text FILE]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "server/generation/decoder.h"
#include "server/generation/parallel_rows.h"
#include "server/generation/sampler.h"
#include "server/training/model_io.h"

#if !defined(ANERD_BLAS_ACCELERATE)
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

using Clock = std::chrono::steady_clock;

const char* Flag(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "generate_vs_runc_anerd: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace anerd;
#if !defined(ANERD_BLAS_ACCELERATE)
  openblas_set_num_threads(1);  // prefill GEMMs run on row blocks over the decoder's own pool
#endif
  generation::SetRowThreads(std::atoi(Flag(argc, argv, "--threads", "0")));
  const int steps = std::atoi(Flag(argc, argv, "--steps", "256"));
  const std::string prompt = Flag(argc, argv, "--prompt", "Once upon a time");
  absl::StatusOr<training::LoadedModel> m =
      training::LoadModelFile(Flag(argc, argv, "--model", ""));
  if (!m.ok()) return Fail(m.status().ToString());
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      tokenizer::LoadTokenizerFile("llama2c", Flag(argc, argv, "--tokenizer", ""));
  if (!tok.ok()) return Fail(tok.status().ToString());
  absl::StatusOr<std::vector<int32_t>> ids = (*tok)->Encode(prompt, {.add_bos = true});
  if (!ids.ok()) return Fail(ids.status().ToString());
  const int64_t n_prompt = static_cast<int64_t>(ids->size());
  if (steps <= n_prompt || steps > m->config.seq) return Fail("--steps must be in (prompt, seq]");
  auto params = std::make_shared<const std::vector<float>>(std::move(m->params));
  absl::StatusOr<std::unique_ptr<generation::Decoder>> d =
      generation::Decoder::Create(m->config, params);
  if (!d.ok()) return Fail(d.status().ToString());

  const Clock::time_point t0 = Clock::now();
  absl::StatusOr<absl::Span<const float>> logits = (*d)->Prefill(*ids);
  const Clock::time_point t1 = Clock::now();
  std::vector<int32_t> all = *ids;
  // As run.c: forward passes at positions 0 .. steps - 1, so the text ends with the token at
  // position `steps`; stops early at bos (run.c does).
  while (logits.ok() && static_cast<int64_t>(all.size()) <= steps) {
    const int next = generation::SampleArgmax(logits->data(), static_cast<int>(logits->size()));
    if (next == 1) break;
    all.push_back(next);
    if (static_cast<int64_t>(all.size()) <= steps) logits = (*d)->Step(next);
  }
  const Clock::time_point t2 = Clock::now();
  if (!logits.ok()) return Fail(logits.status().ToString());
  const int64_t decoded = static_cast<int64_t>(all.size()) - n_prompt;
  // Forward passes after the prefill: one per generated token but the last.
  const double decode_s = Seconds(t1, t2);
  absl::StatusOr<std::string> text = (*tok)->Decode(all);
  if (!text.ok()) return Fail(text.status().ToString());
  if (const char* out = Flag(argc, argv, "--out-text", nullptr)) std::ofstream(out) << *text;
  nlohmann::json j;
  j["prompt_tokens"] = n_prompt;
  j["generated_tokens"] = decoded;
  j["prefill_tok_s"] = n_prompt / Seconds(t0, t1);
  j["decode_tok_s"] = decoded > 1 ? (decoded - 1) / decode_s : 0.0;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
