// Training sessions through the real daemon and anectl: run to completion, two at once,
// stop/resume, kill -9 recovery, a stalled watcher, SIGTERM checkpoints, export, and the
// documented error for every illegal call and bad spec field.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <thread>

#include "client/lib/client.h"
#include "common/synth_stories.h"
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
using testing::TempDir;
using Json = nlohmann::json;

class SessionTest : public testing::SessionFixture {};

TEST_F(SessionTest, TrainsToCompletionAndTheLossFalls) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string id = Start(d, {"--steps", "150", "--name", "first", "--seed", "3"});
  std::vector<Json> events = Events(d, id);
  ExpectEveryStepOnce(Steps(events), 150);
  EXPECT_EQ(events.back()["type"], "state");
  EXPECT_EQ(events.back()["state"], "completed");
  double first = 0, last = 0;
  for (const Json& e : events) {
    if (e["type"] != "step") continue;
    if (e["step"] == 1) first = e["loss"];
    last = e["loss"];
    EXPECT_GT(e["step_ms"].get<double>(), 0);
    EXPECT_GT(e["phases_ms"]["kernel"].get<double>(), 0);
  }
  EXPECT_LT(last, first - 1.0) << "tiny on the synthetic corpus learns quickly";
  Json s = Show(d, "first");
  EXPECT_EQ(s["state"], "completed");
  EXPECT_EQ(s["step"], 150);
  EXPECT_FALSE(s["checkpoint_path"].get<std::string>().empty());
  // The model exports as a llama2.c file whose header names the config.
  const std::string model = dir_.path() + "/model.bin";
  ASSERT_EQ(d.Anectl({"train", "export", id, model}).exit_code, 0);
  std::ifstream in(model, std::ios::binary);
  int32_t header[7];
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  EXPECT_EQ(header[0], 64) << "dim";
  EXPECT_EQ(header[2], 2) << "layers";
}

TEST_F(SessionTest, TwoSessionsProgressTogether) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string a = Start(d, {"--steps", "200", "--name", "a"});
  const std::string b = Start(d, {"--steps", "200", "--name", "b"});
  std::vector<Json> ea = Events(d, a), eb = Events(d, b);
  ExpectEveryStepOnce(Steps(ea), 200);
  ExpectEveryStepOnce(Steps(eb), 200);
  // Interleaved, not one after the other: b's first step precedes a's last.
  int64_t a_last = 0, b_first = 0;
  for (const Json& e : ea) {
    if (e["type"] == "step") a_last = e["unix_ms"];
  }
  for (const Json& e : eb) {
    if (e["type"] == "step" && b_first == 0) b_first = e["unix_ms"];
  }
  EXPECT_LT(b_first, a_last);
}

TEST_F(SessionTest, StopAndResumeContinueTheStepCount) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string id = Start(d, {"--steps", "100000", "--numerics", "fp32"});
  WaitForStep(d, id, 150);
  RunResult stop = d.Anectl({"train", "stop", id});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  std::vector<Json> before = Events(d, id);  // ends when the session has stopped
  Json s = Show(d, id);
  ASSERT_EQ(s["state"], "stopped");
  const int64_t k = s["step"];
  EXPECT_EQ(s["checkpoint_step"], k);
  RunResult resume = d.Anectl({"train", "resume", id, "--steps", "30"});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  WaitForStep(d, id, k + 10);
  RunResult stop_again = d.Anectl({"train", "stop", id});
  ASSERT_EQ(stop_again.exit_code, 0) << stop_again.err;
  std::vector<Json> all = Events(d, id);
  const int64_t end = Show(d, id)["step"];
  EXPECT_GE(end, k + 10);
  ExpectEveryStepOnce(Steps(all), end);
  // The loss curve continues: the first step after resuming is far below a fresh model's loss.
  double first = 0, at_stop = 0, after = 0;
  for (const Json& e : all) {
    if (e["type"] != "step") continue;
    if (e["step"] == 1) first = e["loss"];
    if (e["step"] == k) at_stop = e["loss"];
    if (e["step"] == k + 1) after = e["loss"];
  }
  EXPECT_LT(after, first - 0.5);
  EXPECT_NEAR(after, at_stop, 0.5);
  EXPECT_EQ(Show(d, id)["total_steps"], 100030);
}

