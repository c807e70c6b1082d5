// The first hour of a new user, as a checklist held by tests (real anerd + real anectl): every
// failure says why, one flag style with a config file, output that pipes cleanly, crash recovery
// that loses minutes rather than the run.
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/session_fixture.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunResult;
using Json = nlohmann::json;

class FirstHourTest : public testing::SessionFixture {
 protected:
  // A file that exists under the data root but is no model.
  std::string NotAModel() {
    const std::string path = dir_.path() + "/not-a-model.bin";
    std::ofstream(path) << "hello, I am text";
    return path;
  }
  // A llama2.c header (dim 64, hidden 192, 2 layers, 4 heads, 4 kv heads, vocab 256, seq 64)
  // with no weights after it: its shape reads at start, its weights fail when the run loads them.
  std::string TruncatedModel() {
    const std::string path = dir_.path() + "/truncated-model.bin";
    const int32_t header[7] = {64, 192, 2, 4, 4, 256, 64};
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(header), sizeof(header));
    return path;
  }
};

// Checklist: "anerd --help exits 0, hides internal and test-only flags, prints defaults and the
// real backend list".
TEST_F(FirstHourTest, AnerdHelpExitsZeroWithUserFlagsAndDefaults) {
  RunResult r = testing::RunProgram({testing::AnerdBinary(), "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--state-dir"));
  EXPECT_THAT(r.out, HasSubstr("--data-root"));
  EXPECT_THAT(r.out, HasSubstr("default: 300"));  // --checkpoint-interval-s
  EXPECT_THAT(r.out, HasSubstr("ane-sim"));
  EXPECT_THAT(r.out, Not(HasSubstr("worker-channel-fd")));
  EXPECT_THAT(r.out, Not(HasSubstr("testonly")));
  EXPECT_THAT(r.out, Not(HasSubstr("state_dir")));  // one spelling in the help: hyphens
}

// Checklist: "accept hyphens for every anerd flag; a daemon configuration file; anectl status
// shows the effective configuration".
TEST_F(FirstHourTest, HyphenatedFlagsAndAConfigFileShowInStatus) {
  const std::string conf = dir_.path() + "/anerd.conf";
  std::ofstream(conf) << "# limits for this box\nmax-sessions = 3\nquota_kernels=7\n";
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--config=" + conf, "--log-level=warn", "--max-sessions=2"}).ok())
      << d.ReadLog();
  RunResult r = d.Anectl({"status", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json config = Json::parse(r.out)["daemon"]["config"];
  EXPECT_EQ(config.value("max-sessions", ""), "2");  // the command line wins over the file
  EXPECT_EQ(config.value("quota-kernels", ""), "7");
  EXPECT_EQ(config.value("log-level", ""), "warn");
  RunResult human = d.Anectl({"status"});
  EXPECT_THAT(human.out, HasSubstr("--quota-kernels=7"));
}

TEST_F(FirstHourTest, ABadConfigFileStopsStartNamingFileAndLine) {
  const std::string conf = dir_.path() + "/bad.conf";
  std::ofstream(conf) << "log-level = warn\n= 3\n";
  DaemonProcess d(dir_.path());
  absl::Status s = d.Start({"--config=" + conf}, absl::Seconds(10));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()) + d.ReadLog(), HasSubstr("bad.conf:2"));
}

// Checklist: "spec problems that can be found at start (an --init file that is not a model) are
// refused by StartTraining itself".
TEST_F(FirstHourTest, AnInitFileThatIsNoModelIsRefusedAtStart) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  RunResult r = d.Anectl({"train", "start", "--data", data_, "--init", NotAModel()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not-a-model.bin"));
  RunResult list = d.Anectl({"--json", "train", "ls"});
  EXPECT_TRUE(Json::parse(list.out)["sessions"].empty()) << list.out;
}

// Checklist: "train start --watch with a bad --init: the reason is in the stream, the live
// view, the exit message and train ls" (a file whose shape reads but whose weights are missing
// fails when the run loads it).
TEST_F(FirstHourTest, AFailedSessionSaysWhyInTheStreamTheExitAndTheList) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  RunResult table = d.Anectl(
      {"train", "start", "--data", data_, "--init", TruncatedModel(), "--watch", "--table"});
  EXPECT_EQ(table.exit_code, 1);
  EXPECT_THAT(table.out, HasSubstr("state: failed ("));
  EXPECT_THAT(table.err, HasSubstr("failed: "));
  EXPECT_THAT(table.err, HasSubstr("truncated-model.bin"));

  RunResult json = d.Anectl(
      {"--json", "train", "start", "--data", data_, "--init", TruncatedModel(), "--watch"});
  EXPECT_EQ(json.exit_code, 1);
  bool saw_detail = false;
  for (const Json& e : ParseLines(json.out)) {  // every stdout line is JSON, from the first
    if (e.value("state", "") == "failed") {
      saw_detail = e.value("detail", "").find("truncated-model.bin") != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_detail) << json.out;

  RunResult list = d.Anectl({"train", "ls"});
  EXPECT_THAT(list.out, HasSubstr("truncated-model.bin"));
}

// Checklist: "--checkpoint-every has a default that makes crash recovery lose minutes, not the
// whole run". With a tiny interval every step is due; with the default only the end is.
TEST_F(FirstHourTest, SessionsCheckpointOnTheDaemonsIntervalByDefault) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--checkpoint-interval-s=0.000001"}).ok());
  const std::string id = Start(d, {"--steps", "6"});
  ASSERT_FALSE(id.empty());
  int checkpoints = 0;
  for (const Json& e : Events(d, id)) checkpoints += e["type"] == "checkpoint";
  EXPECT_GE(checkpoints, 6);

  testing::TempDir other;
  DaemonProcess quiet(other.path());
  ASSERT_TRUE(quiet.Start({"--data-root=" + dir_.path()}).ok());
  const std::string id2 = Start(quiet, {"--steps", "6"});
  int end_only = 0;
  for (const Json& e : Events(quiet, id2)) end_only += e["type"] == "checkpoint";
  EXPECT_EQ(end_only, 1);
}

