// The Python client (client/python) against the real daemon: example.py compiles the conv1x1
// kernel (weights streamed in chunks), checks its output against numpy, and starts and watches a
// tiny training run to completion, with the `anerd` package the anerd_python_stubs target stages in
// the build tree (python_package_test.cc pip-installs it instead). Skips only when /usr/bin/python3
// cannot import grpc.
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunOptions;
using testing::RunProgram;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";

RunOptions PythonEnv() {
  RunOptions options;
  options.extra_env = {std::string("PYTHONPATH=") + ANERD_BINARY_DIR +
                       "/client/python/gen:" + ANERD_SOURCE_DIR + "/client/python"};
  options.timeout = absl::Seconds(240);
  return options;
}

class PythonClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunResult probe = RunProgram({kPython, "-c", "import grpc, numpy"});
    if (probe.exit_code != 0) {
      GTEST_SKIP() << kPython
                   << " lacks grpc or numpy (Debian: python3-grpcio python3-numpy): " << probe.err;
    }
  }

  std::string Example() const {
    return std::string(ANERD_SOURCE_DIR) + "/client/python/example.py";
  }
};

TEST_F(PythonClientTest, ExampleCompilesRunsAKernelAndWatchesTraining) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok()) << daemon.ReadLog();
  const std::string data = dir.path() + "/stories.txt";
  RunResult synth = daemon.Anectl({"data", "synth", "--out", data, "--bytes", "200000"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;

  RunResult r = RunProgram({kPython, Example(), "--host", daemon.host(), "--data", data, "--steps",
                            "12", "--chunk-bytes", "1000"},
                           PythonEnv());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  Json summary = Json::parse(last);
  EXPECT_EQ(summary["kernel"]["output_shape"], Json({1, 32, 1, 256}));
  EXPECT_EQ(summary["kernel"]["weight_bytes"], 4224) << "every streamed chunk arrived";
  EXPECT_LT(summary["kernel"]["max_abs_error"].get<double>(), 0.02);
  EXPECT_GT(summary["kernel"]["max_abs_output"].get<double>(), 0.05) << "not all zeros";
  EXPECT_EQ(summary["training"]["state"], "completed");
  EXPECT_EQ(summary["training"]["steps_seen"], 12);
  EXPECT_EQ(summary["training"]["states"].back(), "completed");

  // The kernel and session the script made are visible to anectl.
  RunResult kernels = daemon.Anectl({"kernel", "ls", "--json"});
  EXPECT_THAT(kernels.out, HasSubstr(summary["kernel"]["kernel_id"].get<std::string>()));
  RunResult show = daemon.Anectl({"train", "show", summary["training"]["session_id"], "--json"});
  EXPECT_EQ(Json::parse(show.out)["session"]["step"], 12);
}

TEST_F(PythonClientTest, PushListPullAndTrainOnAnArtifact) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok()) << daemon.ReadLog();
  const std::string data = dir.path() + "/stories.txt";
  ASSERT_EQ(daemon.Anectl({"data", "synth", "--out", data, "--bytes", "30000"}).exit_code, 0);
  const std::string script =
      "import json, sys, anerd_client\n"
      "c = anerd_client.connect(sys.argv[1])\n"
      "info, sent = c.push(sys.argv[2], name='s.txt')\n"
      "again, sent_again = c.push(sys.argv[2])\n"
      "n = c.pull(info.id, sys.argv[3])\n"
      "ids = [a.id for a in c.list_artifacts('dataset')]\n"
      "s = c.start_training(data_artifact=info.id, steps=1, val_fraction=0.5, custom_config="
      "'dim=32,hidden=64,layers=1,heads=2,kv_heads=2,vocab=256,seq=16')\n"
      "print(json.dumps({'id': info.id, 'sent': sent, 'sent_again': sent_again, 'pulled': n,"
      " 'dedup': again.deduplicated, 'listed': ids, 'train_tokens': s.spec.validation.train_tokens}"
      "))\n";
  const std::string out = dir.path() + "/pulled.txt";
  RunResult r = RunProgram({kPython, "-c", script, daemon.host(), data, out}, PythonEnv());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json j = Json::parse(r.out);
  EXPECT_EQ(j["sent"], 30000);
  EXPECT_EQ(j["sent_again"], 0) << "the second push sends no bytes";
  EXPECT_EQ(j["dedup"], true);
  EXPECT_EQ(j["pulled"], 30000);
  EXPECT_EQ(testing::ReadFile(out), testing::ReadFile(data));
  EXPECT_EQ(j["listed"], Json({j["id"]}));
  EXPECT_EQ(j["train_tokens"], 15000);
}

