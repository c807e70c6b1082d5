// The Generate RPC through a real daemon and anectl (issue 20 items 1 and 3): greedy generation
// from a session's checkpoint and from a llama2.c file gives the tokens of the in-process
// Decoder + Sampler on the same weights; the same seed gives the same tokens; the streamed text
// deltas concatenate to the decoded ids. generate_check.py covers the Python client: cancelling
// frees the slot, and every bad input's code and field.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/ane/ane_backend.h"
#include "server/backend/ane/ane_device_sim.h"
#include "server/generation/decoder.h"
#include "server/generation/make_decoder.h"
#include "server/generation/sampler.h"
#include "server/training/model.h"
#include "server/training/model_io.h"
#include "tests/testing/session_fixture.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunOptions;
using testing::RunProgram;
using testing::RunResult;

// What anectl generate --json streamed: the token ids, their text deltas and the summary.
struct Generated {
  std::vector<int32_t> ids;
  std::string deltas;
  nlohmann::json summary;
};

class GenerateTest : public testing::SessionFixture {
 protected:
  Generated Generate(DaemonProcess& d, const std::vector<std::string>& flags) {
    std::vector<std::string> args = {"generate", "--json"};
    args.insert(args.end(), flags.begin(), flags.end());
    RunResult r = d.Anectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Generated g;
    for (const Json& e : ParseLines(r.out)) {
      if (e["type"] == "token") {
        g.ids.push_back(e["id"]);
        g.deltas += e["text"].get<std::string>();
      } else {
        g.summary = e;
      }
    }
    return g;
  }

  // A finished tiny session trained on text (byte tokens); its checkpoint path.
  std::string TrainedCheckpoint(DaemonProcess& d, std::string* id) {
    *id = Start(d, {"--steps", "4", "--warmup", "1"});
    Events(d, *id);
    const Json s = Show(d, *id);
    EXPECT_EQ(s["state"], "completed");
    return s["checkpoint_path"];
  }
};

// Greedy ids from the in-process decoder and run.c's sampler at temperature 0.
std::vector<int32_t> ReferenceGreedy(const training::ModelConfig& config, std::vector<float> params,
                                     const std::vector<int32_t>& prompt, int n) {
  auto shared = std::make_shared<const std::vector<float>>(std::move(params));
  absl::StatusOr<std::unique_ptr<generation::Decoder>> decoder =
      generation::Decoder::Create(config, shared);
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  generation::SamplingParams sp;
  sp.temperature = 0;
  absl::StatusOr<generation::Sampler> sampler = generation::Sampler::Create(sp, config.vocab);
  EXPECT_TRUE(sampler.ok());
  std::vector<int32_t> out;
  absl::StatusOr<absl::Span<const float>> logits = (*decoder)->Prefill(prompt);
  for (int i = 0; i < n && logits.ok(); ++i) {
    out.push_back(*sampler->Sample(*logits));
    if (i + 1 < n) logits = (*decoder)->Step(out.back());
  }
  return out;
}

TEST_F(GenerateTest, GreedyFromASessionCheckpointMatchesTheInProcessDecoder) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  std::string id;
  const std::string ckpt_path = TrainedCheckpoint(d, &id);
  Generated g = Generate(
      d, {"--session", id, "--prompt", "Once upon", "--temperature", "0", "--max-tokens", "40"});
  ASSERT_EQ(g.ids.size(), 40u) << g.summary.dump();
  EXPECT_EQ(g.summary["stop_reason"], "max_tokens");
  EXPECT_EQ(g.summary["prompt_tokens"], 9);

  absl::StatusOr<training::Checkpoint> ckpt = training::ReadCheckpoint(ckpt_path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const std::vector<int32_t> prompt = {'O', 'n', 'c', 'e', ' ', 'u', 'p', 'o', 'n'};
  EXPECT_EQ(g.ids, ReferenceGreedy(ckpt->spec.model, ckpt->params, prompt, 40));

  // The deltas (whole UTF-8) concatenate to the generated ids decoded after the prompt.
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> bytes =
      tokenizer::LoadTokenizer("byte", "", "byte");
  ASSERT_TRUE(bytes.ok());
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), g.ids.begin(), g.ids.end());
  absl::StatusOr<std::string> decoded = (*bytes)->Decode(all);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ("Once upon" + g.deltas + g.summary["text"].get<std::string>().substr(g.deltas.size()),
            *decoded);
  EXPECT_EQ(g.summary["text"].get<std::string>().substr(0, g.deltas.size()), g.deltas);
}

