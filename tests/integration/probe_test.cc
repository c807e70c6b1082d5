// `anectl probe` against a real anerd on the CPU backend with tiny grids: the versioned --json
// document (FLOP counts from the formulas), ls/show (by id prefix), compare ratios, the SVG chart
// parsed as XML (one series per channel count), bad grids rejected by the daemon naming the
// field, and results surviving a daemon restart.
#include <csignal>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing::RunResult;

// Python's XML parser is the reference reader: prints series names and circle counts as JSON.
constexpr char kSvgReader[] = R"PY(
import json, sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
series = {g.get("data-series"): [(float(c.get("data-x")), float(c.get("data-y")))
                                 for c in g.findall("s:circle", ns)]
          for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "series"}
print(json.dumps({"tag": root.tag, "series": series,
                  "polylines": len(root.findall(".//s:polyline", ns))}))
)PY";

class ProbeIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(daemon_.Start().ok()) << daemon_.ReadLog(); }

  Json RunJson(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    RunResult r = daemon_.Anectl(full);
    EXPECT_EQ(r.exit_code, 0) << r.err << daemon_.ReadLog();
    Json j = Json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }
  Json Peak() {
    return RunJson({"probe", "peak", "--grid", "32x8x2,48x8x1", "--repeat", "2", "--warmup", "1",
                    "--peak-tflops", "1"});
  }

  testing::TempDir dir_;
  testing::DaemonProcess daemon_{dir_.path()};
};

TEST_F(ProbeIntegrationTest, PeakJsonShowListAndRestart) {
  Json run = Peak();
  ASSERT_EQ(run["schema_version"], 1);
  const std::string id = run["result_id"];
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(run["probe"], "peak");
  EXPECT_EQ(run["fingerprint"]["backend"], "cpu");
  EXPECT_FALSE(run["fingerprint"]["os"].get<std::string>().empty());
  ASSERT_EQ(run["rows"].size(), 2u);
  EXPECT_EQ(run["rows"][0]["config"], "2x conv 32ch sp8");
  EXPECT_DOUBLE_EQ(run["rows"][0]["gflop"].get<double>(), 2.0 * 32 * 32 * 8 * 2 / 1e9);
  EXPECT_DOUBLE_EQ(run["rows"][1]["gflop"].get<double>(), 2.0 * 48 * 48 * 8 * 1 / 1e9);
  EXPECT_EQ(run["rows"][0]["iterations"], 2);
  EXPECT_EQ(run["summary"]["peak_source"], "given");
  ASSERT_FALSE(run["summary"]["findings"].empty());

  Json ls = RunJson({"probe", "ls"});
  ASSERT_EQ(ls["results"].size(), 1u);
  EXPECT_EQ(ls["results"][0]["result_id"], id);

  ASSERT_TRUE(daemon_.Stop(SIGTERM).ok());
  ASSERT_TRUE(daemon_.Start().ok()) << daemon_.ReadLog();
  Json shown = RunJson({"probe", "show", id});
  EXPECT_EQ(shown["rows"], run["rows"]);
  EXPECT_EQ(shown["fingerprint"], run["fingerprint"]);
  EXPECT_EQ(shown["summary"]["findings"], run["summary"]["findings"]);

  RunResult text = daemon_.Anectl({"probe", "show", id});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("TFLOPS"));
  EXPECT_THAT(text.out, HasSubstr("2x conv 32ch sp8"));
  EXPECT_THAT(text.out, HasSubstr("Findings"));
}