// tokenize_dataset runs the TokenizeDataset stream to its result; a non-UTF-8 text is the typed
// InvalidArgument naming the byte offset.
TEST_F(PythonClientTest, TokenizeDatasetReturnsTheResultAndTypedErrors) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok()) << daemon.ReadLog();
  const std::string data = dir.path() + "/stories.txt";
  ASSERT_EQ(daemon.Anectl({"data", "synth", "--out", data, "--bytes", "5000"}).exit_code, 0);
  const std::string bad = dir.path() + "/bad.txt";
  std::ofstream(bad, std::ios::binary) << "ok\n\xfe";
  const std::string script =
      "import json, sys, anerd\n"
      "with anerd.connect(sys.argv[1]) as c:\n"
      "  info, _ = c.push(sys.argv[2])\n"
      "  seen = []\n"
      "  r = c.tokenize_dataset(info.id, 'byte', progress=lambda d, t: seen.append(t))\n"
      "  bad, _ = c.push(sys.argv[3])\n"
      "  tok, _ = c.push(sys.argv[4], kind='tokenizer')\n"
      "  try:\n"
      "    c.tokenize_dataset(bad.id, tok.id)\n"
      "    err = ''\n"
      "  except anerd.InvalidArgument as e:\n"
      "    err = e.message\n"
      "  print(json.dumps({'name': r.artifact.name, 'tokens': r.tokens, 'id_bytes': r.id_bytes,"
      " 'totals': sorted(set(seen)), 'error': err}))\n";
  RunResult r =
      RunProgram({kPython, "-c", script, daemon.host(), data, bad,
                  std::string(ANERD_SOURCE_DIR) + "/tests/tokenizer/testdata/tiny_tokenizer.json"},
                 PythonEnv());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json j = Json::parse(r.out);
  EXPECT_EQ(j["name"], "stories.tokens.bin");
  EXPECT_EQ(j["tokens"], 5000);
  EXPECT_EQ(j["id_bytes"], 2);
  EXPECT_EQ(j["totals"], Json({5000}));
  EXPECT_THAT(j["error"].get<std::string>(), HasSubstr("byte offset 3"));
}

// start_training with a local file the daemon cannot read (outside its --data-root) pushes it
// and trains on the artifact, as `anectl train start --data ./local.txt` does; a second start
// sends no bytes (the daemon has the digest); upload=False leaves the daemon's refusal standing.
TEST_F(PythonClientTest, StartTrainingUploadsALocalFileTheDaemonCannotRead) {
  TempDir dir;
  TempDir elsewhere;  // not below the daemon's data root
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok()) << daemon.ReadLog();
  const std::string data = elsewhere.path() + "/local.txt";
  ASSERT_EQ(daemon.Anectl({"data", "synth", "--out", data, "--bytes", "20000"}).exit_code, 0);
  const std::string script =
      "import hashlib, json, sys, anerd\n"
      "cfg = 'dim=32,hidden=64,layers=1,heads=2,kv_heads=2,vocab=256,seq=16'\n"
      "with anerd.connect(sys.argv[1]) as c:\n"
      "  sent = []\n"
      "  s = c.start_training(data=sys.argv[2], steps=2, custom_config=cfg,\n"
      "                       progress=lambda p, d, t: sent.append(d))\n"
      "  for _ in c.watch(s.id, timeout=120): pass\n"
      "  again = []\n"
      "  s2 = c.start_training(data=sys.argv[2], steps=1, custom_config=cfg,\n"
      "                        progress=lambda p, d, t: again.append(d))\n"
      "  try:\n"
      "    c.start_training(data=sys.argv[2], steps=1, custom_config=cfg, upload=False)\n"
      "    refused = ''\n"
      "  except anerd.PermissionDenied as e:\n"
      "    refused = e.message\n"
      "  print(json.dumps({'artifact': s.spec.data_artifact, 'data': s.spec.data,\n"
      "    'sha': hashlib.sha256(open(sys.argv[2], 'rb').read()).hexdigest(),\n"
      "    'sent': max(sent, default=0), 'final': c.get_session(s.id).state,\n"
      "    'again_artifact': s2.spec.data_artifact, 'again_sent': len(again), 'refused': "
      "refused}))\n";
  RunResult r = RunProgram({kPython, "-c", script, daemon.host(), data}, PythonEnv());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << daemon.ReadLog();
  Json j = Json::parse(r.out);
  EXPECT_EQ(j["artifact"], j["sha"]);
  EXPECT_EQ(j["data"], "") << "named by artifact id, not by the path the daemon refused";
  EXPECT_EQ(j["sent"], 20000);
  EXPECT_EQ(j["final"], "completed");
  EXPECT_EQ(j["again_artifact"], j["sha"]);
  EXPECT_EQ(j["again_sent"], 0) << "the second start sends no bytes";
  EXPECT_THAT(j["refused"].get<std::string>(), HasSubstr("outside the daemon's data roots"));
}

TEST_F(PythonClientTest, UnreachableDaemonIsAnError) {
  TempDir dir;
  RunOptions options = PythonEnv();
  options.timeout = absl::Seconds(60);
  RunResult r = RunProgram({kPython, "-c",
                            "import anerd_client, grpc\n"
                            "c = anerd_client.connect('" +
                                dir.path() +
                                "/none.sock', timeout=2)\n"
                                "try:\n  c.info()\nexcept grpc.RpcError as e:\n"
                                "  print(e.code().name)\n"},
                           options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("UNAVAILABLE"));
}

// The package the build tree stages (what anerd_client wraps) raises its typed error, naming the
// socket it could not reach.
TEST_F(PythonClientTest, StagedPackageRaisesTypedUnavailable) {
  TempDir dir;
  RunOptions options = PythonEnv();
  options.timeout = absl::Seconds(60);
  RunResult r = RunProgram({kPython, "-c",
                            "import sys, anerd\n"
                            "with anerd.connect(sys.argv[1], timeout=2) as c:\n"
                            "  try:\n    c.info()\n"
                            "  except anerd.Unavailable as e:\n"
                            "    print(type(e).__name__, e.code.name, e.message)\n",
                            dir.path() + "/none.sock"},
                           options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("Unavailable UNAVAILABLE anerd at unix:" + dir.path() + "/none.sock"));
}

}  // namespace
}  // namespace anerd
