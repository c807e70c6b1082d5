// TensorBoard scalars of a real training run: `anectl train logdir` names the session directory,
// which holds one tfevents file whose records (checked by an independent python3-protobuf reader,
// every masked CRC verified) carry each step's loss exactly as WatchSession streamed it, and no
// device time on the cpu backend (not measured, so absent rather than zero).
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

std::string ProtobufPython() {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    if (testing::RunProgram({py, "-c", "import google.protobuf"}).exit_code == 0) return py;
  }
  return "";
}

TEST(TensorBoardTest, EveryStepsLossIsInTheSessionsEventFile) {
  const std::string py = ProtobufPython();
  if (py.empty()) GTEST_SKIP() << "no python3 with google.protobuf (python3-protobuf)";
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start().ok()) << daemon.ReadLog();
  const std::string data = dir.path() + "/stories.txt";
  RunResult synth = daemon.Anectl({"data", "synth", "--out", data, "--bytes", "100000"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  RunResult start = daemon.Anectl(
      {"train", "start", "--data", data, "--steps", "6", "--backend", "cpu", "--json"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const std::string id = Json::parse(start.out)["session"]["id"];
  RunResult watch = daemon.Anectl({"--timeout", "120", "train", "watch", id, "--json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  std::map<int64_t, double> streamed;
  for (absl::string_view line : absl::StrSplit(watch.out, '\n', absl::SkipEmpty())) {
    const Json e = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (e.is_object() && e.value("type", "") == "step") streamed[e["step"]] = e["loss"];
  }
  ASSERT_EQ(streamed.size(), 6u) << watch.out;

  RunResult logdir = daemon.Anectl({"train", "logdir", id});
  ASSERT_EQ(logdir.exit_code, 0) << logdir.err;
  const std::string path = std::string(absl::StripAsciiWhitespace(logdir.out));
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (absl::StrContains(entry.path().filename().string(), "tfevents")) {
      files.push_back(entry.path());
    }
  }
  ASSERT_EQ(files.size(), 1u) << "in " << path;
  RunResult check = testing::RunProgram(
      {py, std::string(ANERD_SOURCE_DIR) + "/tests/metrics/tfevents_reference.py", "check",
       files[0]});
  ASSERT_EQ(check.exit_code, 0) << check.err;
  const Json records = Json::parse(check.out);
  ASSERT_EQ(records.size(), 7u) << records;
  EXPECT_EQ(records[0]["file_version"], "brain.Event:2");
  for (size_t i = 1; i < records.size(); ++i) {
    const Json& r = records[i];
    const int64_t step = r["step"];
    EXPECT_EQ(step, static_cast<int64_t>(i));
    EXPECT_FLOAT_EQ(r["scalars"]["loss/train"].get<float>(), static_cast<float>(streamed[step]));
    EXPECT_TRUE(r["scalars"].contains("phase_ms/kernel")) << r;
    EXPECT_FALSE(r["scalars"].contains("phase_ms/kernel_hw")) << "cpu reports no device time";
    EXPECT_GT(r["wall_time"].get<double>(), 1.6e9);
  }
}

}  // namespace
}  // namespace anerd
