// Artifacts through a real daemon (issue 19): two bearer-token clients on a loopback port and the
// Unix socket. Push then pull gives the same bytes; a second push of bytes the caller already has
// sends none; an upload cut mid-stream (or by killing the daemon, or cancelled while the daemon's
// writer thread is busy with it) and one whose digest lies leave nothing listed and no file;
// ownership and quotas are per client; `anectl train start` uploads a local file (from a remote
// client, or outside the daemon's --data-root) and trains on it by id, with a held-out tail.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/artifacts.h"
#include "client/lib/client.h"
#include "common/hash.h"
#include "common/rpc/grpc_status.h"
#include "common/synth_stories.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/token_daemon.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::RunResult;
using testing::TempDir;
using testing::TokenDaemon;
using Json = nlohmann::json;

constexpr char kTinyConfig[] = "dim=32,hidden=64,layers=1,heads=2,kv_heads=2,vocab=256,seq=16";

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(gen());
  return s;
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

class ArtifactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"alice", "bob"}) ASSERT_TRUE(remote_.AddToken(name).ok());
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_.path() + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string BlobRoot() const { return daemon_.state_dir() + "/blobs/artifacts"; }
  std::vector<std::string> Listed(client::AnerdClient& c) {
    v1::ListArtifactsResponse list;
    EXPECT_TRUE(c.stub()->ListArtifacts(c.NewContext().get(), {}, &list).ok());
    std::vector<std::string> ids;
    for (const v1::ArtifactInfo& a : list.artifacts()) ids.push_back(a.id());
    return ids;
  }
  // Waits (bounded) until the daemon has dropped the upload a cancelled stream left.
  void ExpectNoFilesSoon() {
    for (int i = 0; i < 200 && !FilesUnder(BlobRoot()).empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty());
  }
  Json WaitForState(const std::string& id, const std::string& want) {
    Json s;
    for (int i = 0; i < 1500; ++i) {
      RunResult show = daemon_.Anectl({"train", "show", id, "--json"});
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

TEST_F(ArtifactTest, PushPullRoundTripsAndASecondPushSendsNoBytes) {
  ASSERT_TRUE(remote_.Start().ok()) << daemon_.ReadLog();
  const std::string bytes = RandomBytes((3 << 20) + 12345, 1);  // several chunks, a ragged end
  const std::string file = Write("data.bin", bytes);
  client::AnerdClient& alice = remote_.As("alice");
  absl::StatusOr<client::PushResult> first = client::PushFile(alice, file, "dataset", "");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->info.id(), Sha256Hex(bytes));
  EXPECT_EQ(first->bytes_sent, bytes.size());
  EXPECT_FALSE(first->info.deduplicated());
  EXPECT_EQ(first->info.name(), "data.bin");
  absl::StatusOr<client::PushResult> second = client::PushFile(alice, file, "dataset", "again.bin");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->bytes_sent, 0u) << "the daemon already had alice's bytes";
  EXPECT_TRUE(second->info.deduplicated());
  EXPECT_EQ(second->info.name(), "again.bin");

  const std::string out = dir_.path() + "/pulled.bin";
  absl::StatusOr<uint64_t> pulled = client::PullToFile(alice, first->info.id(), out);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(ReadAll(out), bytes);

  // The same through anectl, with an id prefix.
  const std::string text = SynthesizeStories(3, 50000);
  const std::string text_file = Write("stories.txt", text);
  RunResult push = remote_.Anectl("alice", {"data", "push", text_file, "--json"});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  const Json pushed = Json::parse(push.out);
  EXPECT_EQ(pushed["bytes_sent"], text.size());
  const std::string id = pushed["artifact"]["id"];
  RunResult again = remote_.Anectl("alice", {"data", "push", text_file, "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Json::parse(again.out)["bytes_sent"], 0);
  RunResult pull =
      remote_.Anectl("alice", {"data", "pull", id.substr(0, 8), "-o", dir_.path() + "/s.txt"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(ReadAll(dir_.path() + "/s.txt"), text);
  RunResult ls = remote_.Anectl("alice", {"data", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(Json::parse(ls.out)["artifacts"].size(), 2u);
  RunResult models = remote_.Anectl("alice", {"model", "ls", "--json"});
  EXPECT_EQ(Json::parse(models.out)["artifacts"].size(), 0u) << "model ls lists models only";
  RunResult show = remote_.Anectl("alice", {"data", "show", id.substr(0, 10)});
  EXPECT_THAT(show.out, HasSubstr(id));
  EXPECT_THAT(show.out, HasSubstr("stories.txt"));
  RunResult rm = remote_.Anectl("alice", {"data", "rm", id.substr(0, 10)});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(Listed(alice), std::vector<std::string>{first->info.id()});
  EXPECT_EQ(FilesUnder(BlobRoot()).size(), 1u) << "the removed artifact's bytes went with it";
}

TEST_F(ArtifactTest, ACutStreamOrAKilledDaemonLeavesNothing) {
  ASSERT_TRUE(remote_.Start().ok()) << daemon_.ReadLog();
  const std::string bytes = RandomBytes(2 << 20, 2);
  auto cut_upload = [&](client::AnerdClient& c, bool cancel) {
    auto context = c.NewContext();
    v1::ArtifactInfo info;
    auto writer = c.stub()->UploadArtifact(context.get(), &info);
    v1::UploadArtifactRequest m;
    m.mutable_header()->set_kind("dataset");
    m.mutable_header()->set_size(bytes.size());
    m.mutable_header()->set_sha256(Sha256Hex(bytes));
    EXPECT_TRUE(writer->Write(m));
    v1::UploadArtifactRequest chunk;
    chunk.mutable_chunk()->set_data(bytes.substr(0, 1 << 20));
    EXPECT_TRUE(writer->Write(chunk));
    if (cancel) {
      context->TryCancel();
    } else {
      writer->WritesDone();  // half the declared bytes, then the end of the stream
    }
    return writer->Finish();
  };
  client::AnerdClient& alice = remote_.As("alice");
  EXPECT_EQ(cut_upload(alice, true).error_code(), grpc::StatusCode::CANCELLED);
  ExpectNoFilesSoon();
  grpc::Status short_upload = cut_upload(alice, false);
  EXPECT_EQ(short_upload.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(short_upload.error_message(), HasSubstr("received 1048576 of 2097152"));
  EXPECT_THAT(Listed(alice), IsEmpty());
  ExpectNoFilesSoon();

  // Killed mid-upload: the daemon starts again with nothing listed and no file left.
  {
    auto context = alice.NewContext();
    v1::ArtifactInfo info;
    auto writer = alice.stub()->UploadArtifact(context.get(), &info);
    v1::UploadArtifactRequest m;
    m.mutable_header()->set_kind("dataset");
    m.mutable_header()->set_size(bytes.size());
    m.mutable_header()->set_sha256(Sha256Hex(bytes));
    ASSERT_TRUE(writer->Write(m));
    v1::UploadArtifactRequest chunk;
    chunk.mutable_chunk()->set_data(bytes.substr(0, 1 << 20));
    ASSERT_TRUE(writer->Write(chunk));
    for (int i = 0; i < 400 && FilesUnder(BlobRoot()).empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(FilesUnder(BlobRoot()).size(), 1u) << "the upload is being received";
    ASSERT_TRUE(daemon_.Stop(SIGKILL).ok());
    EXPECT_FALSE(writer->Finish().ok());
  }
  ASSERT_TRUE(remote_.Start().ok()) << daemon_.ReadLog();
  EXPECT_THAT(Listed(remote_.As("alice")), IsEmpty());
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty());
}

TEST_F(ArtifactTest, AStreamCancelledWhileItsBytesAreBeingWrittenLeavesNothing) {
  // More bytes than the daemon queues for its writer thread (8 MiB), sent as fast as the stream
  // takes them: the daemon may have paused reading for its writer when the cancel arrives. The
  // call must still end, the writer thread stop and the file go; the daemon takes the next upload.
  ASSERT_TRUE(remote_.Start().ok()) << daemon_.ReadLog();
  const std::string bytes = RandomBytes(24 << 20, 3);
  client::AnerdClient& alice = remote_.As("alice");
  {
    auto context = alice.NewContext();
    v1::ArtifactInfo info;
    auto writer = alice.stub()->UploadArtifact(context.get(), &info);
    v1::UploadArtifactRequest m;
    m.mutable_header()->set_kind("dataset");
    m.mutable_header()->set_size(bytes.size());
    m.mutable_header()->set_sha256(Sha256Hex(bytes));
    ASSERT_TRUE(writer->Write(m));
    v1::UploadArtifactRequest chunk;
    for (size_t off = 0; off + (1 << 20) < bytes.size(); off += 1 << 20) {
      chunk.mutable_chunk()->set_offset(off);
      chunk.mutable_chunk()->set_data(bytes.substr(off, 1 << 20));
      ASSERT_TRUE(writer->Write(chunk));
    }
    context->TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  ExpectNoFilesSoon();
  EXPECT_THAT(Listed(alice), IsEmpty());
  const std::string file = Write("after.bin", RandomBytes(3 << 20, 4));
  absl::StatusOr<client::PushResult> after = client::PushFile(alice, file, "dataset", "");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(FilesUnder(BlobRoot()).size(), 1u);
}

TEST_F(ArtifactTest, ADigestThatDoesNotMatchIsRefusedAndNothingStored) {
  ASSERT_TRUE(remote_.Start().ok()) << daemon_.ReadLog();
  client::AnerdClient& alice = remote_.As("alice");
  auto context = alice.NewContext();
  v1::ArtifactInfo info;
  auto writer = alice.stub()->UploadArtifact(context.get(), &info);
  v1::UploadArtifactRequest m;
  m.mutable_header()->set_kind("model");
  m.mutable_header()->set_size(5);
  m.mutable_header()->set_sha256(Sha256Hex("other"));
  ASSERT_TRUE(writer->Write(m));
  v1::UploadArtifactRequest chunk;
  chunk.mutable_chunk()->set_data("hello");
  ASSERT_TRUE(writer->Write(chunk));
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("sha256"));
  EXPECT_THAT(status.error_message(), HasSubstr(Sha256Hex("hello")));
  EXPECT_THAT(Listed(alice), IsEmpty());
  EXPECT_THAT(FilesUnder(BlobRoot()), IsEmpty());
}

TEST_F(ArtifactTest, OwnersSeeTheirOwnAndQuotasArePerClient) {
  ASSERT_TRUE(remote_.Start({"--quota-artifacts=2"}).ok()) << daemon_.ReadLog();
  client::AnerdClient& alice = remote_.As("alice");
  client::AnerdClient& bob = remote_.As("bob");
  const std::string shared = Write("shared.txt", "shared bytes\n");
  const std::string mine = Write("mine.txt", "alice's own bytes\n");
  absl::StatusOr<client::PushResult> a = client::PushFile(alice, shared, "dataset", "");
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<client::PushResult> own = client::PushFile(alice, mine, "dataset", "");
  ASSERT_TRUE(own.ok()) << own.status();
  // bob holds the same bytes: he must send them (a digest is no proof), then owns them too.
  absl::StatusOr<client::PushResult> b = client::PushFile(bob, shared, "dataset", "");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->bytes_sent, 13u);
  EXPECT_TRUE(b->info.deduplicated());
  EXPECT_EQ(Listed(bob), std::vector<std::string>{a->info.id()});
  // alice's own artifact does not exist for bob.
  const std::string hidden = own->info.id();
  v1::GetArtifactRequest get;
  get.set_id(hidden);
  v1::ArtifactInfo info;
  grpc::Status seen = bob.stub()->GetArtifact(bob.NewContext().get(), get, &info);
  EXPECT_EQ(seen.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(client::PullToFile(bob, hidden, dir_.path() + "/stolen").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(::access((dir_.path() + "/stolen").c_str(), F_OK) == 0);
  v1::DeleteArtifactRequest del;
  del.set_id(hidden);
  v1::DeleteArtifactResponse deleted;
  EXPECT_EQ(bob.stub()->DeleteArtifact(bob.NewContext().get(), del, &deleted).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // A header-only upload of a digest bob cannot see is refused for want of bytes.
  {
    auto context = bob.NewContext();
    auto writer = bob.stub()->UploadArtifact(context.get(), &info);
    v1::UploadArtifactRequest m;
    m.mutable_header()->set_kind("dataset");
    m.mutable_header()->set_size(own->info.size());
    m.mutable_header()->set_sha256(hidden);
    ASSERT_TRUE(writer->Write(m));
    writer->WritesDone();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(Listed(bob), std::vector<std::string>{a->info.id()});

  // The quota: alice owns two.
  absl::StatusOr<client::PushResult> third =
      client::PushFile(alice, Write("third.txt", "third\n"), "dataset", "");
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("--quota-artifacts"));
  EXPECT_THAT(third.status().message(), HasSubstr("token:alice"));
  // alice's delete of the shared artifact releases hers only.
  del.set_id(a->info.id());
  ASSERT_TRUE(alice.stub()->DeleteArtifact(alice.NewContext().get(), del, &deleted).ok());
  EXPECT_EQ(Listed(bob), std::vector<std::string>{a->info.id()});
  absl::StatusOr<uint64_t> kept = client::PullToFile(bob, a->info.id(), dir_.path() + "/kept");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(ReadAll(dir_.path() + "/kept"), "shared bytes\n");
  // The daemon's own user (the socket) is an admin: sees and deletes everything.
  RunResult ls = daemon_.Anectl({"data", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(Json::parse(ls.out)["artifacts"].size(), 2u);
  EXPECT_EQ(daemon_.Anectl({"data", "rm", hidden}).exit_code, 0);
  EXPECT_THAT(Listed(alice), IsEmpty());
}

TEST_F(ArtifactTest, TrainStartFromARemoteClientUploadsTheDataAndHoldsOutATail) {
  ASSERT_TRUE(remote_.Start().ok()) << daemon_.ReadLog();
  const std::string text = SynthesizeStories(4, 20000);
  const std::string data = Write("local.txt", text);
  const std::vector<std::string> args = {"train",          "start",     "--data",  data,
                                         "--config",       kTinyConfig, "--steps", "2",
                                         "--val-fraction", "0.25",      "--json"};
  RunResult start = remote_.Anectl("alice", args);
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const Json session = Json::parse(start.out)["session"];
  const Json spec = session["spec"];
  EXPECT_EQ(spec["data_artifact"], Sha256Hex(text));
  EXPECT_EQ(spec["data"], "") << "the daemon's blob path is not shown";
  EXPECT_EQ(spec["validation"]["source"], "data");
  EXPECT_EQ(spec["validation"]["begin_token"], 15000);
  EXPECT_EQ(spec["validation"]["end_token"], 20000);
  EXPECT_EQ(spec["validation"]["train_tokens"], 15000);
  const Json done = WaitForState(session["id"], "completed");
  EXPECT_EQ(done["state"], "completed") << done.dump();
  // The data stays while a session (which may be resumed) trains on it.
  RunResult rm = remote_.Anectl("alice", {"data", "rm", Sha256Hex(text).substr(0, 8)});
  EXPECT_NE(rm.exit_code, 0);
  EXPECT_THAT(rm.err, HasSubstr("used by training session"));
  // Again: the bytes are already there, and nothing is sent.
  RunResult again = remote_.Anectl("alice", args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("already on the daemon"));
  // By id prefix, too.
  RunResult by_id =
      remote_.Anectl("alice", {"train", "start", "--data", Sha256Hex(text).substr(0, 10),
                               "--config", kTinyConfig, "--steps", "1", "--json"});
  ASSERT_EQ(by_id.exit_code, 0) << by_id.err;
  EXPECT_EQ(Json::parse(by_id.out)["session"]["spec"]["data_artifact"], Sha256Hex(text));
  // bob cannot train on alice's artifact by naming its id.
  RunResult bob = remote_.Anectl("bob", {"train", "start", "--data", Sha256Hex(text), "--config",
                                         kTinyConfig, "--steps", "1"});
  EXPECT_NE(bob.exit_code, 0);
  EXPECT_THAT(bob.err, HasSubstr("not found"));
}

TEST_F(ArtifactTest, TrainStartFromOutsideTheDataRootUploadsOverTheSocket) {
  ASSERT_TRUE(remote_.Start().ok()) << daemon_.ReadLog();
  TempDir elsewhere;  // not under the harness's --data-root
  const std::string text = SynthesizeStories(5, 20000);
  const std::string data = elsewhere.path() + "/quickstart.txt";
  std::ofstream(data) << text;
  RunResult start = daemon_.Anectl(
      {"train", "start", "--data", data, "--config", kTinyConfig, "--steps", "2", "--json"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const Json session = Json::parse(start.out)["session"];
  EXPECT_EQ(session["spec"]["data_artifact"], Sha256Hex(text));
  EXPECT_EQ(WaitForState(session["id"], "completed")["state"], "completed");
  // A file under the root is still read in place.
  const std::string inside = Write("inside.txt", text);
  RunResult in_place = daemon_.Anectl(
      {"train", "start", "--data", inside, "--config", kTinyConfig, "--steps", "1", "--json"});
  ASSERT_EQ(in_place.exit_code, 0) << in_place.err;
  EXPECT_EQ(Json::parse(in_place.out)["session"]["spec"]["data_artifact"], "");
  // --no-upload keeps the daemon's refusal.
  RunResult refused =
      daemon_.Anectl({"train", "start", "--data", data, "--config", kTinyConfig, "--no-upload"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("--data-root"));
}

}  // namespace
}  // namespace anerd
