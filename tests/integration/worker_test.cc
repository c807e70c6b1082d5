// Worker processes through the real daemon (issue: disposable backend workers): a training
// session across many budget recycles matches an unrecycled run exactly (fp32), kill -9 of the
// worker mid-training and mid-evaluation is survived with watch streams intact, a kernel that
// aborts its worker is quarantined, and `anectl status` shows the workers.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

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

class WorkerTest : public testing::SessionFixture {
 protected:
  // Sessions here train in fp32 (bit-exact comparisons) on `backend`.
  std::string Start(DaemonProcess& d, const std::vector<std::string>& extra,
                    const std::string& backend = "cpu") {
    std::vector<std::string> args = {"--backend", backend, "--numerics", "fp32"};
    args.insert(args.end(), extra.begin(), extra.end());
    return SessionFixture::Start(d, args);
  }

  // step -> loss, checking every step from 1 to `total` appears exactly once, in order.
  static std::vector<double> Losses(const std::vector<Json>& events, int64_t total) {
    std::vector<double> losses;
    for (const Json& e : events) {
      // value(): a line without the field is a failure, not undefined behaviour (a const
      // operator[] on a missing key is UB in nlohmann::json).
      if (e.value("type", "") != "step") continue;
      EXPECT_EQ(e.value("step", int64_t{-1}), static_cast<int64_t>(losses.size()) + 1) << e.dump();
      losses.push_back(e.value("loss", -1.0));
    }
    EXPECT_EQ(static_cast<int64_t>(losses.size()), total);
    return losses;
  }

  // The same session on a daemon that runs every backend in-process, with no budget.
  std::vector<double> ReferenceLosses(int64_t steps, const std::string& backend = "cpu") {
    TempDir root;
    DaemonProcess d(root.path());
    EXPECT_TRUE(d.Start({"--data-root", dir_.path(), "--isolate-ane=false"}).ok());
    const std::string id = Start(d, {"--steps", std::to_string(steps)}, backend);
    return Losses(Events(d, id), steps);
  }