// A small GQA model with random weights written as a llama2.c file at `file`, read back.
absl::StatusOr<training::LoadedModel> WriteTinyLlama2c(const std::string& file) {
  absl::StatusOr<training::ModelConfig> config =
      training::ParseCustomConfig("dim=48,hidden=128,layers=2,heads=4,kv_heads=2,vocab=300,seq=96");
  if (!config.ok()) return config.status();
  std::vector<float> params(training::ParamLayout(*config).total());
  training::InitParams(*config, 11, params.data());
  if (absl::Status s = training::ExportLlama2c(file, *config, params); !s.ok()) return s;
  return training::LoadModelFile(file);
}

TEST_F(GenerateTest, GreedyFromALlama2cFileMatchesTheInProcessDecoder) {
  const std::string file = dir_.path() + "/model.bin";
  absl::StatusOr<training::LoadedModel> loaded = WriteTinyLlama2c(file);
  ASSERT_TRUE(loaded.ok()) << loaded.status();

  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  Generated g = Generate(
      d, {"--model", file, "--tokens", "1,250,7", "--temperature", "0", "--max-tokens", "64"});
  EXPECT_EQ(g.ids, ReferenceGreedy(loaded->config, loaded->params, {1, 250, 7}, 64));
  EXPECT_EQ(g.summary["generated_tokens"], 64);
  EXPECT_EQ(g.summary["backend"], "cpu");
  EXPECT_GT(g.summary["decode_tokens_per_s"].get<double>(), 0);
}

// Greedy ids of the program decoder on an in-process ane-sim backend (fp16 programs).
std::vector<int32_t> ReferenceGreedyOnAneSim(const training::ModelConfig& config,
                                             std::vector<float> params,
                                             const std::vector<int32_t>& prompt, int n) {
  backend::ane::AneBackend sim(
      std::shared_ptr<backend::ane::AneDevice>(backend::ane::CreateSimDevice()),
      backend::ane::AneBackendOptions{});
  absl::StatusOr<std::unique_ptr<generation::TokenDecoder>> decoder = generation::MakeDecoder(
      "ane-sim", &sim, config, std::make_shared<const std::vector<float>>(std::move(params)));
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  if (!decoder.ok()) return {};
  std::vector<int32_t> out;
  absl::StatusOr<absl::Span<const float>> logits = (*decoder)->Prefill(prompt);
  for (int i = 0; i < n && logits.ok(); ++i) {
    out.push_back(
        static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin()));
    if (i + 1 < n) logits = (*decoder)->Step(out.back());
  }
  EXPECT_TRUE(logits.ok()) << logits.status();
  return out;
}

// On ane-sim the daemon runs the program decoder's calls on the backend's executor (through its
// worker) and gives the tokens an in-process program decoder on ane-sim gives.
TEST_F(GenerateTest, OnAneSimTheProgramDecoderGivesTheInProcessTokens) {
  const std::string file = dir_.path() + "/model.bin";
  absl::StatusOr<training::LoadedModel> loaded = WriteTinyLlama2c(file);
  ASSERT_TRUE(loaded.ok()) << loaded.status();

  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  Generated g = Generate(d, {"--model", file, "--tokens", "1,250,7", "--temperature", "0",
                             "--max-tokens", "32", "--backend", "ane-sim"});
  EXPECT_EQ(g.summary["backend"], "ane-sim");
  EXPECT_EQ(g.ids, ReferenceGreedyOnAneSim(loaded->config, loaded->params, {1, 250, 7}, 32));
}

