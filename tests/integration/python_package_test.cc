// The `anerd` Python package (client/python) installed the way the README says: a venv made with
// --system-site-packages (Debian's grpc and numpy), `pip install --no-build-isolation --no-index`
// (offline), the stubs generated while it builds. python_package_check.py then runs with the
// venv's interpreter against a real daemon: context manager, numpy in and out checked against
// numpy, typed errors with the daemon's message, the watch and probe iterators. Skips only when
// /usr/bin/python3 lacks venv, pip, setuptools, grpc or numpy (scripts/install-deps.sh installs
// them).
#include <filesystem>
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
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunOptions;
using testing::RunProgram;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";

// Copies `from` to `to`, leaving out what a local build of the package left behind.
void CopySources(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (auto it = fs::recursive_directory_iterator(from); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string name = it->path().filename().string();
    const bool skip = name == "build" || name == "gen" || name == "__pycache__" ||
                      name.find(".egg-info") != std::string::npos ||
                      name.find("_pb2") != std::string::npos;
    if (skip) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    const fs::path target = to / fs::relative(it->path(), from);
    if (it->is_directory()) {
      fs::create_directories(target);
    } else {
      fs::copy_file(it->path(), target, fs::copy_options::overwrite_existing);
    }
  }
}

// The environment of every Python process here: no PYTHONPATH leaking the build tree's staged
// package in, no pip configuration or cache from the user running the tests.
RunOptions Isolated(absl::Duration timeout) {
  RunOptions options;
  options.extra_env = {"PYTHONPATH=", "PIP_CONFIG_FILE=/dev/null", "PIP_NO_CACHE_DIR=1",
                       "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1"};
  options.timeout = timeout;
  return options;
}

class PythonPackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunResult probe =
        RunProgram({kPython, "-c", "import setuptools, wheel, pip, ensurepip, venv, grpc, numpy"},
                   Isolated(absl::Seconds(60)));
    if (probe.exit_code != 0) {
      GTEST_SKIP() << kPython
                   << " lacks venv, pip, setuptools, wheel, grpc or numpy (Debian: python3-venv "
                      "python3-pip python3-setuptools python3-wheel python3-grpcio "
                      "python3-numpy): "
                   << probe.err;
    }
    venv_ = dir_.path() + "/venv";
    RunResult made = RunProgram({kPython, "-m", "venv", "--system-site-packages", venv_},
                                Isolated(absl::Seconds(120)));
    ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  }

  // pip install --no-build-isolation --no-index DIR with the venv's pip.
  RunResult PipInstall(const std::string& dir) const {
    return RunProgram(
        {venv_ + "/bin/python", "-m", "pip", "install", "--no-build-isolation", "--no-index", dir},
        Isolated(absl::Seconds(300)));
  }

  TempDir dir_;
  std::string venv_;
};