  Json Worker(DaemonProcess& d, const std::string& backend) {
    RunResult r = d.Anectl({"status", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const Json status = Json::parse(r.out);
    for (const Json& w : status["daemon"]["workers"]) {
      if (w["backend"] == backend) return w;
    }
    ADD_FAILURE() << "no " << backend << " worker in " << r.out;
    return Json::object();
  }
};

class WorkerBudgetTest : public WorkerTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(WorkerBudgetTest, TrainingAcrossBudgetRecyclesMatchesAnUnrecycledRun) {
  constexpr int64_t kSteps = 12;
  const std::string backend = GetParam();
  DaemonProcess d(dir_.path());
  // A budget below the number of training kernels: every step recompiles in fresh workers.
  ASSERT_TRUE(d.Start({"--isolate-cpu", "--compile-budget", "4"}).ok());
  const std::string id = Start(d, {"--steps", std::to_string(kSteps)}, backend);
  const std::vector<double> recycled = Losses(Events(d, id), kSteps);
  const Json w = Worker(d, backend);
  EXPECT_GE(w["restarts"].get<int64_t>(), 3) << w.dump();
  EXPECT_EQ(w["crashes"], 0);
  EXPECT_LE(w["compiles_used"].get<int64_t>(), 4);
  EXPECT_EQ(recycled, ReferenceLosses(kSteps, backend));
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkerBudgetTest, ::testing::Values("cpu", "ane-sim"));

TEST_F(WorkerTest, KillNineOfTheWorkerMidTrainingIsSurvivedByTheSessionAndItsWatcher) {
  constexpr int64_t kSteps = 120;
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--isolate-cpu"}).ok());
  const std::string id = Start(d, {"--steps", std::to_string(kSteps), "--checkpoint-every", "25"});
  RunResult watched;
  std::thread watcher([&] {
    watched = d.Anectl({"--timeout", "300", "train", "watch", id, "--json"});
  });
  WaitForStep(d, id, 40);
  const int64_t pid = Worker(d, "cpu").value("pid", int64_t{-1});
  if (pid <= 0 || kill(static_cast<pid_t>(pid), SIGKILL) != 0) {
    watcher.join();  // never leave the thread joinable: its destructor would abort the binary
    FAIL() << "no cpu worker to kill (pid " << pid << ")";
  }
  watcher.join();
  ASSERT_EQ(watched.exit_code, 0) << watched.err;
  const std::vector<Json> events = ParseLines(watched.out);
  const std::vector<double> losses = Losses(events, kSteps);
  bool warned = false;
  for (const Json& e : events) {
    if (e.value("type", "") == "warning") warned |= e.dump().find("worker") != std::string::npos;
  }
  const Json w = Worker(d, "cpu");
  EXPECT_EQ(w["crashes"], 1);
  EXPECT_NE(w["pid"], pid);
  // Killed during an evaluation, the step failed and the session replayed from its checkpoint
  // (one warning event); killed between evaluations (the trainer's CPU phases), no request was
  // lost and the next evaluation simply went to the new worker.
  ASSERT_TRUE(w.contains("recent_restart_reasons") && w["recent_restart_reasons"].is_array() &&
              !w["recent_restart_reasons"].empty())
      << w.dump();
  const std::string reason = w["recent_restart_reasons"].back();
  const bool idle = reason.find("while idle") != std::string::npos;
  EXPECT_EQ(warned, !idle) << reason;
  RunResult show = d.Anectl({"train", "show", id, "--json"});
  EXPECT_EQ(Json::parse(show.out)["session"]["state"], "completed");
  EXPECT_EQ(losses, ReferenceLosses(kSteps));
}

std::string TestOpMil(const std::string& op) {
  return "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [1, 4, 1, 8]> x) {\n"
         "        tensor<fp32, [1, 4, 1, 8]> y = " +
         op + "(x = x)[name = string(\"y\")];\n    } -> (y);\n}\n";
}

TEST_F(WorkerTest, WorkerCrashesFailOnlyTheirRequestAndRepeatOffendersAreQuarantined) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--testonly_ops", "--quarantine-after", "2"}).ok());
  const std::string bomb = dir_.path() + "/bomb.mil";
  std::ofstream(bomb) << TestOpMil("anerd_test_abort");
  RunResult compiled = d.Anectl({"kernel", "compile", bomb, "--backend", "ane-sim", "--json"});
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  const std::string id = Json::parse(compiled.out)["kernel"]["id"];
  for (int i = 0; i < 2; ++i) {
    RunResult r = d.Anectl({"kernel", "run", id, "--random"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_THAT(r.err, HasSubstr("died while running"));
    EXPECT_THAT(r.err, HasSubstr("signal 6"));
    EXPECT_THAT(r.err, HasSubstr(id));
  }
  RunResult refused = d.Anectl({"kernel", "run", id, "--random"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("quarantined"));
  EXPECT_THAT(refused.err, HasSubstr(id));
  // The daemon and other kernels on the same backend are unaffected.
  const std::string mil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";
  RunResult ok = d.Anectl({"kernel", "run", mil, "--backend", "ane-sim", "--random"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  RunResult status = d.Anectl({"status"});
  EXPECT_THAT(status.out, HasSubstr("WORKER"));
  EXPECT_THAT(status.out, HasSubstr("ane-sim"));
  EXPECT_THAT(status.out, HasSubstr("1 quarantined"));
  EXPECT_THAT(status.out, HasSubstr("now: idle"));
  EXPECT_THAT(status.out, HasSubstr("signal 6"));
}

TEST_F(WorkerTest, KillNineMidEvaluationFailsThatEvaluationWithARetryableError) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--testonly_ops"}).ok());
  const std::string hang = dir_.path() + "/hang.mil";
  std::ofstream(hang) << TestOpMil("anerd_test_hang");
  RunResult compiled = d.Anectl({"kernel", "compile", hang, "--backend", "ane-sim", "--json"});
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  const std::string id = Json::parse(compiled.out)["kernel"]["id"];
  const int64_t pid = Worker(d, "ane-sim")["pid"];
  RunResult hung;
  std::thread t([&] { hung = d.Anectl({"kernel", "run", id, "--random"}); });
  ::usleep(700000);
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  t.join();
  EXPECT_EQ(hung.exit_code, 3) << "UNAVAILABLE is retryable";
  EXPECT_THAT(hung.err, HasSubstr("killed by signal 9"));
  const std::string mil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";
  RunResult ok = d.Anectl({"kernel", "run", mil, "--backend", "ane-sim", "--random"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(Worker(d, "ane-sim")["pid"], pid);
}

// Issue 16 item 7: an evaluation whose client gives up (here its deadline) stops occupying the
// backend: the daemon kills the hung worker and starts a fresh one, so the next evaluation runs
// at once, and the kernel is not quarantined (quarantine_after 1: a crash would have). Before,
// the daemon waited for --worker-call-timeout-s with the executor blocked behind it.
TEST_F(WorkerTest, AnEvaluationPastItsDeadlineRecyclesTheWorkerWithoutQuarantine) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--testonly_ops", "--quarantine-after", "1"}).ok());
  const std::string hang = dir_.path() + "/hang.mil";
  std::ofstream(hang) << TestOpMil("anerd_test_hang");
  RunResult compiled = d.Anectl({"kernel", "compile", hang, "--backend", "ane-sim", "--json"});
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  const std::string id = Json::parse(compiled.out)["kernel"]["id"];
  const int64_t pid = Worker(d, "ane-sim")["pid"];
  RunResult late = d.Anectl({"--timeout", "2", "kernel", "run", id, "--random"});
  EXPECT_NE(late.exit_code, 0);
  // The daemon recycles the worker once it sees the deadline (no fixed wait: poll the status).
  Json w = Worker(d, "ane-sim");
  for (int i = 0; i < 300 && w["restarts"].get<int64_t>() == 0; ++i) {
    ::usleep(100000);
    w = Worker(d, "ane-sim");
  }
  ASSERT_EQ(w["restarts"], 1) << w.dump();
  EXPECT_EQ(w["crashes"], 0);
  EXPECT_EQ(w["quarantined"], 0);
  EXPECT_NE(w["pid"], pid);
  EXPECT_THAT(w["recent_restart_reasons"].back().get<std::string>(), HasSubstr("cancelled"));
  const std::string mil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";
  RunResult ok =
      d.Anectl({"--timeout", "30", "kernel", "run", mil, "--backend", "ane-sim", "--random"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  RunResult again = d.Anectl({"--timeout", "2", "kernel", "run", id, "--random"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, ::testing::Not(HasSubstr("quarantined")));
}

TEST_F(WorkerTest, BadSupervisionFlagsAreRefusedAtStartNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--quarantine-after", "0"}, "--quarantine-after"},
      {{"--worker-heartbeat-timeout-ms", "0"}, "--worker-heartbeat-timeout-ms"},
      {{"--worker-call-timeout-s", "-5"}, "--worker-call-timeout-s"}};
  for (const auto& [flags, name] : cases) {
    DaemonProcess d(dir_.path());
    absl::Status st = d.Start(flags);
    EXPECT_FALSE(st.ok()) << name;
    EXPECT_THAT(std::string(st.message()), HasSubstr(name));
  }
}

}  // namespace
}  // namespace anerd