TEST_F(SessionTest, KillNineMidRunResumesWithNoStepMissing) {
  std::string id;
  {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok());
    id = Start(d, {"--steps", "400", "--checkpoint-every", "50"});
    WaitForStep(d, id, 120);
    ASSERT_EQ(*d.Stop(SIGKILL), -SIGKILL);
  }
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  std::vector<Json> events = Events(d, id);
  ExpectEveryStepOnce(Steps(events), 400);
  EXPECT_EQ(Show(d, id)["state"], "completed");
  bool warned = false;
  for (const Json& e : events) warned |= e["type"] == "warning";
  EXPECT_TRUE(warned) << "the log says the daemon stopped unexpectedly";
}

TEST_F(SessionTest, SigtermCheckpointsRunningSessions) {
  std::string id;
  {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok());
    id = Start(d, {"--steps", "100000"});
    WaitForStep(d, id, 30);
    ASSERT_EQ(*d.Stop(SIGTERM), 0);
  }
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--resume-interrupted=false"}).ok());
  Json s = Show(d, id);
  EXPECT_EQ(s["state"], "interrupted");
  EXPECT_GE(s["checkpoint_step"].get<int64_t>(), 30);
  EXPECT_EQ(s["checkpoint_step"], s["step"]);
}

TEST_F(SessionTest, AStalledWatcherDoesNotHoldTrainingBack) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string id = Start(d, {"--steps", "300"});
  client::ClientOptions options;
  options.endpoint.path = d.socket();
  auto client = client::AnerdClient::Create(options);
  v1::WatchSessionRequest request;
  request.set_session_id(id);
  auto context = client->NewContext(absl::InfiniteDuration());
  auto reader = client->stub()->WatchSession(context.get(), request);
  v1::SessionEvent event;
  ASSERT_TRUE(reader->Read(&event));
  // Read nothing more until the session has finished on its own.
  for (int i = 0; i < 1000 && Show(d, id)["state"] != "completed"; ++i) ::usleep(20000);
  ASSERT_EQ(Show(d, id)["state"], "completed");
  std::set<int64_t> steps;
  while (reader->Read(&event)) {
    if (event.has_step()) steps.insert(event.step().step());
    ASSERT_FALSE(event.kind_case() == v1::SessionEvent::kGap) << "nothing was dropped";
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(steps.size(), 300u);
  EXPECT_EQ(*steps.begin(), 1);
  EXPECT_EQ(*steps.rbegin(), 300);
}