TEST_F(ProbeIntegrationTest, CompareGivesRatiosOfTheStoredRows) {
  Json a = Peak();
  Json b = Peak();
  Json cmp = RunJson({"probe", "compare", a["result_id"], b["result_id"]});
  ASSERT_EQ(cmp["rows"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Json& row = cmp["rows"][i];
    EXPECT_EQ(row["config"], a["rows"][i]["config"]);
    EXPECT_DOUBLE_EQ(row["a"].get<double>(), a["rows"][i]["tflops"].get<double>());
    EXPECT_DOUBLE_EQ(row["b"].get<double>(), b["rows"][i]["tflops"].get<double>());
    EXPECT_NEAR(row["ratio"].get<double>(), row["b"].get<double>() / row["a"].get<double>(), 1e-9);
  }
}

TEST_F(ProbeIntegrationTest, SramSvgIsXmlWithThePlottedSeries) {
  const std::string svg = dir_.path() + "/sram.svg";
  Json run = RunJson({"probe", "sram", "--grid", "32x8,64x8,96x8", "--repeat", "2", "--svg", svg});
  ASSERT_EQ(run["rows"].size(), 3u);
  EXPECT_DOUBLE_EQ(run["rows"][1]["act_mb"].get<double>(), 64.0 * 8 * 2 / (1 << 20));
  RunResult parsed = testing::RunProgram({"/usr/bin/python3", "-c", kSvgReader, svg});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  Json j = Json::parse(parsed.out);
  EXPECT_EQ(j["tag"], "{http://www.w3.org/2000/svg}svg");
  ASSERT_TRUE(j["series"].contains("sram"));
  ASSERT_EQ(j["series"]["sram"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(j["series"]["sram"][i][0].get<double>(), run["rows"][i]["weight_mb"].get<double>(),
                1e-4 * run["rows"][i]["weight_mb"].get<double>());
  }
  EXPECT_EQ(j["polylines"], 1);
}

// A grid over depths plots one series per channel count (no line zigzags between channel counts)
// and the peak chart's labels name no int8 rows.
TEST_F(ProbeIntegrationTest, PeakSvgHasOneSeriesPerChannelCount) {
  const std::string svg = dir_.path() + "/peak.svg";
  Json run = RunJson({"probe", "peak", "--grid", "32x8x1,32x8x2,48x8x1,48x8x2", "--repeat", "2",
                      "--warmup", "1", "--peak-tflops", "1", "--svg", svg});
  ASSERT_EQ(run["rows"].size(), 4u);
  RunResult parsed = testing::RunProgram({"/usr/bin/python3", "-c", kSvgReader, svg});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  Json j = Json::parse(parsed.out);
  ASSERT_EQ(j["series"].size(), 2u) << j.dump();
  ASSERT_TRUE(j["series"].contains("peak 32ch")) << j.dump();
  ASSERT_TRUE(j["series"].contains("peak 48ch")) << j.dump();
  EXPECT_EQ(j["series"]["peak 32ch"].size(), 2u);
  EXPECT_EQ(testing::ReadFile(svg).find("int8"), std::string::npos);
}

// Docker-style ids: a unique prefix of a result id works for show and compare; a prefix two
// results share is refused listing both.
TEST_F(ProbeIntegrationTest, ResultsResolveByUniqueIdPrefix) {
  const std::string a = Peak()["result_id"], b = Peak()["result_id"];
  ASSERT_NE(a, b);
  size_t common = 0;
  while (common < a.size() && a[common] == b[common]) ++common;
  const std::string unique_a = a.substr(0, common + 1), shared = a.substr(0, common);
  EXPECT_EQ(RunJson({"probe", "show", unique_a})["result_id"], a);
  Json cmp = RunJson({"probe", "compare", unique_a, b.substr(0, common + 1)});
  EXPECT_EQ(cmp["a"]["result_id"], a);
  EXPECT_EQ(cmp["b"]["result_id"], b);

  RunResult ambiguous = daemon_.Anectl({"probe", "show", shared});
  EXPECT_EQ(ambiguous.exit_code, 1);
  EXPECT_THAT(ambiguous.err, HasSubstr("ambiguous"));
  EXPECT_THAT(ambiguous.err, HasSubstr(a));
  EXPECT_THAT(ambiguous.err, HasSubstr(b));
  RunResult none = daemon_.Anectl({"probe", "show", "1999"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("no probe result '1999'"));
}

TEST_F(ProbeIntegrationTest, LatencyAddsTheClientMeasuredRpcRow) {
  Json run = RunJson({"probe", "latency", "--grid", "16x4", "--repeat", "5"});
  ASSERT_EQ(run["rows"].size(), 1u);
  EXPECT_EQ(run["rows"][0]["variant"], "in-process");
  ASSERT_EQ(run["client_rows"].size(), 1u);
  const Json& rpc = run["client_rows"][0];
  EXPECT_EQ(rpc["variant"], "rpc");
  EXPECT_GT(rpc["p50_us"].get<double>(), 0);
  EXPECT_LE(rpc["p50_us"].get<double>(), rpc["p99_us"].get<double>());
}

TEST_F(ProbeIntegrationTest, BadInputIsRejectedNamingTheField) {
  RunResult depth = daemon_.Anectl({"probe", "sram", "--grid", "32x8x2"});
  EXPECT_EQ(depth.exit_code, 1);
  EXPECT_THAT(depth.err, HasSubstr("grid[0].depth must be 1"));
  RunResult big = daemon_.Anectl({"probe", "peak", "--grid", "99999x8x1"});
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_THAT(big.err, HasSubstr("grid[0].channels"));
  RunResult usage = daemon_.Anectl({"probe", "peak", "--grid", "12xfoo"});
  EXPECT_EQ(usage.exit_code, 2);
  RunResult missing = daemon_.Anectl({"probe", "show", "20000101-000000-0000"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no probe result"));
  RunResult qos = daemon_.Anectl({"probe", "qos"});
  EXPECT_EQ(qos.exit_code, 0) << qos.err;
  EXPECT_THAT(qos.out, HasSubstr("does not apply to the cpu backend"));
}

}  // namespace
}  // namespace anerd
