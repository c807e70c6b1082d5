// The daemon cannot be wedged or made to hold memory it does not count (issue 16, items 3, 6, 7),
// through the real anerd and anectl: a FIFO named as training data or as the init model is refused
// at once and blocks nothing; a kernel's planned memory shows in `anectl status` and one too large
// is refused; SIGTERM ends the daemon within its grace plus a bounded margin even while work
// cannot stop (a hung worker evaluation) or runs long (a probe), and the daemon starts again; a
// probe whose client went away frees the device for the next request.
//
// Upper bounds on shutdown are generous (grace + 15 s) so a loaded 2-core machine does not flake;
// the work they interrupt would otherwise run for minutes.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/synth_stories.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunOptions;
using testing::RunResult;
using Json = nlohmann::json;

constexpr char kGraceMs[] = "1000";
// Grace + the daemon's margin (5 s) + 10 s of slack for a loaded machine.
const absl::Duration kExitBound = absl::Seconds(16);

std::string ConvMil() {
  return std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";
}

std::string HangMil() {
  return "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [1, 4, 1, 8]> x) {\n"
         "        tensor<fp32, [1, 4, 1, 8]> y = anerd_test_hang(x = x)[name = string(\"y\")];\n"
         "    } -> (y);\n}\n";
}

// y = a @ b with a, b fp32 [1, 1, n, n]: three n*n buffers once planned.
std::string MatmulMil(int n) {
  const std::string t = absl::StrCat("tensor<fp32, [1, 1, ", n, ", ", n, "]>");
  return absl::StrCat("program(1.3)\n{\n    func main<ios18>(", t, " a, ", t, " b) {\n",
                      "        bool f = const()[name = string(\"f\"), val = bool(false)];\n",
                      "        ", t,
                      " y = matmul(transpose_x = f, transpose_y = f, x = a, y = b)"
                      "[name = string(\"y\")];\n",
                      "    } -> (y);\n}\n");
}

// Polls the daemon's log (which the workers share) for `text`; false after ~30 s.
bool WaitForLog(const DaemonProcess& d, const std::string& text) {
  for (int i = 0; i < 3000; ++i) {
    if (d.ReadLog().find(text) != std::string::npos) return true;
    ::usleep(10000);
  }
  return false;
}

