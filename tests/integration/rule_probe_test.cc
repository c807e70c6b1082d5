// The ANE capability probe through the real daemon (issue 18 item 7): `anectl doctor --probe
// --json` runs it in the ane-sim worker and reproduces the rules table; a simulator configured to
// differ (--testonly_sim) is measured, the result persisted per (chip, OS build), and after a
// restart the lowering uses the measured value — a kernel whose surfaces the table sizes too
// small for that device then runs — while a daemon on another OS build ignores it.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "common/fp16.h"
#include "common/npy.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using testing::RunResult;
using testing::TempDir;

const std::string kConvMil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";

nlohmann::json ParseJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << text;
  return j;
}

// The rule `id` as `anectl doctor --json` lists it for `backend`.
nlohmann::json RuleInForce(const nlohmann::json& doctor, const std::string& backend,
                           const std::string& id) {
  for (const auto& r : doctor["ane_rules"][backend]["rules"]) {
    if (r["id"] == id) return r;
  }
  ADD_FAILURE() << id << " missing: " << doctor["ane_rules"].dump();
  return nlohmann::json::object();
}

void WriteInput(const std::string& path) {
  NpyArray x;  // conv.mil's input: x, tensor<fp16, [1, 64, 1, 256]> (32 KiB)
  x.descr = "<f2";
  x.shape = {1, 64, 1, 256};
  x.data.resize(64 * 256 * 2);
  for (int i = 0; i < 64 * 256; ++i) {
    const uint16_t h = FloatToHalf(std::sin(0.1f * static_cast<float>(i)));
    std::memcpy(&x.data[2 * i], &h, 2);
  }
  ASSERT_TRUE(WriteNpyFile(path, x).ok());
}

// Compiles conv.mil on ane-sim and runs it once.
RunResult CompileAndRun(const DaemonProcess& daemon, const std::string& dir) {
  RunResult c = daemon.Anectl({"kernel", "compile", kConvMil, "--backend", "ane-sim", "--json"});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  const std::string id = ParseJson(c.out)["kernel"]["id"];
  return daemon.Anectl(
      {"kernel", "run", id, "--in", "x=" + dir + "/x.npy", "--out-dir", dir + "/out", "--json"});
}

