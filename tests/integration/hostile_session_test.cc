// Issue 16 item 2: StartTraining swept with hostile specs over raw gRPC. Each is refused with a
// clear code or runs to an end state; the daemon answers GetInfo after every one, and a restart
// after every one that was accepted comes up healthy (no crash loop).
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/lib/client.h"
#include "common/synth_stories.h"
#include "gtest/gtest.h"
#include "tests/testing/process_harness.h"

namespace anerd::testing {
namespace {

struct HostileCase {
  std::string name;
  std::function<void(v1::TrainingSpec*)> edit;
};

class HostileSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = dir_.path() + "/stories.txt";
    std::ofstream(data_) << SynthesizeStories(3, 20000);
  }

  std::unique_ptr<client::AnerdClient> Connect(DaemonProcess& d) {
    client::ClientOptions options;
    options.endpoint.path = d.socket();
    return client::AnerdClient::Create(options);
  }

  // gRPC may hand a new client the previous daemon's dead connection on the same socket path:
  // a first UNAVAILABLE ("Broken pipe") is retried, anything else is the answer.
  static grpc::Status GetInfo(client::AnerdClient& c) {
    grpc::Status status;
    for (int attempt = 0; attempt < 5; ++attempt) {
      v1::GetInfoResponse info;
      auto context = c.NewContext(absl::Seconds(10));
      context->set_wait_for_ready(true);
      status = c.stub()->GetInfo(context.get(), v1::GetInfoRequest(), &info);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      ::usleep(100000);
    }
    return status;
  }

  // Stops a session that is still active and waits until it is not.
  static void Drain(client::AnerdClient& c, const std::string& id) {
    for (int i = 0; i < 1500; ++i) {
      v1::GetSessionRequest get;
      get.set_session_id(id);
      v1::SessionInfo info;
      auto context = c.NewContext(absl::Seconds(10));
      context->set_wait_for_ready(true);
      ASSERT_TRUE(c.stub()->GetSession(context.get(), get, &info).ok());
      const std::string state = info.state();
      if (state != "queued" && state != "compiling" && state != "running" &&
          state != "checkpointing") {
        return;
      }
      if (i == 100) {
        v1::StopSessionRequest stop;
        stop.set_session_id(id);
        auto stop_context = c.NewContext(absl::Seconds(10));
        (void)c.stub()->StopSession(stop_context.get(), stop, &info);
      }
      ::usleep(20000);
    }
    FAIL() << "session " << id << " never ended";
  }

  TempDir dir_;
  std::string data_;
};