class ResourcesTest : public ::testing::Test {
 protected:
  // The daemon exits on SIGTERM within kExitBound, then starts again and answers.
  void ExpectStopsInTimeAndRestarts(DaemonProcess& d, const std::vector<std::string>& flags) {
    absl::StatusOr<int> code = d.Stop(SIGTERM, kExitBound);
    ASSERT_TRUE(code.ok()) << "anerd did not exit within grace + margin\n" << d.ReadLog();
    EXPECT_TRUE(*code == 0 || *code == 2) << "exit code " << *code;
    ASSERT_TRUE(d.Start(flags).ok()) << d.ReadLog();
    RunResult status = d.Anectl({"status", "--json"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    absl::StatusOr<int> again = d.Stop(SIGTERM, kExitBound);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, 0) << "an idle daemon stops cleanly";
  }

  testing::TempDir dir_;
};

TEST_F(ResourcesTest, AFifoAsDataOrInitIsRefusedAtOnceAndWedgesNothing) {
  DaemonProcess d(dir_.path());
  const std::vector<std::string> flags = {"--shutdown-grace-ms", kGraceMs};
  ASSERT_TRUE(d.Start(flags).ok());
  const std::string fifo = dir_.path() + "/data.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string text = dir_.path() + "/stories.txt";
  std::ofstream(text) << SynthesizeStories(7, 20000);

  RunOptions quick;
  quick.timeout = absl::Seconds(60);
  RunResult data = d.Anectl({"train", "start", "--data", fifo, "--steps", "5"}, quick);
  EXPECT_NE(data.exit_code, 0);
  EXPECT_THAT(data.err, HasSubstr("FIFO"));
  EXPECT_THAT(data.err, HasSubstr("data"));
  RunResult init =
      d.Anectl({"train", "start", "--data", text, "--init", fifo, "--steps", "5"}, quick);
  EXPECT_NE(init.exit_code, 0);
  EXPECT_THAT(init.err, HasSubstr("FIFO"));
  EXPECT_THAT(init.err, HasSubstr("init"));

  // The CPU executor still serves: a kernel compiles and runs.
  RunResult run = d.Anectl({"--timeout", "60", "kernel", "run", ConvMil(), "--random"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  ExpectStopsInTimeAndRestarts(d, flags);
}

TEST_F(ResourcesTest, SigtermWhileAWorkerIsHungExitsWithinGraceAndRestarts) {
  DaemonProcess d(dir_.path());
  const std::vector<std::string> flags = {"--testonly_ops", "--shutdown-grace-ms", kGraceMs};
  ASSERT_TRUE(d.Start(flags).ok());
  const std::string hang = dir_.path() + "/hang.mil";
  std::ofstream(hang) << HangMil();
  RunResult compiled = d.Anectl({"kernel", "compile", hang, "--backend", "ane-sim", "--json"});
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  const std::string id = Json::parse(compiled.out)["kernel"]["id"];
  RunResult hung;
  std::thread client([&] {
    hung = d.Anectl({"--timeout", "120", "kernel", "run", id, "--random"});
  });
  ASSERT_TRUE(WaitForLog(d, "hanging the worker on purpose")) << d.ReadLog();
  ExpectStopsInTimeAndRestarts(d, flags);
  client.join();
  EXPECT_NE(hung.exit_code, 0);
}

TEST_F(ResourcesTest, SigtermDuringALongProbeEvaluationExitsWithinGrace) {
  DaemonProcess d(dir_.path());
  // One evaluation of 256x16384x512 is ~1.1 TFLOP: tens of seconds on this machine.
  const std::vector<std::string> flags = {"--shutdown-grace-ms", kGraceMs, "--max-probe-gflop",
                                          "5000"};
  ASSERT_TRUE(d.Start(flags).ok());
  RunResult probe;
  std::thread client([&] {
    probe = d.Anectl({"--timeout", "300", "probe", "peak", "--grid", "256x16384x512", "--repeat",
                      "1", "--warmup", "0", "--peak-tflops", "1"});
  });
  ASSERT_TRUE(WaitForLog(d, ") started on cpu")) << d.ReadLog();
  ::usleep(6000000);  // past building and compiling the program, into its evaluation
  ExpectStopsInTimeAndRestarts(d, flags);
  client.join();
  EXPECT_NE(probe.exit_code, 0);
  // Stopped inside the evaluation; before the fix the evaluation ran to its end (~17 s here) and
  // the probe finished and stored its result while the daemon waited.
  const std::string log = d.ReadLog();
  EXPECT_NE(log.find(") stopped: "), std::string::npos) << log;
  EXPECT_EQ(log.find(") finished in"), std::string::npos) << log;
}

TEST_F(ResourcesTest, ACancelledProbeFreesTheDeviceForATinyEvaluation) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--max-probe-gflop", "5000"}).ok());
  RunResult compiled = d.Anectl({"kernel", "compile", ConvMil(), "--json"});
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  const std::string id = Json::parse(compiled.out)["kernel"]["id"];
  // The client goes away (killed) while the probe's one long evaluation runs.
  RunOptions killed;
  killed.timeout = absl::Seconds(5);
  RunResult probe = d.Anectl({"probe", "peak", "--grid", "256x16384x512", "--repeat", "1",
                              "--warmup", "0", "--peak-tflops", "1"},
                             killed);
  EXPECT_NE(probe.exit_code, 0);
  // The probe checks its cancellation between the steps of an evaluation: it stops inside the
  // evaluation it was in (before the fix it finished that evaluation, ~17 s here, and then
  // stored a complete result for a client that was gone), and the tiny evaluation queued behind
  // it completes.
  RunResult eval = d.Anectl({"--timeout", "120", "kernel", "run", id, "--random"});
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_TRUE(WaitForLog(d, ") stopped: CANCELLED")) << d.ReadLog();
  EXPECT_EQ(d.ReadLog().find(") finished in"), std::string::npos) << d.ReadLog();
}

TEST_F(ResourcesTest, AProbeOverItsBudgetIsRefusedBeforeItStarts) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start().ok());
  RunResult r = d.Anectl({"probe", "sram", "--grid", "16384x16384"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("--max-probe-bytes"));
  EXPECT_THAT(r.err, HasSubstr("grid[0]"));
  EXPECT_EQ(d.ReadLog().find(") started on"), std::string::npos) << "nothing ran";
}

TEST_F(ResourcesTest, KernelMemoryIsCountedAndAKernelTooLargeIsRefused) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.Start({"--cache-bytes", "16000000"}).ok());
  const std::string small = dir_.path() + "/small.mil", huge = dir_.path() + "/huge.mil";
  std::ofstream(small) << MatmulMil(512);   // 3 MiB planned
  std::ofstream(huge) << MatmulMil(20000);  // 4.8 GB planned, from a ~300-byte program
  RunResult ok = d.Anectl({"kernel", "compile", small, "--json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  RunResult status = d.Anectl({"status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const Json cache = Json::parse(status.out)["daemon"]["cache"];
  EXPECT_GE(cache["bytes"].get<uint64_t>(), 3u * 512 * 512 * 4) << cache.dump();
  RunResult refused = d.Anectl({"kernel", "compile", huge});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("bytes of memory"));
  EXPECT_THAT(refused.err, HasSubstr("--max-kernel-memory-bytes"));
}

}  // namespace
}  // namespace anerd