TEST_F(GenerateTest, TheSameSeedGivesTheSameTokens) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  std::string id;
  TrainedCheckpoint(d, &id);
  const std::vector<std::string> flags = {"--session", id,     "--prompt",      "The",
                                          "--seed",    "1234", "--temperature", "1.0",
                                          "--top-p",   "0.95", "--max-tokens",  "48"};
  Generated a = Generate(d, flags);
  Generated b = Generate(d, flags);
  ASSERT_EQ(a.ids.size(), 48u);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.summary["seed"], 1234);
  std::vector<std::string> other = flags;
  other[5] = "99";
  Generated c = Generate(d, other);
  EXPECT_NE(a.ids, c.ids) << "a different seed samples differently";
}

TEST_F(GenerateTest, AnectlNamesTheBadField) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  std::string id;
  TrainedCheckpoint(d, &id);
  struct Case {
    std::vector<std::string> flags;
    std::string field;
  };
  const Case cases[] = {
      {{"--temperature", "-1"}, "temperature"},
      {{"--temperature", "nan"}, "temperature"},
      {{"--top-p", "1.5"}, "top_p"},
      {{"--top-p", "0"}, "top_p"},
      {{"--tokens", "1,999"}, "prompt_tokens[1]"},
      {{"--prompt", std::string(100, 'a')}, "prompt: 100 tokens do not fit the context of 64"},
      {{"--max-tokens", "100000"}, "max_tokens"},
      {{"--backend", "tpu"}, "backend"},
      {{"--weights", "best"}, "weights: session"},
      {{"--weights", "best"}, "--eval-every"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"generate", "--session", id};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    if (c.flags[0] != "--prompt" && c.flags[0] != "--tokens") {
      args.insert(args.end(), {"--prompt", "Hi"});
    }
    RunResult r = d.Anectl(args);
    EXPECT_EQ(r.exit_code, 1) << absl::StrJoin(c.flags, " ");
    EXPECT_THAT(r.err, HasSubstr(c.field)) << absl::StrJoin(c.flags, " ");
  }
  RunResult ok = d.Anectl({"generate", "--session", id, "--prompt", std::string(100, 'a'),
                           "--truncate-prompt", "--max-tokens", "4", "--json"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\"dropped_prompt_tokens\":39"));
}

TEST_F(GenerateTest, PythonClientCancelsFreesTheSlotAndTypesErrors) {
  if (RunProgram({"/usr/bin/python3", "-c", "import grpc"}).exit_code != 0) {
    GTEST_SKIP() << "/usr/bin/python3 lacks grpc (Debian: python3-grpcio)";
  }
  absl::StatusOr<training::ModelConfig> config = training::ParseCustomConfig("vocab=256,seq=64");
  ASSERT_TRUE(config.ok());
  std::vector<float> params(training::ParamLayout(*config).total());
  training::InitParams(*config, 5, params.data());
  const std::string file = dir_.path() + "/model.bin";
  ASSERT_TRUE(training::ExportLlama2c(file, *config, params).ok());
  DaemonProcess d(dir_.path());
  // One slot; room for a generation long enough to hold it until the script cancels it.
  ASSERT_TRUE(d.Start({"--max-generations", "1", "--max-generate-tokens", "100000",
                       "--max-generate-context", "100000"})
                  .ok())
      << d.ReadLog();
  RunOptions env;
  env.extra_env = {std::string("PYTHONPATH=") + ANERD_BINARY_DIR +
                   "/client/python/gen:" + ANERD_SOURCE_DIR + "/client/python"};
  env.timeout = absl::Seconds(240);
  RunResult r = RunProgram(
      {"/usr/bin/python3", std::string(ANERD_SOURCE_DIR) + "/tests/integration/generate_check.py",
       "--host", d.host(), "--data", data_, "--model", file},
      env);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("all generate checks passed"));
}

}  // namespace
}  // namespace anerd
