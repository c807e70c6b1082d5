// Evaluation in training through the real daemon and anectl (issue 20 item 4): eval events every
// N steps whose loss equals an independent numpy forward (tests/generation/runc_reference.py,
// float64) on the exported weights and the same windows; the best-validation checkpoint is the
// one of the lowest eval loss, survives a restart and exports with `train export --best`; sample
// events carry the text an independent greedy decode of that step's weights gives; the Evaluate
// RPC (`anectl eval`) agrees and refuses a missing checkpoint and data too short for a sequence.
#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/session_fixture.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using Json = nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";
constexpr int kSeq = 64;                 // tiny's
constexpr double kLossTolerance = 2e-4;  // fp32 engine vs float64 reference, nats

bool HaveNumpy() { return testing::RunProgram({kPython, "-c", "import numpy"}).exit_code == 0; }

std::string Script() {
  return absl::StrCat(ANERD_SOURCE_DIR, "/tests/integration/eval_reference.py");
}

class EvalTest : public testing::SessionFixture {
 protected:
  // The reference's JSON for `args` (mode first).
  Json Reference(std::vector<std::string> args) {
    const std::string out = dir_.path() + "/ref.json";
    std::vector<std::string> argv = {kPython, Script()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--out", out});
    testing::RunOptions options;
    options.timeout = absl::Seconds(120);
    RunResult r = testing::RunProgram(argv, options);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(testing::ReadFile(out));
  }

  std::string Export(DaemonProcess& d, const std::string& id, bool best, const std::string& name) {
    const std::string path = dir_.path() + "/" + name;
    std::vector<std::string> args = {"train", "export", id, path};
    if (best) args.insert(args.begin() + 3, "--best");
    RunResult r = d.Anectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return path;
  }

  static std::vector<Json> OfType(const std::vector<Json>& events, const std::string& type) {
    std::vector<Json> out;
    for (const Json& e : events) {
      if (e["type"] == type) out.push_back(e);
    }
    return out;
  }
};

TEST_F(EvalTest, EvalAndSampleEventsMatchIndependentReferencesAndTheBestSurvivesARestart) {
  if (!HaveNumpy()) GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  std::string id;
  Json show;
  std::vector<Json> evals;
  {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok());
    // A high constant learning rate makes the held-out loss move (and possibly rise again),
    // so the best evaluation need not be the last.
    id = Start(
        d, {"--steps",         "6",         "--numerics",      "fp32",     "--val-fraction", "0.1",
            "--eval-every",    "2",         "--eval-batches",  "2",        "--sample-every", "3",
            "--sample-prompt", "Once upon", "--sample-tokens", "12",       "--lr",           "0.02",
            "--warmup",        "0",         "--schedule",      "constant", "--seed",         "5"});
    ASSERT_FALSE(id.empty());
    const std::vector<Json> events = Events(d, id);
    evals = OfType(events, "eval");
    ASSERT_EQ(evals.size(), 3u);
    for (size_t i = 0; i < evals.size(); ++i) {
      EXPECT_EQ(evals[i]["step"], 2 * static_cast<int64_t>(i + 1));
      EXPECT_EQ(evals[i]["source"], "val_split");
      EXPECT_EQ(evals[i]["sequences"], 2);
      EXPECT_NEAR(evals[i]["perplexity"].get<double>(), std::exp(evals[i]["loss"].get<double>()),
                  1e-9 * evals[i]["perplexity"].get<double>());
    }
    const std::vector<Json> samples = OfType(events, "sample");
    ASSERT_EQ(samples.size(), 2u);
    EXPECT_EQ(samples[0]["step"], 3);
    EXPECT_EQ(samples[1]["step"], 6);
    show = Show(d, id);
    ASSERT_EQ(show["state"], "completed");

    // The last evaluation and sample against the final weights (step 6), computed in float64
    // by the numpy run.c reading on the same held-out windows.
    const std::string latest = Export(d, id, false, "latest.bin");
    const int64_t val_begin = show["spec"]["validation"]["begin_token"];
    Json ref = Reference({"loss", "--model", latest, "--data", data_, "--begin",
                          std::to_string(val_begin), "--windows", "2"});
    EXPECT_NEAR(evals.back()["loss"].get<double>(), ref["loss"].get<double>(), kLossTolerance);
    Json sample =
        Reference({"sample", "--model", latest, "--prompt", "Once upon", "--steps", "12"});
    EXPECT_EQ(samples[1]["text"], sample["text"]);
    EXPECT_EQ(samples[1]["prompt"], "Once upon");
    EXPECT_EQ(samples[1]["tokens"], 12);
    ASSERT_TRUE(d.Stop(SIGTERM).ok());
  }
  // The best is the evaluation of the lowest loss, flagged as it happened.
  size_t argmin = 0;
  for (size_t i = 1; i < evals.size(); ++i) {
    if (evals[i]["loss"].get<double>() < evals[argmin]["loss"].get<double>()) argmin = i;
  }
  EXPECT_TRUE(evals[argmin]["best"].get<bool>());
  EXPECT_TRUE(evals[0]["best"].get<bool>()) << "the first evaluation is the best so far";
  const int64_t best_step = evals[argmin]["step"];
  const double best_loss = evals[argmin]["loss"];
  std::printf("eval losses %.5f %.5f %.5f; best at step %lld; train best %.5f\n",
              evals[0]["loss"].get<double>(), evals[1]["loss"].get<double>(),
              evals[2]["loss"].get<double>(), static_cast<long long>(best_step),
              show["best_loss"].get<double>());
  ASSERT_TRUE(show.contains("best_val"));
  EXPECT_EQ(show["best_val"]["step"], best_step);
  EXPECT_DOUBLE_EQ(show["best_val"]["loss"].get<double>(), best_loss);

