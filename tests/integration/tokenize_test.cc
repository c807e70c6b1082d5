// TokenizeDataset through a real daemon (issue 19 item 3): `anectl data tokenize` pushes a text
// file and a tokenizer (the committed tokenizer.json fixture), the daemon tokenizes them into a
// token dataset whose bytes equal common/tokenizer's own TokenizeFile output on the same text, and
// a training run starts on it by id. Text that is not UTF-8 is refused naming the artifact and
// the byte offset and leaves no artifact and no file; another client's artifacts and artifacts of
// the wrong kind are refused naming the field.
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/lib/artifacts.h"
#include "client/lib/client.h"
#include "common/synth_stories.h"
#include "common/tokenizer/tokenize_file.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/token_daemon.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunResult;
using testing::TempDir;
using testing::TokenDaemon;
using Json = nlohmann::json;

std::string Fixture(const std::string& name) {
  return std::string(ANERD_SOURCE_DIR) + "/tests/tokenizer/testdata/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Regular files below `dir`, recursively.
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (e->d_type == DT_DIR) {
      for (std::string& f : FilesUnder(dir + "/" + name)) out.push_back(name + "/" + f);
    } else {
      out.push_back(name);
    }
  }
  ::closedir(d);
  return out;
}

class TokenizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"alice", "bob"}) ASSERT_TRUE(remote_.AddToken(name).ok());
    absl::Status started = remote_.Start();
    ASSERT_TRUE(started.ok()) << started << daemon_.ReadLog();
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_.path() + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string Push(client::AnerdClient& c, const std::string& path, const std::string& kind) {
    absl::StatusOr<client::PushResult> pushed = client::PushFile(c, path, kind, "");
    EXPECT_TRUE(pushed.ok()) << pushed.status();
    return pushed.ok() ? pushed->info.id() : "";
  }
  Json WaitForState(const std::string& id, const std::string& want) {
    Json s;
    for (int i = 0; i < 1500; ++i) {
      RunResult show = remote_.Anectl("alice", {"train", "show", id, "--json"});
      EXPECT_EQ(show.exit_code, 0) << show.err;
      if (show.exit_code != 0) return s;
      s = Json::parse(show.out)["session"];
      if (s["state"] == want || s["state"] == "failed") return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return s;
  }

  TempDir dir_;
  TokenDaemon remote_{dir_.path()};
  DaemonProcess& daemon_ = remote_.daemon();
};

