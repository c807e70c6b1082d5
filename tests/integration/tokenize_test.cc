// TokenizeDataset through a real daemon (issue 19 item 3): `anectl data tokenize` pushes a text
// file and a tokenizer (the committed tokenizer.json fixture), the daemon tokenizes them into a
// token dataset whose bytes equal common/tokenizer's own TokenizeFile output on the same text, and
// a training run starts on it by id. Text that is not UTF-8 is refused naming the artifact and
// the byte offset and leaves no artifact and no file; another client's artifacts and artifacts of
// the wrong kind are refused naming the field.
#include <dirent.h>

#include <chrono>
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
  // A SentencePiece model is refused by name before libsentencepiece runs (its bundled protobuf
  // aborts the daemon), and the daemon keeps serving.
  const std::string spm_id = Push(alice, Write("m.model", "\x0a\x05hello"), "tokenizer");
  request.set_tokenizer_artifact(spm_id);
  r = client::TokenizeDataset(alice, request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented) << r.status();
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