  // After a restart: the same best, exported with --best, whose weights give that loss.
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const Json again = Show(d, id);
  ASSERT_TRUE(again.contains("best_val")) << again.dump();
  EXPECT_EQ(again["best_val"]["step"], best_step);
  EXPECT_DOUBLE_EQ(again["best_val"]["loss"].get<double>(), best_loss);
  EXPECT_EQ(again["last_eval"]["step"], 6);
  EXPECT_EQ(again["last_sample"]["step"], 6);
  const std::string best = Export(d, id, true, "best.bin");
  const int64_t val_begin = show["spec"]["validation"]["begin_token"];
  Json ref = Reference({"loss", "--model", best, "--data", data_, "--begin",
                        std::to_string(val_begin), "--windows", "2"});
  EXPECT_NEAR(best_loss, ref["loss"].get<double>(), kLossTolerance);

  // The Evaluate RPC on the same checkpoint and held-out data: the engine's own figure.
  RunResult e = d.Anectl({"eval", "--session", id, "--best", "--batches", "2", "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const Json ev = Json::parse(e.out);
  EXPECT_NEAR(ev["loss"].get<double>(), best_loss, 1e-9);
  EXPECT_EQ(ev["step"], best_step);
  EXPECT_EQ(ev["source"], "val_split");
  EXPECT_EQ(ev["sequences"], 2);
}

TEST_F(EvalTest, EvaluateAModelFileAndRefuseBadInput) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  // No held-out data: the evaluation names the data's tail as its source.
  const std::string id =
      Start(d, {"--steps", "2", "--numerics", "fp32", "--eval-every", "2", "--eval-batches", "1"});
  ASSERT_FALSE(id.empty());
  const std::vector<Json> evals = OfType(Events(d, id), "eval");
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0]["source"], "data_tail");
  const std::string model = Export(d, id, false, "model.bin");

  // A model file on data it names: the first windows of the file.
  RunResult r = d.Anectl({"eval", "--model", model, "--data", data_, "--batches", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json out = Json::parse(r.out);
  EXPECT_EQ(out["sequences"], 3);
  EXPECT_EQ(out["tokens"], 3 * kSeq);
  EXPECT_EQ(out["source"], "data");
  if (HaveNumpy()) {
    Json ref = Reference({"loss", "--model", model, "--data", data_, "--windows", "3"});
    EXPECT_NEAR(out["loss"].get<double>(), ref["loss"].get<double>(), kLossTolerance);
  }

  client::ClientOptions options;
  options.endpoint.path = d.socket();
  auto client = client::AnerdClient::Create(options);
  auto call = [&](const v1::EvaluateRequest& request) {
    v1::EvaluateResponse response;
    auto context = client->NewContext(absl::Seconds(60));
    return client->stub()->Evaluate(context.get(), request, &response);
  };
  // A session without a best checkpoint (no --eval-every): FAILED_PRECONDITION naming it.
  const std::string plain = Start(d, {"--steps", "1"});
  Events(d, plain);
  v1::EvaluateRequest no_best;
  no_best.set_session_id(plain);
  no_best.set_checkpoint("best");
  grpc::Status s = call(no_best);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("best checkpoint"));
  // Data shorter than one sequence (seq + 1 tokens): INVALID_ARGUMENT naming the file.
  const std::string tiny = dir_.path() + "/short.txt";
  std::ofstream(tiny) << "too short";
  v1::EvaluateRequest short_data;
  short_data.set_model(model);
  short_data.set_data(tiny);
  s = call(short_data);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("too short"));
  EXPECT_THAT(s.error_message(), HasSubstr("short.txt"));
  // An unknown session: NOT_FOUND; neither model nor session: INVALID_ARGUMENT.
  v1::EvaluateRequest unknown;
  unknown.set_session_id("nope");
  EXPECT_EQ(call(unknown).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(call(v1::EvaluateRequest()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // export --best of a session without one.
  RunResult b = d.Anectl({"train", "export", "--best", plain, dir_.path() + "/none.bin"});
  EXPECT_NE(b.exit_code, 0);
  EXPECT_THAT(b.err, HasSubstr("no best-validation checkpoint"));
}

TEST_F(EvalTest, SamplingTokenDataIsRefusedAtStart) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string tokens = dir_.path() + "/data.bin";
  {
    std::ofstream out(tokens, std::ios::binary);
    for (int i = 0; i < 4000; ++i) {
      const uint16_t t = static_cast<uint16_t>(i % 200);
      out.write(reinterpret_cast<const char*>(&t), 2);
    }
  }
  RunResult r = d.Anectl({"train", "start", "--data", tokens, "--steps", "2", "--sample-every", "1",
                          "--sample-prompt", "hi"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("sample_every"));
  r = d.Anectl({"train", "start", "--data", data_, "--steps", "2", "--sample-every", "1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("sample_prompt"));
}

}  // namespace
}  // namespace anerd