TEST(RuleProbeIntegration, DoctorProbeRunsInTheWorkerAndReproducesTheTable) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start({"--backend", "ane-sim"}).ok()) << daemon.ReadLog();
  RunResult doctor = daemon.Anectl({"doctor", "--probe", "--json"});
  ASSERT_EQ(doctor.exit_code, 0) << doctor.out << doctor.err;
  const nlohmann::json d = ParseJson(doctor.out);
  const nlohmann::json& p = d["rule_probe"];
  EXPECT_EQ(p["backend"], "ane-sim");
  EXPECT_EQ(p["simulated"], true);
  EXPECT_EQ(p["chip"], "ane-sim");
  EXPECT_EQ(p["os_build"], "simulated");
  ASSERT_GE(p["rows"].size(), 9u) << p.dump();
  std::vector<std::string> rules;
  for (const auto& r : p["rows"]) {
    rules.push_back(r["rule"]);
    EXPECT_EQ(r["agrees"], true) << r.dump();  // the simulator enforces the table
    EXPECT_EQ(r["label"], "simulated") << r.dump();
    EXPECT_EQ(r["table_value"], r["measured_value"]) << r.dump();
  }
  for (const char* want : {"min_surface_bytes", "concat", "alphabetical_binding", "cast_supported",
                           "weights_baked", "width_channel_reshape"}) {
    EXPECT_NE(std::find(rules.begin(), rules.end(), want), rules.end()) << want;
  }
  // The measured values are in force, each naming the probe; rules it does not measure stay the
  // table's.
  const nlohmann::json min = RuleInForce(d, "ane-sim", "min_surface_bytes");
  EXPECT_EQ(min["value"], "49152");
  EXPECT_NE(min["source"].get<std::string>().find("probed at "), std::string::npos) << min.dump();
  EXPECT_EQ(min["source"], p["origin"]);
  EXPECT_EQ(RuleInForce(d, "ane-sim", "compile_budget")["source"], "table");
  // It ran in the worker that owns the device, which was then replaced to put the rules in force.
  RunResult status = daemon.Anectl({"status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("measured ANE rules in force"), std::string::npos) << status.out;

  // The human table, and the error on a backend without an ANE.
  RunResult text = daemon.Anectl({"doctor", "--probe"});
  EXPECT_EQ(text.exit_code, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("min_surface_bytes"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("(simulated)"), std::string::npos) << text.out;
  RunResult cpu = daemon.Anectl({"doctor", "--probe", "--backend", "cpu"});
  EXPECT_NE(cpu.exit_code, 0);
  EXPECT_NE(cpu.err.find("the cpu backend drives no ANE"), std::string::npos) << cpu.err;
}

TEST(RuleProbeIntegration, MeasuredRulesPersistPerChipAndOsBuildAndDriveTheLowering) {
  TempDir dir;
  WriteInput(dir.path() + "/x.npy");
  // A device whose smallest working surface is 64 KiB (the table says 48 KiB).
  const std::vector<std::string> build_a = {"--backend", "ane-sim",
                                            "--testonly_sim=min_surface_bytes=65536,os_build=A"};
  {
    DaemonProcess daemon(dir.path());
    ASSERT_TRUE(daemon.Start(build_a).ok()) << daemon.ReadLog();
    // The table's lowering allocates 48 KiB surfaces: this device fails them at evaluation.
    RunResult before = CompileAndRun(daemon, dir.path());
    EXPECT_NE(before.exit_code, 0) << before.out;
    EXPECT_NE(before.err.find("min_surface_bytes"), std::string::npos) << before.err;
    RunResult doctor = daemon.Anectl({"doctor", "--probe", "--json"});
    ASSERT_EQ(doctor.exit_code, 0) << doctor.out << doctor.err;
    const nlohmann::json d = ParseJson(doctor.out);
    bool measured = false;
    for (const auto& r : d["rule_probe"]["rows"]) {
      if (r["rule"] != "min_surface_bytes") continue;
      measured = true;
      EXPECT_EQ(r["table_value"], "49152");
      EXPECT_EQ(r["measured_value"], "65536");
      EXPECT_EQ(r["agrees"], false);
    }
    EXPECT_TRUE(measured) << d["rule_probe"].dump();
    EXPECT_EQ(d["rule_probe"]["os_build"], "A");
    ASSERT_TRUE(daemon.Stop(SIGTERM).ok());
  }
  {
    // Restarted on the same chip and OS build: the persisted measurement is in force at once.
    DaemonProcess daemon(dir.path());
    ASSERT_TRUE(daemon.Start(build_a).ok()) << daemon.ReadLog();
    RunResult run = CompileAndRun(daemon, dir.path());
    EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
    RunResult doctor = daemon.Anectl({"doctor", "--json"});
    ASSERT_EQ(doctor.exit_code, 0) << doctor.out << doctor.err;
    const nlohmann::json min = RuleInForce(ParseJson(doctor.out), "ane-sim", "min_surface_bytes");
    EXPECT_EQ(min["value"], "65536");
    EXPECT_NE(min["source"].get<std::string>().find("on ane-sim, A"), std::string::npos)
        << min.dump();
    ASSERT_TRUE(daemon.Stop(SIGTERM).ok());
  }
  {
    // Another OS build: the probe does not apply; the table's value is back.
    DaemonProcess daemon(dir.path());
    ASSERT_TRUE(daemon.Start({"--backend", "ane-sim",
                              "--testonly_sim=min_surface_bytes=65536,os_build=B"})
                    .ok())
        << daemon.ReadLog();
    RunResult run = CompileAndRun(daemon, dir.path());
    EXPECT_NE(run.exit_code, 0) << run.out;
    RunResult doctor = daemon.Anectl({"doctor", "--json"});
    const nlohmann::json min = RuleInForce(ParseJson(doctor.out), "ane-sim", "min_surface_bytes");
    EXPECT_EQ(min["value"], "49152");
    EXPECT_EQ(min["source"], "table");
  }
}

}  // namespace
}  // namespace anerd