TEST_F(SessionTest, KernelCallsAreServedBetweenTrainingSteps) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string id = Start(d, {"--steps", "100000"});
  WaitForStep(d, id, 5);
  const std::string mil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";
  RunResult run = d.Anectl({"kernel", "run", mil, "--random", "--repeat", "20", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(Json::parse(run.out)["outputs"][0]["name"], "y");
  Json s = Show(d, id);
  EXPECT_EQ(s["state"], "running") << "the session kept going while kernels ran";
  const int64_t step = s["step"];
  WaitForStep(d, id, step + 5);
  ASSERT_EQ(d.Anectl({"train", "stop", id}).exit_code, 0);
}

TEST_F(SessionTest, IllegalCallsAndBadSpecsGetTheDocumentedErrors) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--max-sessions=1", "--data-root=" + dir_.path()}).ok());
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  };
  const std::vector<Case> bad_specs = {
      {{"--steps", "-5"}, "steps"},        {{"--lr", "-1"}, "lr"},
      {{"--model", "gpt9"}, "model"},      {{"--config", "dim=64,heads=5,kv_heads=2"}, "heads"},
      {{"--numerics", "fp8"}, "numerics"}, {{"--sampling", "shuffled"}, "sampling"},
  };
  for (const Case& c : bad_specs) {
    std::vector<std::string> args = {"train", "start", "--data", data_};
    args.insert(args.end(), c.args.begin(), c.args.end());
    RunResult r = d.Anectl(args);
    EXPECT_EQ(r.exit_code, 1) << c.expect;
    EXPECT_THAT(r.err, HasSubstr(c.expect));
  }
  RunResult outside = d.Anectl({"train", "start", "--data", "/etc/hostname", "--no-upload"});
  EXPECT_EQ(outside.exit_code, 1);
  EXPECT_THAT(outside.err, HasSubstr("--data-root"));
  RunResult missing = d.Anectl({"train", "start", "--data", dir_.path() + "/nope.txt"});
  EXPECT_THAT(missing.err, HasSubstr("data"));

  const std::string id = Start(d, {"--steps", "100000"});
  RunResult second = d.Anectl({"train", "start", "--data", data_});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.err, HasSubstr("--max-sessions"));
  RunResult rm_running = d.Anectl({"train", "rm", id});
  EXPECT_EQ(rm_running.exit_code, 1);
  EXPECT_THAT(rm_running.err, HasSubstr("stop it before deleting"));
  RunResult resume_running = d.Anectl({"train", "resume", id});
  EXPECT_THAT(resume_running.err, HasSubstr("already"));
  ASSERT_EQ(d.Anectl({"train", "stop", id}).exit_code, 0);
  (void)Events(d, id);
  RunResult stop_stopped = d.Anectl({"train", "stop", id});
  EXPECT_EQ(stop_stopped.exit_code, 1);
  EXPECT_THAT(stop_stopped.err, HasSubstr("is stopped"));
  EXPECT_EQ(d.Anectl({"train", "rm", id}).exit_code, 0);
  RunResult gone = d.Anectl({"train", "show", id});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("no training session"));

  const std::string done = Start(d, {"--steps", "5"});
  (void)Events(d, done);
  RunResult resume_done = d.Anectl({"train", "resume", done});
  EXPECT_THAT(resume_done.err, HasSubstr("--steps N"));

  // The same calls through the API, checking the canonical codes clients retry on.
  client::ClientOptions options;
  options.endpoint.path = d.socket();
  auto client = client::AnerdClient::Create(options);
  auto code = [&](auto call) {
    auto context = client->NewContext();
    return call(context.get()).error_code();
  };
  v1::SessionInfo info;
  v1::StopSessionRequest stop;
  stop.set_session_id(done);
  EXPECT_EQ(
      code([&](grpc::ClientContext* c) { return client->stub()->StopSession(c, stop, &info); }),
      grpc::FAILED_PRECONDITION);
  v1::GetSessionRequest get;
  get.set_session_id("nope");
  EXPECT_EQ(code([&](grpc::ClientContext* c) { return client->stub()->GetSession(c, get, &info); }),
            grpc::NOT_FOUND);
  v1::StartTrainingRequest start;
  start.mutable_spec()->set_data(data_);
  start.mutable_spec()->set_steps(-1);
  EXPECT_EQ(
      code([&](grpc::ClientContext* c) { return client->stub()->StartTraining(c, start, &info); }),
      grpc::INVALID_ARGUMENT);
  start.mutable_spec()->set_steps(10);
  start.mutable_spec()->set_data("/etc/hostname");
  EXPECT_EQ(
      code([&](grpc::ClientContext* c) { return client->stub()->StartTraining(c, start, &info); }),
      grpc::PERMISSION_DENIED);
  start.mutable_spec()->set_data(data_);
  start.mutable_spec()->set_steps(100000);
  ASSERT_EQ(
      code([&](grpc::ClientContext* c) { return client->stub()->StartTraining(c, start, &info); }),
      grpc::OK);
  const std::string running = info.id();
  EXPECT_EQ(
      code([&](grpc::ClientContext* c) { return client->stub()->StartTraining(c, start, &info); }),
      grpc::RESOURCE_EXHAUSTED);
  v1::DeleteSessionRequest del;
  del.set_session_id(running);
  v1::DeleteSessionResponse deleted;
  EXPECT_EQ(
      code([&](grpc::ClientContext* c) { return client->stub()->DeleteSession(c, del, &deleted); }),
      grpc::FAILED_PRECONDITION);
  v1::ResumeSessionRequest resume;
  resume.set_session_id(running);
  EXPECT_EQ(
      code([&](grpc::ClientContext* c) { return client->stub()->ResumeSession(c, resume, &info); }),
      grpc::FAILED_PRECONDITION);
  v1::WatchSessionRequest watch;
  watch.set_session_id("nope");
  auto context = client->NewContext();
  auto reader = client->stub()->WatchSession(context.get(), watch);
  v1::SessionEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::NOT_FOUND);
  ASSERT_EQ(d.Anectl({"train", "stop", running}).exit_code, 0);
}

}  // namespace
}  // namespace anerd
