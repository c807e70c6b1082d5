// Issue 19's done-when, end to end from a remote TCP client holding a token, once through anectl
// and once through the Python client: push a text file and a SentencePiece model (as a tokenizer
// artifact), tokenize the text on the daemon with it, train a tiny model for a few steps on the
// token artifact, export the result as Hugging Face safetensors, and bring it back. The files
// that come back are checked without anerd's own readers: config.json parses with the fields
// transformers needs, the safetensors header is well formed (offsets in order, inside the file,
// bytes = dtype size x shape) and every tensor's shape follows from config.json.
// Skips when /usr/bin/python3 lacks sentencepiece or grpc (python3-sentencepiece,
// python3-grpcio): the model is trained by python3-sentencepiece in the test.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/token_daemon.h"

namespace anerd {
namespace {

using testing::RunOptions;
using testing::RunProgram;
using testing::RunResult;
using testing::TempDir;
using testing::TokenDaemon;
using Json = nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";

// Trains a small unigram model (at most 320 pieces, 256 of them bytes) on a small corpus and writes
// a text file of documents.
constexpr char kPrepare[] = R"PY(
import random, sys
import sentencepiece as spm
d = sys.argv[1]
words = ["the", "cat", "don't", "caf\u00e9", "dog", "ran", "home", "12", "345", "Once", "upon",
         "a", "time", "\u65e5\u672c"]
r = random.Random(3)
with open(d + "/corpus.txt", "w") as f:
    for _ in range(300):
        f.write(" ".join(r.choice(words) for _ in range(8)) + "\n")
spm.SentencePieceTrainer.train(input=d + "/corpus.txt", model_prefix=d + "/stories",
                               vocab_size=320, hard_vocab_limit=False, model_type="unigram",
                               byte_fallback=True, character_coverage=1.0, num_threads=1,
                               minloglevel=2)
with open(d + "/stories.txt", "w") as f:
    for _ in range(60):
        f.write(" ".join(r.choice(words) for _ in range(r.randint(5, 30))) + ".\n\n")
)PY";

// The same pipeline through the anerd package: argv = address token text model out_dir.
constexpr char kPythonPipeline[] = R"PY(
import json, sys, anerd
address, token, text, model, out = sys.argv[1:6]
with anerd.connect(address, token=token) as c:
    text_info, _ = c.push(text)
    tok_info, _ = c.push(model, kind="tokenizer")
    tokens = c.tokenize_dataset(text_info.id, tok_info.id, add_eos=True)
    cfg = "dim=32,hidden=64,layers=1,heads=2,kv_heads=2,vocab=%d,seq=16" % tokens.vocab_size
    s = c.start_training(data_artifact=tokens.artifact.id, custom_config=cfg, steps=3)
    states = [e.state for e in c.watch(s.id, timeout=240) if e.WhichOneof("kind") == "state"]
    files = c.export(s.id, out, format="hf", timeout=120)
    # A local path over TCP: start_training pushes it first (the daemon has it: no bytes go).
    sent = []
    local = c.start_training(data=text, steps=1, progress=lambda p, d, t: sent.append(d),
                             custom_config=cfg.replace("vocab=%d" % tokens.vocab_size, "vocab=256"))
    print(json.dumps({"text": text_info.id, "tokenizer": tok_info.id,
                      "tokens": tokens.artifact.id, "token_count": tokens.tokens,
                      "session": s.id, "state": c.get_session(s.id).state, "files": files,
                      "local_artifact": local.spec.data_artifact, "local_path": local.spec.data,
                      "local_sent": len(sent)}))
)PY";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Checks an exported Hugging Face directory: config.json and model.safetensors.
void CheckHfExport(const std::string& dir, int64_t vocab) {
  const Json config = Json::parse(ReadAll(dir + "/config.json"), nullptr, false);
  ASSERT_TRUE(config.is_object()) << "config.json does not parse";
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "vocab_size"}) {
    ASSERT_TRUE(config.contains(key) && config[key].is_number_integer()) << key;
  }
  EXPECT_EQ(config["vocab_size"], vocab);
  EXPECT_EQ(config["hidden_size"], 32);
  EXPECT_EQ(config["num_hidden_layers"], 1);
  const int64_t d = config["hidden_size"], h = config["intermediate_size"];
  const int64_t heads = config["num_attention_heads"], kv = config["num_key_value_heads"];
  const int64_t hd = config.value("head_dim", d / heads);
  std::map<std::string, std::vector<int64_t>> want = {
      {"model.embed_tokens.weight", {vocab, d}},
      {"model.norm.weight", {d}},
      {"model.layers.0.self_attn.q_proj.weight", {heads * hd, d}},
      {"model.layers.0.self_attn.k_proj.weight", {kv * hd, d}},
      {"model.layers.0.self_attn.v_proj.weight", {kv * hd, d}},
      {"model.layers.0.self_attn.o_proj.weight", {d, heads * hd}},
      {"model.layers.0.mlp.gate_proj.weight", {h, d}},
      {"model.layers.0.mlp.up_proj.weight", {h, d}},
      {"model.layers.0.mlp.down_proj.weight", {d, h}},
      {"model.layers.0.input_layernorm.weight", {d}},
      {"model.layers.0.post_attention_layernorm.weight", {d}},
  };
  if (!config.value("tie_word_embeddings", false)) want["lm_head.weight"] = {vocab, d};

  const std::string st = ReadAll(dir + "/model.safetensors");
  ASSERT_GE(st.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(st[i]);
  ASSERT_LE(n, st.size() - 8) << "header length past the end";
  const Json header = Json::parse(st.substr(8, n), nullptr, false);
  ASSERT_TRUE(header.is_object()) << "the safetensors header does not parse";
  const uint64_t data_bytes = st.size() - 8 - n;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    SCOPED_TRACE(it.key());
    const Json& t = *it;
    const std::map<std::string, uint64_t> sizes = {{"F32", 4}, {"F16", 2}, {"BF16", 2}};
    ASSERT_TRUE(sizes.count(t["dtype"].get<std::string>()));
    const std::vector<int64_t> shape = t["shape"].get<std::vector<int64_t>>();
    const std::vector<uint64_t> offsets = t["data_offsets"].get<std::vector<uint64_t>>();
    ASSERT_EQ(offsets.size(), 2u);
    uint64_t elements = 1;
    for (int64_t s : shape) elements *= static_cast<uint64_t>(s);
    EXPECT_LE(offsets[0], offsets[1]);
    EXPECT_LE(offsets[1], data_bytes);
    EXPECT_EQ(offsets[1] - offsets[0], elements * sizes.at(t["dtype"]));
    spans.push_back({offsets[0], offsets[1]});
    ASSERT_TRUE(want.count(it.key())) << "a tensor config.json does not account for";
    EXPECT_EQ(shape, want.at(it.key()));
    want.erase(it.key());
  }
  EXPECT_TRUE(want.empty()) << "missing: " << want.begin()->first;
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first);
  ASSERT_FALSE(spans.empty());
  EXPECT_EQ(spans.back().second, data_bytes) << "bytes after the last tensor";
}

class RemotePipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kPython, X_OK) != 0 ||
        std::system("/usr/bin/python3 -c 'import sentencepiece, grpc' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << kPython << " lacks sentencepiece or grpc (python3-sentencepiece, "
                   << "python3-grpcio)";
    }
    ASSERT_TRUE(remote_.AddToken("alice").ok());
    absl::Status started = remote_.Start();
    ASSERT_TRUE(started.ok()) << started << remote_.daemon().ReadLog();
    std::ofstream(work_.path() + "/prepare.py") << kPrepare;
    ASSERT_EQ(
        std::system(absl::StrCat(kPython, " ", work_.path(), "/prepare.py ", work_.path()).c_str()),
        0);
  }
  std::string Text() const { return work_.path() + "/stories.txt"; }
  std::string Model() const { return work_.path() + "/stories.model"; }

  Json Anectl(const std::vector<std::string>& args) {
    RunResult r = remote_.Anectl("alice", args);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << ": " << r.err;
    return r.exit_code == 0 ? Json::parse(r.out, nullptr, false) : Json();
  }

  TempDir dir_;   // the daemon's (its data root: nothing of the client's lies below it)
  TempDir work_;  // the client's files
  TokenDaemon remote_{dir_.path()};
};

TEST_F(RemotePipelineTest, PushTokenizeTrainExportAndPullThroughAnectlAndPython) {
  // anectl.
  const Json text = Anectl({"data", "push", Text(), "--json"});
  const Json tok = Anectl({"data", "push", Model(), "--kind", "tokenizer", "--json"});
  ASSERT_TRUE(text.is_object() && tok.is_object());
  const std::string text_id = text["artifact"]["id"], tok_id = tok["artifact"]["id"];
  const Json tokens =
      Anectl({"data", "tokenize", text_id, "--tokenizer", tok_id, "--eos", "--json"});
  ASSERT_TRUE(tokens.is_object());
  const int64_t vocab = tokens["vocab_size"];
  EXPECT_GT(vocab, 256);
  EXPECT_LE(vocab, 320);
  EXPECT_GT(tokens["tokens"].get<int64_t>(), 200);
  const std::string tokens_id = tokens["artifact"]["id"];
  const Json start =
      Anectl({"train", "start", "--data", tokens_id, "--config",
              absl::StrCat("dim=32,hidden=64,layers=1,heads=2,kv_heads=2,vocab=", vocab, ",seq=16"),
              "--steps", "3", "--json"});
  ASSERT_TRUE(start.is_object());
  const std::string session = start["session"]["id"];
  EXPECT_EQ(start["session"]["spec"]["data_artifact"], tokens_id);
  std::string state;
  for (int i = 0; i < 3000 && state != "completed" && state != "failed"; ++i) {
    const Json show = Anectl({"train", "show", session, "--json"});
    ASSERT_TRUE(show.is_object());
    state = show["session"]["state"];
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(state, "completed") << remote_.daemon().ReadLog();
  const std::string anectl_out = work_.path() + "/anectl-hf";
  const Json exported =
      Anectl({"train", "export", session, "--format", "hf", anectl_out, "--json"});
  ASSERT_TRUE(exported.is_object());
  EXPECT_EQ(exported["files"].size(), 2u);
  CheckHfExport(anectl_out, vocab);

  // The Python client, the same steps over the same TCP listener.
  RunOptions options;
  options.extra_env = {std::string("PYTHONPATH=") + ANERD_BINARY_DIR +
                       "/client/python/gen:" + ANERD_SOURCE_DIR + "/client/python"};
  options.timeout = absl::Seconds(240);
  const std::string py_out = work_.path() + "/python-hf";
  RunResult py = RunProgram({kPython, "-c", kPythonPipeline, remote_.address(),
                             remote_.token("alice"), Text(), Model(), py_out},
                            options);
  ASSERT_EQ(py.exit_code, 0) << py.out << py.err;
  const Json j = Json::parse(py.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << py.out;
  // Same bytes, same ids: the daemon tokenized them the same way for both clients.
  EXPECT_EQ(j["text"], text_id);
  EXPECT_EQ(j["tokenizer"], tok_id);
  EXPECT_EQ(j["tokens"], tokens_id);
  EXPECT_EQ(j["token_count"], tokens["tokens"]);
  EXPECT_NE(j["session"], session);
  EXPECT_EQ(j["state"], "completed");
  EXPECT_EQ(j["files"], Json({py_out + "/config.json", py_out + "/model.safetensors"}));
  CheckHfExport(py_out, vocab);
  EXPECT_EQ(j["local_artifact"], text_id) << "start_training(data=local file) over TCP pushes it";
  EXPECT_EQ(j["local_path"], "");
  EXPECT_EQ(j["local_sent"], 0) << "the daemon had the bytes";
}

}  // namespace
}  // namespace anerd