// Checklist: "no ANSI codes when stdout is not a terminal".
TEST_F(FirstHourTest, PipedOutputHasNoAnsiCodes) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string id = Start(d, {"--steps", "3"});
  Events(d, id);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"status"}, {"train", "ls"}, {"train", "show", id}, {"train", "watch", id, "--table"}}) {
    RunResult r = d.Anectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << args[0] << ": " << r.out;
  }
}

// Checklist: "kernel compile errors keep the file name", "--in for a name that is not an input
// says so", "fp32 .npy inputs converted for fp16 kernels with a notice", "kernels by unique name".
TEST_F(FirstHourTest, KernelCommandsNameTheFileTheInputAndAcceptNames) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string bad = dir_.path() + "/broken.mil";
  std::ofstream(bad) << "program(1.3)\n{\n  func main<ios18>(tensor<fp32, [1, 4, 1, 8]> x) {\n"
                        "    tensor<fp32, [1, 4, 1, 8]> y = frobnicate(x = x)[name = "
                        "string(\"y\")];\n  } -> (y);\n}\n";
  RunResult compile = d.Anectl({"kernel", "compile", bad});
  EXPECT_NE(compile.exit_code, 0);
  EXPECT_THAT(compile.err, HasSubstr("broken.mil:4:"));

  const std::string conv = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";
  RunResult ok = d.Anectl({"kernel", "compile", conv, "--name", "myconv"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;

  NpyArray x{"<f4", {1, 64, 1, 256}, std::string(64 * 256 * 4, '\0')};
  const std::string npy = dir_.path() + "/x.npy";
  ASSERT_TRUE(WriteNpyFile(npy, x).ok());
  RunResult wrong = d.Anectl({"kernel", "run", "myconv", "--in", "z=" + npy});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.err;
  EXPECT_THAT(wrong.err, HasSubstr("no input 'z'"));
  EXPECT_THAT(wrong.err, HasSubstr("x: fp16"));

  RunResult converted = d.Anectl({"kernel", "run", "myconv", "--in", "x=" + npy});
  EXPECT_EQ(converted.exit_code, 0) << converted.err;
  EXPECT_THAT(converted.err, HasSubstr("converting"));
}

// Checklist: "token files written 0600 with anectl token ls|revoke".
TEST_F(FirstHourTest, TokenFilesArePrivateAndTokensCanBeListedAndRevoked) {
  const std::string file = dir_.path() + "/tokens";
  const std::string client = dir_.path() + "/alice.token";
  RunResult a = testing::RunProgram(
      {testing::AnectlBinary(), "token", "create", "alice", "--file", file, "--out", client});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  RunResult b = testing::RunProgram(
      {testing::AnectlBinary(), "token", "create", "bob", "--admin", "--file", file});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(::stat(client.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  RunResult ls =
      testing::RunProgram({testing::AnectlBinary(), "--json", "token", "ls", "--file", file});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  const Json tokens = Json::parse(ls.out)["tokens"];
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[1]["name"], "bob");
  EXPECT_EQ(tokens[1]["admin"], true);
  EXPECT_EQ(ls.out.find(a.out.substr(0, 16)), std::string::npos);  // never the token itself

  RunResult revoke =
      testing::RunProgram({testing::AnectlBinary(), "token", "revoke", "alice", "--file", file});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  RunResult after = testing::RunProgram({testing::AnectlBinary(), "token", "ls", "--file", file});
  EXPECT_THAT(after.out, Not(HasSubstr("alice")));
  EXPECT_THAT(after.out, HasSubstr("bob"));
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  RunResult again =
      testing::RunProgram({testing::AnectlBinary(), "token", "revoke", "alice", "--file", file});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("no token 'alice'"));
}

// Checklist: "doctor removing its canary kernels".
TEST_F(FirstHourTest, DoctorLeavesNoKernelsBehind) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  RunResult doctor = d.Anectl({"doctor"});
  EXPECT_THAT(doctor.out, HasSubstr("canary"));
  RunResult ls = d.Anectl({"--json", "kernel", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_TRUE(Json::parse(ls.out)["kernels"].empty()) << ls.out;
}

// Checklist: "anectl help train prints the train help; --help shows defaults; anectl completion
// bash|zsh|fish prints completions".
TEST_F(FirstHourTest, HelpDefaultsAndCompletion) {
  RunResult help = testing::RunProgram({testing::AnectlBinary(), "help", "train", "start"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_THAT(help.out, HasSubstr("usage: anectl train start"));
  EXPECT_THAT(help.out, HasSubstr("(default 1000)"));
  RunResult group = testing::RunProgram({testing::AnectlBinary(), "help", "train"});
  EXPECT_EQ(group.exit_code, 0);
  EXPECT_THAT(group.out, HasSubstr("resume"));
  RunResult run_help = testing::RunProgram({testing::AnectlBinary(), "kernel", "run", "--help"});
  EXPECT_THAT(run_help.out, HasSubstr("(default 1)"));  // --repeat's default, from its variable

  for (const std::string shell : {"bash", "zsh", "fish"}) {
    RunResult script = testing::RunProgram({testing::AnectlBinary(), "completion", shell});
    EXPECT_EQ(script.exit_code, 0) << shell;
    EXPECT_THAT(script.out, HasSubstr("anectl __complete")) << shell;
  }
  RunResult top = testing::RunProgram({testing::AnectlBinary(), "__complete"});
  EXPECT_THAT(top.out, HasSubstr("train\n"));
  RunResult sub = testing::RunProgram({testing::AnectlBinary(), "__complete", "train"});
  EXPECT_THAT(sub.out, HasSubstr("start\n"));
  RunResult flags =
      testing::RunProgram({testing::AnectlBinary(), "__complete", "train", "start", "--steps"});
  EXPECT_THAT(flags.out, HasSubstr("--checkpoint-every\n"));
  RunResult positional =
      testing::RunProgram({testing::AnectlBinary(), "__complete", "train", "resume", "abc123"});
  EXPECT_THAT(positional.out, HasSubstr("--steps\n"));
  EXPECT_THAT(positional.out, HasSubstr("--json\n"));
}

// Checklist: "two live sessions cannot share a name" (names resolve like ids).
TEST_F(FirstHourTest, TwoLiveSessionsCannotShareAName) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string id = Start(d, {"--steps", "100000", "--name", "mine"});
  ASSERT_FALSE(id.empty());
  RunResult twin = d.Anectl({"train", "start", "--data", data_, "--name", "mine"});
  EXPECT_EQ(twin.exit_code, 1);
  EXPECT_THAT(twin.err, HasSubstr("already running as 'mine'"));
  RunResult show = d.Anectl({"--json", "train", "show", "mine"});  // the name resolves
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(Json::parse(show.out)["session"]["id"], id);
  ASSERT_EQ(d.Anectl({"train", "stop", "mine"}).exit_code, 0);
}

// Checklist: "train resume takes --watch".
TEST_F(FirstHourTest, ResumeWatchFollowsTheRunToItsEnd) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  const std::string id = Start(d, {"--steps", "5"});
  ASSERT_FALSE(id.empty());
  Events(d, id);  // until it completes
  RunResult r = d.Anectl({"--json", "train", "resume", id, "--steps", "3", "--watch"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::vector<Json> events = ParseLines(r.out);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().value("state", ""), "completed");
  EXPECT_EQ(Show(d, id)["step"].get<int64_t>(), 8);
}

// Checklist: "a replay after recovery shows the promised warning" (README: after a crash, watchers
// see one warning and an unbroken step sequence). The daemon is killed with SIGKILL mid-run and
// started again; replayed as a table, the log has exactly one warning, placed right after the
// checkpoint the run resumed from, naming that step and the step the daemon had reached, and
// every step appears once.
TEST_F(FirstHourTest, AReplayAfterAKillNineShowsOneWarningNamingTheSteps) {
  std::string id;
  {
    DaemonProcess d(dir_.path());
    ASSERT_TRUE(d.Start().ok());
    id = Start(d, {"--steps", "500", "--checkpoint-every", "40"});
    ASSERT_FALSE(id.empty());
    WaitForStep(d, id, 100);
    ASSERT_EQ(*d.Stop(SIGKILL), -SIGKILL);
  }
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok()) << d.ReadLog();
  ExpectEveryStepOnce(Steps(Events(d, id)), 500);
  RunResult table = d.Anectl({"train", "watch", id, "--table"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  std::vector<std::string> warnings;
  std::string checkpoint_before;  // the last "checkpoint at step N" line before the warning
  std::istringstream lines(table.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("warning: ", 0) == 0) warnings.push_back(line);
    if (warnings.empty() && line.rfind("checkpoint at step ", 0) == 0) checkpoint_before = line;
  }
  ASSERT_EQ(warnings.size(), 1u) << table.out;
  const int64_t resumed = std::stoll(checkpoint_before.substr(19));
  EXPECT_GE(resumed, 40);
  EXPECT_THAT(warnings[0], HasSubstr("the daemon stopped unexpectedly after step "));
  EXPECT_THAT(warnings[0],
              HasSubstr(absl::StrCat("resuming from the checkpoint at step ", resumed)));
}

}  // namespace
}  // namespace anerd