TEST_F(TokenizeTest, TokenizesLikeTheLibraryAndTrainsOnTheResult) {
  const std::string text =
      SynthesizeStories(3, 6000) + "\n\nCaf\xc3\xa9 \xe6\x97\xa5 don't 42<|endoftext|>\n";
  const std::string text_file = Write("stories.txt", text);
  RunResult run = remote_.Anectl("alice", {"data", "tokenize", text_file, "--tokenizer",
                                           Fixture("tiny_tokenizer.json"), "--eos", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err << daemon_.ReadLog();
  const Json out = Json::parse(run.out);
  const std::string id = out["artifact"]["id"];
  EXPECT_EQ(out["artifact"]["kind"], "dataset");
  EXPECT_EQ(out["artifact"]["name"], "stories.tokens.bin");
  EXPECT_EQ(out["id_bytes"], 2);

  // The daemon's token file is byte for byte the library's on the same text and tokenizer.
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok =
      tokenizer::LoadTokenizerFile("", Fixture("tiny_tokenizer.json"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  tokenizer::TokenizeFileOptions options;
  options.add_eos = true;
  const std::string want_file = dir_.path() + "/want.bin";
  absl::StatusOr<tokenizer::TokenizeFileResult> want =
      tokenizer::TokenizeFile(**tok, text_file, want_file, options);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(out["tokens"], want->tokens);
  EXPECT_EQ(out["documents"], want->documents);
  EXPECT_GT(want->documents, 1);
  EXPECT_EQ(out["vocab_size"], (*tok)->vocab_size());
  const std::string pulled = dir_.path() + "/pulled.bin";
  absl::StatusOr<uint64_t> got = client::PullToFile(remote_.As("alice"), id, pulled);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(ReadAll(pulled), ReadAll(want_file));

  // A run trains on it by id, with a vocabulary that covers the tokenizer's ids.
  const std::string config = absl::StrCat(
      "dim=32,hidden=64,layers=1,heads=2,kv_heads=2,vocab=", (*tok)->vocab_size(), ",seq=16");
  RunResult start = remote_.Anectl(
      "alice", {"train", "start", "--data", id, "--config", config, "--steps", "2", "--json"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const Json session = Json::parse(start.out)["session"];
  EXPECT_EQ(session["spec"]["data_artifact"], id);
  const Json done = WaitForState(session["id"], "completed");
  EXPECT_EQ(done["state"], "completed") << done.dump();
}

// A SentencePiece .model on the daemon: libsentencepiece runs inside anerd (in its module, its
// protobuf apart from the daemon's), the ids equal python3-sentencepiece's encoding of each
// document, and the daemon goes on serving. The script trains a tiny model and writes the
// reference: the text cut into documents as tokenize_file.h says (after each run of blank lines),
// each encoded with its eos.
constexpr char kSpmScript[] = R"PY(
import json, random, re, sys
import sentencepiece as spm
d = sys.argv[1]
words = ["the", "cat", "don't", "it's", "caf\u00e9", "cafe\u0301", "na\u00efve", "dog", "ran",
         "12", "345", "Once", "upon", "a", "time", "\u65e5\u672c"]
r = random.Random(11)
with open(d + "/corpus.txt", "w") as f:
    for _ in range(300):
        f.write(" ".join(r.choice(words) for _ in range(8)) + "\n")
spm.SentencePieceTrainer.train(input=d + "/corpus.txt", model_prefix=d + "/m", vocab_size=320,
                               hard_vocab_limit=False, model_type="unigram", byte_fallback=True,
                               character_coverage=1.0, num_threads=1, minloglevel=2)
sp = spm.SentencePieceProcessor(model_file=d + "/m.model")
docs = []
for i in range(40):
    lines = [" ".join(r.choice(words) for _ in range(r.randint(1, 12))) for _ in range(3)]
    docs.append("\n".join(lines) + "\n" + "\n" * r.randint(1, 3))
text = "".join(docs) + "tail \U0001F600 x\u00ff"
with open(d + "/text.txt", "w") as f:
    f.write(text)
ids = []
for doc in re.split(r"(?<=\n\n)(?=[^\n])", text):
    ids += sp.encode(doc) + [sp.eos_id()]
with open(d + "/want.json", "w") as f:
    json.dump({"ids": ids, "documents": len(re.split(r"(?<=\n\n)(?=[^\n])", text)),
               "vocab": sp.vocab_size()}, f)
)PY";

TEST_F(TokenizeTest, SentencePieceModelsTokenizeOnTheDaemonLikePythonSentencePiece) {
  if (::access("/usr/bin/python3", X_OK) != 0 ||
      std::system("/usr/bin/python3 -c 'import sentencepiece' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with sentencepiece (python3-sentencepiece) is not available";
  }
  const std::string script = Write("spm.py", kSpmScript);
  ASSERT_EQ(std::system(("/usr/bin/python3 " + script + " " + dir_.path()).c_str()), 0);
  const Json want = Json::parse(ReadAll(dir_.path() + "/want.json"));
  const std::vector<int32_t> want_ids = want["ids"].get<std::vector<int32_t>>();

  RunResult run =
      remote_.Anectl("alice", {"data", "tokenize", dir_.path() + "/text.txt", "--tokenizer",
                               dir_.path() + "/m.model", "--eos", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err << daemon_.ReadLog();
  const Json out = Json::parse(run.out);
  EXPECT_EQ(out["id_bytes"], 2);
  EXPECT_EQ(out["vocab_size"], want["vocab"]);
  EXPECT_EQ(out["documents"], want["documents"]);
  EXPECT_EQ(out["tokens"], want_ids.size());
  const std::string pulled = dir_.path() + "/pulled.bin";
  absl::StatusOr<uint64_t> got =
      client::PullToFile(remote_.As("alice"), out["artifact"]["id"], pulled);
  ASSERT_TRUE(got.ok()) << got.status();
  const std::string bytes = ReadAll(pulled);
  ASSERT_EQ(bytes.size(), 2 * want_ids.size());
  std::vector<int32_t> ids(want_ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<uint8_t>(bytes[2 * i]) | (static_cast<uint8_t>(bytes[2 * i + 1]) << 8);
  }
  EXPECT_EQ(ids, want_ids);

  // The daemon is alive and serves again with the module loaded: the same model once more.
  RunResult again =
      remote_.Anectl("alice", {"data", "tokenize", dir_.path() + "/text.txt", "--tokenizer",
                               dir_.path() + "/m.model", "--eos", "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err << daemon_.ReadLog();
  EXPECT_EQ(Json::parse(again.out)["artifact"]["id"], out["artifact"]["id"]);
  EXPECT_EQ(::waitpid(daemon_.pid(), nullptr, WNOHANG), 0) << "the daemon exited";
}

TEST_F(TokenizeTest, NonUtf8TextIsRefusedWithItsOffsetAndStoresNothing) {
  client::AnerdClient& alice = remote_.As("alice");
  const std::string text = std::string("Once upon a time.\n\nThen \xff came.\n");
  const std::string text_id = Push(alice, Write("bad.txt", text), "dataset");
  const std::string tok_id = Push(alice, Fixture("tiny_tokenizer.json"), "tokenizer");
  ASSERT_FALSE(text_id.empty());
  ASSERT_FALSE(tok_id.empty());
  const std::string blobs = daemon_.state_dir() + "/blobs/artifacts";
  const size_t files_before = FilesUnder(blobs).size();

  v1::TokenizeDatasetRequest request;
  request.set_text_artifact(text_id);
  request.set_tokenizer_artifact(tok_id);
  absl::StatusOr<v1::TokenizeDatasetResult> r = client::TokenizeDataset(alice, request);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(absl::StrCat("text_artifact ", text_id)));
  EXPECT_THAT(r.status().message(), HasSubstr("byte offset 24"));
  EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr(daemon_.state_dir())));
  v1::ListArtifactsResponse list;
  ASSERT_TRUE(alice.stub()->ListArtifacts(alice.NewContext().get(), {}, &list).ok());
  EXPECT_EQ(list.artifacts_size(), 2);
  EXPECT_EQ(FilesUnder(blobs).size(), files_before);

  // Through anectl, the same error and a failing exit.
  RunResult run = remote_.Anectl(
      "alice", {"data", "tokenize", text_id.substr(0, 10), "--tokenizer", tok_id.substr(0, 10)});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.err, HasSubstr("byte offset 24"));
}

TEST_F(TokenizeTest, WrongKindsAndOtherClientsArtifactsAreRefusedNamingTheField) {
  client::AnerdClient& alice = remote_.As("alice");
  const std::string text_id = Push(alice, Write("s.txt", SynthesizeStories(1, 2000)), "dataset");
  const std::string tok_id = Push(alice, Fixture("tiny_tokenizer.json"), "tokenizer");
  v1::TokenizeDatasetRequest request;
  request.set_text_artifact(tok_id);
  request.set_tokenizer_artifact(tok_id);
  absl::StatusOr<v1::TokenizeDatasetResult> r = client::TokenizeDataset(alice, request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("text_artifact"));
  request.set_text_artifact(text_id);
  request.set_tokenizer_artifact(text_id);
  r = client::TokenizeDataset(alice, request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("tokenizer_artifact"));
  // bob cannot tokenize alice's text, even knowing its id.
  request.set_tokenizer_artifact("byte");
  r = client::TokenizeDataset(remote_.As("bob"), request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("text_artifact"));
  // A malformed SentencePiece model is refused naming the field; the daemon, which has just
  // loaded libsentencepiece (common/tokenizer/spm_shim.h), keeps serving.
  const std::string spm_id = Push(alice, Write("m.model", "\x0a\xff"), "tokenizer");
  request.set_tokenizer_artifact(spm_id);
  r = client::TokenizeDataset(alice, request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("tokenizer_artifact " + spm_id));
  EXPECT_THAT(r.status().message(), HasSubstr("SentencePiece"));
  request.set_tokenizer_artifact("byte");
  // The byte tokenizer needs no artifact; the result is bob-invisible alice's own.
  r = client::TokenizeDataset(alice, request);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tokens(), 2000);
  EXPECT_EQ(r->artifact().name(), "s.tokens.bin");
}

// A client that cancels mid-stream stops the job: the temporary goes and no artifact is stored
// (the text is large enough that the job is far from done when the first progress arrives).
TEST_F(TokenizeTest, CancellingTheCallStopsItAndStoresNothing) {
  client::AnerdClient& alice = remote_.As("alice");
  const std::string text_id =
      Push(alice, Write("big.txt", SynthesizeStories(9, size_t{24} << 20)), "dataset");
  const std::string tok_id = Push(alice, Fixture("tiny_tokenizer.json"), "tokenizer");
  const std::string blobs = daemon_.state_dir() + "/blobs/artifacts";
  const size_t files_before = FilesUnder(blobs).size();
  v1::TokenizeDatasetRequest request;
  request.set_text_artifact(text_id);
  request.set_tokenizer_artifact(tok_id);
  auto context = alice.NewContext(absl::InfiniteDuration());
  auto reader = alice.stub()->TokenizeDataset(context.get(), request);
  v1::TokenizeDatasetProgress message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_FALSE(message.has_result());
  EXPECT_EQ(message.bytes_total(), uint64_t{24} << 20);
  EXPECT_LT(message.bytes_done(), message.bytes_total());
  context->TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The job's temporary disappears once it has stopped (bounded wait); nothing was committed.
  for (int i = 0; i < 1500 && FilesUnder(blobs).size() != files_before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(FilesUnder(blobs).size(), files_before);
  v1::ListArtifactsResponse list;
  ASSERT_TRUE(alice.stub()->ListArtifacts(alice.NewContext().get(), {}, &list).ok());
  EXPECT_EQ(list.artifacts_size(), 2);
}

}  // namespace
}  // namespace anerd
