// Per-client quotas through a real daemon: two bearer tokens on a plain loopback port (where the
// tokens are checked too) and the Unix socket's uid are three independent clients; each limit
// (--quota-kernels, --quota-sessions, --quota-queued) gives RESOURCE_EXHAUSTED naming the limit and
// its flag, and kernel ownership decides what a delete removes (remote_authz_test covers who sees
// what).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/process_harness.h"
#include "tests/testing/token_daemon.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunResult;
using testing::TempDir;
using testing::TokenDaemon;
using Json = nlohmann::json;

class RemoteQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"alice", "bob"}) ASSERT_TRUE(remote_.AddToken(name).ok());
  }

  absl::Status Start(const std::vector<std::string>& quotas) { return remote_.Start(quotas); }
  std::unique_ptr<client::AnerdClient> Client(const std::string& token) {
    return remote_.NewClient(token);
  }
  std::unique_ptr<client::AnerdClient> ClientOf(const std::string& name) {
    return remote_.NewClient(remote_.token(name));
  }
  static absl::StatusOr<std::string> Compile(client::AnerdClient& c, double scale) {
    return TokenDaemon::CompileScaled(c, scale);
  }

  void WaitUntilStopped(const std::string& id) {
    std::string state;
    for (int i = 0; i < 600 && state != "stopped"; ++i) {
      RunResult show = daemon_.Anectl({"train", "show", id, "--json"});
      ASSERT_EQ(show.exit_code, 0) << show.err;
      state = Json::parse(show.out)["session"]["state"].get<std::string>();
      if (state != "stopped") std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(state, "stopped");
  }

  TempDir dir_;
  TokenDaemon remote_{dir_.path()};
  DaemonProcess& daemon_ = remote_.daemon();
};

