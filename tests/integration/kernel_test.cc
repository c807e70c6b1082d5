// `anectl kernel` against the real daemon: .npy in and out, ids across restarts, TCP on loopback,
// and bad input reported with the right exit code.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/fp16.h"
#include "common/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/kernel_fixtures.h"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using testing::FreeLoopbackPort;
using ::testing::HasSubstr;
using testing::RunResult;
using testing::TempDir;

const std::string kConvMil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";

std::vector<float> WriteConvInput(const std::string& path) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(testing::kConvIn * testing::kConvSeq);
  NpyArray a;
  a.descr = "<f2";
  a.shape = {1, testing::kConvIn, 1, testing::kConvSeq};
  a.data.resize(x.size() * 2);
  for (size_t i = 0; i < x.size(); ++i) {
    const uint16_t h = FloatToHalf(u(rng));
    x[i] = HalfToFloat(h);
    std::memcpy(&a.data[2 * i], &h, 2);
  }
  EXPECT_TRUE(WriteNpyFile(path, a).ok());
  return x;
}

std::string CompileConv(const DaemonProcess& daemon) {
  RunResult r = daemon.Anectl({"kernel", "compile", kConvMil, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out)["kernel"]["id"];
}

TEST(KernelCliTest, CompileRunWithNpyAndCheckOutputs) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  const std::string id = CompileConv(daemon);
  ASSERT_EQ(id.size(), 64u);
  const std::vector<float> x = WriteConvInput(dir.path() + "/x.npy");
  RunResult run =
      daemon.Anectl({"kernel", "run", id.substr(0, 10), "--in", "x=" + dir.path() + "/x.npy",
                     "--out-dir", dir.path() + "/out", "--repeat", "5", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["repeat"], 5);
  EXPECT_EQ(j["outputs"][0]["name"], "y");
  EXPECT_GT(j["client_rtt_us"]["p50"].get<double>(), 0);
  absl::StatusOr<NpyArray> y = ReadNpyFile(dir.path() + "/out/y.npy");
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->descr, "<f2");
  EXPECT_EQ(y->shape, (std::vector<int64_t>{1, 32, 1, 256}));
  const std::vector<double> ref = testing::ReferenceConv(x);
  for (size_t i = 0; i < ref.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, y->data.data() + 2 * i, 2);
    ASSERT_NEAR(HalfToFloat(h), ref[i], 2e-3 + 2e-3 * std::fabs(ref[i])) << i;
  }
  // Human output names the output and the timing.
  RunResult human = daemon.Anectl({"kernel", "run", id, "--in", "x=" + dir.path() + "/x.npy"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_THAT(human.out, HasSubstr("[1, 32, 1, 256]"));
  EXPECT_THAT(human.out, HasSubstr("execute"));
}

TEST(KernelCliTest, IdsSurviveADaemonRestart) {
  TempDir dir;
  std::string id;
  {
    DaemonProcess daemon(dir.path());
    ASSERT_TRUE(daemon.Start().ok());
    id = CompileConv(daemon);
    ASSERT_EQ(*daemon.Stop(SIGTERM), 0);
  }
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  RunResult ls = daemon.Anectl({"kernel", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  nlohmann::json kernels = nlohmann::json::parse(ls.out)["kernels"];
  ASSERT_EQ(kernels.size(), 1u);
  EXPECT_EQ(kernels[0]["id"], id);
  EXPECT_EQ(kernels[0]["loaded"], false);
  RunResult run = daemon.Anectl({"kernel", "run", id, "--random", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["timing"]["recompiled"], true);
  RunResult again = daemon.Anectl({"kernel", "compile", kConvMil, "--json"});
  EXPECT_EQ(nlohmann::json::parse(again.out)["cache_hit"], true);
  EXPECT_EQ(daemon.Anectl({"kernel", "rm", id}).exit_code, 0);
  RunResult gone = daemon.Anectl({"kernel", "show", id});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("not found"));
}

TEST(KernelCliTest, ServesPlainTcpOnLoopbackOnlyWhenAsked) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  const std::string addr = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  // Every TCP port checks bearer tokens: make one, give the daemon the file and anectl the token.
  const std::string tokens = dir.path() + "/tokens";
  RunResult token = daemon.Anectl({"token", "create", "kernel-test", "--file", tokens});
  ASSERT_EQ(token.exit_code, 0) << token.err;
  ASSERT_TRUE(
      daemon.Start({"--listen=" + addr, "--insecure-loopback", "--auth-tokens=" + tokens}).ok())
      << daemon.ReadLog();
  RunResult r = testing::RunProgram({testing::AnectlBinary(), "--host", addr, "--token-file",
                                     tokens, "kernel", "compile", kConvMil, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = nlohmann::json::parse(r.out)["kernel"]["id"];
  RunResult run = testing::RunProgram({testing::AnectlBinary(), "--host", addr, "--token-file",
                                       tokens, "kernel", "run", id, "--random"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  RunResult no_token = testing::RunProgram(
      {testing::AnectlBinary(), "--host", addr, "kernel", "run", id, "--random"});
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_THAT(no_token.err, HasSubstr("missing bearer token"));

  TempDir other;
  RunResult refused = testing::RunProgram(
      {testing::AnerdBinary(), "--socket=" + other.path() + "/s.sock",
       "--state-dir=" + other.path() + "/state", "--listen=0.0.0.0:7999", "--insecure-loopback"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("not a loopback address"));
  RunResult no_flag =
      testing::RunProgram({testing::AnerdBinary(), "--socket=" + other.path() + "/s.sock",
                           "--state-dir=" + other.path() + "/state", "--listen=127.0.0.1:7999"});
  EXPECT_EQ(no_flag.exit_code, 1);
  EXPECT_THAT(no_flag.err, HasSubstr("--insecure-loopback"));
  RunResult no_tokens = testing::RunProgram(
      {testing::AnerdBinary(), "--socket=" + other.path() + "/s.sock",
       "--state-dir=" + other.path() + "/state", "--listen=127.0.0.1:7999", "--insecure-loopback"});
  EXPECT_EQ(no_tokens.exit_code, 1);
  EXPECT_THAT(no_tokens.err, HasSubstr("--auth-tokens"));
}

TEST(KernelCliTest, BadInputIsReportedClearly) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  const std::string bad_mil = dir.path() + "/bad.mil";
  {
    std::ofstream f(bad_mil);
    f << "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [4]> x) {\n        tensor<fp32, [4]> "
         "y = "
         "frob(x = x)[name = string(\"y\")];\n    } -> (y);\n}\n";
  }
  RunResult compile = daemon.Anectl({"kernel", "compile", bad_mil});
  EXPECT_EQ(compile.exit_code, 1);
  EXPECT_THAT(compile.err, HasSubstr("4:"));
  EXPECT_THAT(compile.err, HasSubstr("frob"));

  const std::string id = CompileConv(daemon);
  RunResult missing = daemon.Anectl({"kernel", "run", id});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no value for input 'x: fp16[1, 64, 1, 256]'"));

  NpyArray wrong;
  wrong.descr = "<f4";
  wrong.shape = {1, 64, 1, 256};
  wrong.data.resize(64 * 256 * 4);
  ASSERT_TRUE(WriteNpyFile(dir.path() + "/wrong.npy", wrong).ok());
  // An fp32 array for an fp16 input is converted, with a notice; a wrong shape is refused.
  RunResult type = daemon.Anectl({"kernel", "run", id, "--in", "x=" + dir.path() + "/wrong.npy"});
  EXPECT_EQ(type.exit_code, 0) << type.err;
  EXPECT_THAT(type.err, HasSubstr("from fp32 to fp16"));
  wrong.shape = {1, 64, 1, 128};
  wrong.data.resize(64 * 128 * 4);
  ASSERT_TRUE(WriteNpyFile(dir.path() + "/short.npy", wrong).ok());
  RunResult shape = daemon.Anectl({"kernel", "run", id, "--in", "x=" + dir.path() + "/short.npy"});
  EXPECT_EQ(shape.exit_code, 1);
  EXPECT_THAT(shape.err, HasSubstr("x"));

  RunResult unknown = daemon.Anectl({"kernel", "run", "ffff"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no kernel named 'ffff' or whose id starts with it"));
  EXPECT_EQ(daemon.Anectl({"kernel", "run"}).exit_code, 2);
  EXPECT_EQ(daemon.Anectl({"kernel", "run", id, "--repeat", "0"}).exit_code, 2);
}

}  // namespace
}  // namespace anerd