TEST_F(HostileSessionTest, TheDaemonSurvivesEveryHostileSpecAndRestartsHealthy) {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const int64_t big = std::numeric_limits<int64_t>::max();
  const std::vector<HostileCase> cases = {
      {"issue repro",
       [](auto* p) {
         p->set_custom_config(
             "dim=65536,hidden=262144,layers=64,heads=512,kv_heads=512,vocab=32000,seq=4096");
       }},
      {"every size at its maximum",
       [](auto* p) {
         p->set_custom_config(
             "dim=1048576,hidden=1048576,layers=1048576,heads=1,vocab=1048576,seq=1048576");
       }},
      {"long sequence", [](auto* p) { p->set_custom_config("seq=1048576"); }},
      {"many heads", [](auto* p) { p->set_custom_config("dim=4096,heads=2048,seq=4096"); }},
      {"negative dim", [](auto* p) { p->set_custom_config("dim=-64"); }},
      {"zero layers", [](auto* p) { p->set_custom_config("layers=0"); }},
      {"overflowing dim", [](auto* p) { p->set_custom_config("dim=99999999999999999999"); }},
      {"int overflow", [](auto* p) { p->set_custom_config("dim=2147483648"); }},
      {"bad kv heads", [](auto* p) { p->set_custom_config("heads=4,kv_heads=3"); }},
      {"unknown model", [](auto* p) { p->set_model("gpt5"); }},
      {"negative steps", [](auto* p) { p->set_steps(-5); }},
      {"huge steps", [big](auto* p) { p->set_steps(big); }},
      {"NaN lr", [nan](auto* p) { p->set_lr(nan); }},
      {"infinite lr", [inf](auto* p) { p->set_lr(inf); }},
      {"negative lr", [](auto* p) { p->set_lr(-1); }},
      {"absurd lr",
       [](auto* p) {
         p->set_lr(1e300);
         p->set_min_lr(1e299);
         p->set_steps(4);
       }},
      {"NaN clip", [nan](auto* p) { p->set_clip(nan); }},
      {"NaN beta", [nan](auto* p) { p->set_beta1(nan); }},
      {"NaN eps", [nan](auto* p) { p->set_eps(nan); }},
      {"NaN loss scale", [](auto* p) { p->set_loss_scale("nan"); }},
      {"infinite loss scale", [](auto* p) { p->set_loss_scale("inf"); }},
      {"absurd loss scale",
       [](auto* p) {
         p->set_loss_scale("1e308");
         p->set_steps(4);
       }},
      {"tiny loss scale",
       [](auto* p) {
         p->set_loss_scale("1e-320");
         p->set_steps(4);
       }},
      {"zero accum", [](auto* p) { p->set_accum(-1); }},
      {"huge accum", [](auto* p) { p->set_accum(std::numeric_limits<int32_t>::max()); }},
      {"negative warmup", [](auto* p) { p->set_warmup(std::numeric_limits<int64_t>::min()); }},
      {"huge warmup",
       [big](auto* p) {
         p->set_warmup(big);
         p->set_steps(3);
       }},
      {"negative checkpoint cadence", [](auto* p) { p->set_checkpoint_every(-1); }},
      {"huge seed",
       [](auto* p) {
         p->set_seed(std::numeric_limits<uint64_t>::max());
         p->set_has_seed(true);
         p->set_steps(2);
       }},
      {"no data", [](auto* p) { p->set_data(""); }},
      {"data outside the roots", [](auto* p) { p->set_data("/etc/passwd"); }},
      {"unknown backend", [](auto* p) { p->set_backend("nope"); }},
  };
  int accepted = 0;
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(c.name);
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start({"--shutdown-grace-ms=300"}).ok()) << d.ReadLog();
    auto client = Connect(d);
    ASSERT_NE(client, nullptr);
    v1::StartTrainingRequest request;
    request.mutable_spec()->set_data(data_);
    request.mutable_spec()->set_steps(3);
    c.edit(request.mutable_spec());
    v1::SessionInfo info;
    auto context = client->NewContext(absl::Seconds(30));
    const grpc::Status status = client->stub()->StartTraining(context.get(), request, &info);
    if (status.ok()) {
      ++accepted;
      Drain(*client, info.id());
    } else {
      EXPECT_TRUE(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                  status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                  status.error_code() == grpc::StatusCode::PERMISSION_DENIED)
          << status.error_code() << " " << status.error_message();
      EXPECT_FALSE(status.error_message().empty());
    }
    const grpc::Status alive = GetInfo(*client);
    ASSERT_TRUE(alive.ok()) << alive.error_message() << "\n" << d.ReadLog();
    client.reset();
    ASSERT_EQ(*d.Stop(SIGTERM), 0) << d.ReadLog();
    if (status.ok()) {
      // The restart (which resumes interrupted sessions) stays up and answers.
      DaemonProcess again(dir_.path());
      ASSERT_TRUE(again.Start({"--shutdown-grace-ms=300"}).ok()) << again.ReadLog();
      auto c2 = Connect(again);
      ASSERT_NE(c2, nullptr);
      const grpc::Status restarted = GetInfo(*c2);
      ASSERT_TRUE(restarted.ok()) << restarted.error_code() << " " << restarted.error_message();
      Drain(*c2, info.id());
      ASSERT_TRUE(GetInfo(*c2).ok()) << again.ReadLog();
      c2.reset();
      ASSERT_EQ(*again.Stop(SIGTERM), 0) << again.ReadLog();
    }
  }
  EXPECT_GT(accepted, 0) << "the sweep also runs specs that are legal but extreme";
}

}  // namespace
}  // namespace anerd::testing