TEST_F(RemoteQuotaTest, TokensAreCheckedOnThePlainLoopbackPort) {
  ASSERT_TRUE(Start({}).ok()) << daemon_.ReadLog();
  EXPECT_TRUE(ClientOf("alice")->GetInfo().ok());
  EXPECT_EQ(Client("")->GetInfo().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Client(std::string(64, 'b'))->ListKernels().status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(daemon_.Anectl({"kernel", "ls"}).exit_code, 0) << "the socket needs no token";
}

TEST_F(RemoteQuotaTest, KernelQuotaIsPerClientAndOwnershipDecidesDeletes) {
  ASSERT_TRUE(Start({"--quota-kernels=2"}).ok()) << daemon_.ReadLog();
  auto alice = ClientOf("alice");
  auto bob = ClientOf("bob");
  absl::StatusOr<std::string> k1 = Compile(*alice, 1.0);
  ASSERT_TRUE(k1.ok()) << k1.status();
  ASSERT_TRUE(Compile(*alice, 2.0).ok());
  ASSERT_TRUE(Compile(*alice, 1.0).ok()) << "a kernel alice owns does not count twice";
  absl::StatusOr<std::string> third = Compile(*alice, 3.0);
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("--quota-kernels=2"));
  EXPECT_THAT(third.status().message(), HasSubstr("token:alice"));

  // bob is independent, and may own the same (content-addressed) kernel.
  ASSERT_TRUE(Compile(*bob, 1.0).ok());
  absl::StatusOr<std::string> k3 = Compile(*bob, 3.0);
  ASSERT_TRUE(k3.ok()) << k3.status();
  EXPECT_EQ(Compile(*bob, 4.0).status().code(), absl::StatusCode::kResourceExhausted);

  // The Unix socket's uid is a third client.
  for (double scale : {5.0, 6.0, 7.0}) {
    const std::string path = absl::StrCat(dir_.path(), "/scale", scale, ".mil");
    std::ofstream(path) << testing::ScaleMilText(8, scale);
    RunResult r = daemon_.Anectl({"kernel", "compile", path});
    if (scale < 7.0) {
      EXPECT_EQ(r.exit_code, 0) << r.err;
    } else {
      EXPECT_NE(r.exit_code, 0);
      EXPECT_THAT(r.err, HasSubstr("--quota-kernels"));
      EXPECT_THAT(r.err, HasSubstr("uid:" + std::to_string(::getuid())));
    }
  }

  // alice's delete of a shared kernel releases her ownership only; bob still has it.
  EXPECT_EQ(alice->GetKernel(*k1).status().code(), absl::StatusCode::kOk);
  ASSERT_TRUE(alice->DeleteKernel(*k1).ok());
  EXPECT_TRUE(bob->GetKernel(*k1).ok());
  ASSERT_TRUE(Compile(*alice, 3.0).ok()) << "the release freed a place in alice's quota";
  // Nobody else deletes (or even sees) what only bob owns... except the daemon's own user.
  EXPECT_EQ(alice->DeleteKernel(*k1).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(bob->DeleteKernel(*k1).ok());
  EXPECT_EQ(bob->GetKernel(*k1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(daemon_.Anectl({"kernel", "rm", *k3}).exit_code, 0);
  EXPECT_EQ(bob->GetKernel(*k3).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RemoteQuotaTest, QueuedRequestQuotaCountsCallsInFlight) {
  ASSERT_TRUE(Start({"--quota-queued=1"}).ok()) << daemon_.ReadLog();
  auto alice = ClientOf("alice");
  auto bob = ClientOf("bob");
  v1::EvalKernelRequest eval;
  eval.set_kernel_id(std::string(64, 'e'));

  // An open compile stream holds alice's only slot.
  std::unique_ptr<grpc::ClientContext> context = alice->NewContext(absl::Seconds(30));
  v1::CompileKernelResponse response;
  auto writer = alice->stub()->CompileKernel(context.get(), &response);
  v1::CompileKernelRequest header;
  header.mutable_header()->set_mil_text(testing::ScaleMilText(8, 9.0));
  ASSERT_TRUE(writer->Write(header));
  absl::Status refused;
  for (int i = 0; i < 100; ++i) {  // until the daemon has seen the stream
    refused = alice->EvalKernel(eval).status();
    if (refused.code() == absl::StatusCode::kResourceExhausted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("--quota-queued=1"));
  EXPECT_EQ(bob->EvalKernel(eval).status().code(), absl::StatusCode::kNotFound) << "independent";
  RunResult local = daemon_.Anectl({"kernel", "run", std::string(64, 'e'), "--random"});
  EXPECT_THAT(local.err, Not(HasSubstr("quota"))) << "the socket's uid is independent too";
  EXPECT_THAT(local.err, HasSubstr("not found"));

  ASSERT_TRUE(writer->WritesDone());
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_FALSE(response.kernel().id().empty());
  EXPECT_EQ(alice->EvalKernel(eval).status().code(), absl::StatusCode::kNotFound)
      << "the slot is free again";
}

// Remote (TCP) clients cannot start sessions (they name no daemon-side data), so the session quota
// is exercised through the Unix socket's client; a token is refused before any quota applies.
TEST_F(RemoteQuotaTest, SessionQuotaCountsActiveSessionsPerClient) {
  ASSERT_TRUE(Start({"--quota-sessions=1"}).ok()) << daemon_.ReadLog();
  const std::string data = dir_.path() + "/stories.txt";
  ASSERT_EQ(daemon_.Anectl({"data", "synth", "--out", data, "--bytes", "100000"}).exit_code, 0);
  auto start = [&] {
    return daemon_.Anectl({"train", "start", "--data", data, "--steps", "100000", "--json"});
  };
  RunResult first = start();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string id = Json::parse(first.out)["session"]["id"];
  RunResult second = start();
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.err, HasSubstr("--quota-sessions=1"));
  EXPECT_THAT(second.err, HasSubstr("uid:" + std::to_string(::getuid())));
  RunResult remote =
      remote_.Anectl("alice", {"train", "start", "--data", data, "--steps", "10", "--no-upload"});
  EXPECT_NE(remote.exit_code, 0);
  EXPECT_THAT(remote.err, HasSubstr("must upload"));

  ASSERT_EQ(daemon_.Anectl({"train", "stop", id}).exit_code, 0);
  WaitUntilStopped(id);  // stopping is asynchronous: a checkpoint first
  RunResult again = start();
  ASSERT_EQ(again.exit_code, 0) << again.err << " (a stopped session no longer counts)";
  const std::string again_id = Json::parse(again.out)["session"]["id"];
  RunResult resume = daemon_.Anectl({"train", "resume", id});
  EXPECT_NE(resume.exit_code, 0);
  EXPECT_THAT(resume.err, HasSubstr("--quota-sessions"));
  EXPECT_EQ(daemon_.Anectl({"train", "stop", again_id}).exit_code, 0);
}

}  // namespace
}  // namespace anerd