TEST_F(PythonPackageTest, InstallsOfflineAndWorksAgainstADaemon) {
  // The package and the proto at their places in a checkout, copied so the build's files
  // (client/python/build, the egg-info) do not land in the source tree.
  const std::string src = dir_.path() + "/src";
  CopySources(fs::path(ANERD_SOURCE_DIR) / "client/python", src + "/client/python");
  CopySources(fs::path(ANERD_SOURCE_DIR) / "proto", src + "/proto");
  RunResult installed = PipInstall(src + "/client/python");
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;

  fs::create_directories(dir_.path() + "/daemon");
  DaemonProcess daemon(dir_.path() + "/daemon");
  ASSERT_TRUE(daemon.Start().ok()) << daemon.ReadLog();
  const std::string data = dir_.path() + "/daemon/stories.txt";
  RunResult synth = daemon.Anectl({"data", "synth", "--out", data, "--bytes", "200000"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;

  RunResult r =
      RunProgram({venv_ + "/bin/python",
                  std::string(ANERD_SOURCE_DIR) + "/tests/integration/python_package_check.py",
                  daemon.host(), std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1", data},
                 Isolated(absl::Seconds(300)));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json s = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(s.is_discarded()) << r.out;

  EXPECT_THAT(s["anerd_file"].get<std::string>(), HasSubstr(venv_ + "/lib/"))
      << "imported from the venv's site-packages, not a source tree";
  const Json& kernel = s["kernel"];
  EXPECT_EQ(kernel["output_type"], "ndarray");
  EXPECT_EQ(kernel["output_dtype"], "float16");
  EXPECT_EQ(kernel["output_shape"], Json({1, 32, 1, 256}));
  EXPECT_EQ(kernel["weight_bytes"], 4224) << "every streamed chunk arrived";
  EXPECT_LT(kernel["max_abs_error"].get<double>(), 0.02);
  EXPECT_GT(kernel["max_abs_output"].get<double>(), 0.05) << "not all zeros";
  EXPECT_EQ(kernel["listed"], true);

  // Typed errors carry the code and the daemon's own message.
  EXPECT_EQ(kernel["wrong_input"]["class"], "InvalidArgument") << kernel["wrong_input"];
  EXPECT_EQ(kernel["wrong_input"]["code"], "INVALID_ARGUMENT");
  EXPECT_THAT(kernel["wrong_input"]["message"].get<std::string>(),
              HasSubstr("unexpected input 'z'"));
  EXPECT_EQ(kernel["wrong_shape"]["class"], "InvalidArgument") << kernel["wrong_shape"];
  EXPECT_THAT(kernel["wrong_shape"]["message"].get<std::string>(), HasSubstr("input 'x'"));
  EXPECT_EQ(s["missing_kernel"]["class"], "NotFound") << s["missing_kernel"];
  EXPECT_EQ(s["missing_kernel"]["str"], "NOT_FOUND: kernel " + std::string(64, '0') + " not found");

  // The watch iterator sees every step and ends with the session.
  const Json& training = s["training"];
  EXPECT_EQ(training["steps"], Json({1, 2, 3, 4, 5}));
  EXPECT_EQ(training["states"].front(), "queued");
  EXPECT_EQ(training["states"].back(), "completed");
  EXPECT_EQ(training["final"], "completed");
  EXPECT_EQ(training["listed"], true);
  EXPECT_EQ(training["stop_finished"]["class"], "FailedPrecondition") << training["stop_finished"];

  // The probe iterator: started, one row per grid point, the summary; the result is stored.
  EXPECT_EQ(s["probe"]["kinds"], Json({"started", "row", "summary"}));
  EXPECT_EQ(s["probe"]["stored_rows"], 1);
  EXPECT_EQ(s["probe"]["listed"], true);

  // Leaving the `with` block closed the channel.
  EXPECT_THAT(s["after_close"].get<std::string>(), HasSubstr("closed channel"));

  // An uncaught error reads as the typed exception, without grpc's internals.
  const std::string uncaught = s["uncaught"]["stderr"];
  EXPECT_EQ(s["uncaught"]["exit_code"], 1);
  EXPECT_THAT(uncaught, HasSubstr("anerd.NotFound: NOT_FOUND: kernel nope not found"));
  EXPECT_THAT(uncaught, Not(HasSubstr("debug_error_string")));
  EXPECT_THAT(uncaught, Not(HasSubstr("_InactiveRpcError")));
}

TEST_F(PythonPackageTest, BuildWithoutTheProtoFailsNamingWhereItLooked) {
  // client/python alone, away from the repository's proto/: its ../../proto is dir_/proto, absent.
  const std::string alone = dir_.path() + "/alone/python";
  CopySources(fs::path(ANERD_SOURCE_DIR) / "client/python", alone);
  RunResult r = PipInstall(alone);
  EXPECT_NE(r.exit_code, 0);
  const std::string output = r.out + r.err;
  EXPECT_THAT(output, HasSubstr("anerd.proto not found; looked in"));
  EXPECT_THAT(output, HasSubstr(dir_.path() + "/proto/anerd/v1/anerd.proto"));
  EXPECT_THAT(output, HasSubstr("ANERD_PROTO_DIR"));
}

}  // namespace
}  // namespace anerd
