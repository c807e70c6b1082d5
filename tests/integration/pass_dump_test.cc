// `anectl kernel compile --dump-passes DIR` against the real daemon: the dumps travel in the
// CompileKernel response and anectl writes them, one file per pass in pipeline order, on a fresh
// compile and on a cache hit, with the cpu backend in the daemon or in a worker process
// (--isolate-cpu: the dumps then cross the worker wire); a backend without passes says so.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

namespace fs = std::filesystem;
using testing::DaemonProcess;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunResult;
using testing::TempDir;

constexpr char kMil[] = R"(program(1.3)
{
    func main<ios18>(tensor<fp32, [4, 5]> c) {
        tensor<fp32, [4, 5]> s = add(x = c, y = c)[name = string("s")];
        tensor<fp32, [4, 5]> t = relu(x = s)[name = string("t")];
        tensor<fp32, [5, 4]> y = transpose(x = t, perm = tensor<int32, [2]>([1, 0]))[name = string("y")];
    } -> (y);
}
)";

std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Compiles kMil on cpu twice with --dump-passes (a fresh compile, then a cache hit) and checks
// the files written.
void ExpectDumpsOnCompileAndOnACacheHit(DaemonProcess& daemon, const std::string& root) {
  const std::string mil = root + "/k.mil";
  std::ofstream(mil) << kMil;
  const std::vector<std::string> expected = {"00-input.txt",
                                             "01-lower.txt",
                                             "02-views.txt",
                                             "03-fold-transposes.txt",
                                             "04-fuse-elementwise.txt",
                                             "05-alias-concat.txt"};
  for (const char* sub : {"first", "again"}) {
    const std::string out = root + "/dumps/" + sub;
    RunResult r = daemon.Anectl(
        {"kernel", "compile", mil, "--backend", "cpu", "--dump-passes", out, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["cache_hit"].get<bool>(), std::string(sub) == "again");
    EXPECT_EQ(j["pass_dumps"].size(), expected.size());
    EXPECT_EQ(Listing(out), expected);
    EXPECT_THAT(Read(out + "/00-input.txt"), HasSubstr("relu(x = s)"));
    EXPECT_THAT(Read(out + "/01-lower.txt"), HasSubstr("copy (no views)"));
    EXPECT_THAT(Read(out + "/02-views.txt"), Not(HasSubstr("copy (no views)")));
    EXPECT_THAT(Read(out + "/03-fold-transposes.txt"), Not(HasSubstr("fused chain")));
    EXPECT_THAT(Read(out + "/04-fuse-elementwise.txt"), HasSubstr("fused chain of 2 ops"));
  }
}

TEST(PassDumpCliTest, WritesOneFilePerPassOnCompileAndOnACacheHit) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok());
  ExpectDumpsOnCompileAndOnACacheHit(daemon, dir.path());
  const std::string mil = dir.path() + "/k.mil";
  // Without the flag nothing is dumped and the response carries no dumps.
  RunResult plain = daemon.Anectl({"kernel", "compile", mil, "--backend", "cpu", "--json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_FALSE(nlohmann::json::parse(plain.out).contains("pass_dumps"));
  // The simulated ANE has no passes: nothing is written, and anectl says so.
  const std::string sim = dir.path() + "/dumps/sim";
  RunResult r =
      daemon.Anectl({"kernel", "compile", mil, "--backend", "ane-sim", "--dump-passes", sim});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("returned no pass dumps"));
  EXPECT_TRUE(Listing(sim).empty());
}

// The cpu backend in a worker process: its dumps cross the worker wire.
TEST(PassDumpCliTest, TheDumpsComeBackFromAWorker) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start({"--isolate-cpu"}).ok());
  ExpectDumpsOnCompileAndOnACacheHit(daemon, dir.path());
}

}  // namespace
}  // namespace anerd
