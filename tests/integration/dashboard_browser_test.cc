// The dashboard in a real headless Chromium (issue 21 item 5): anerd serves the page on
// --ui-listen while a small training session runs; Chromium, driven through chromedriver's
// WebDriver protocol, loads it; the loss curve of the running session grows between two reads
// (the page exposes its plotted points in data-points); the step breakdown shows the event's
// phase fields; a screenshot is saved in the build tree as a test artifact and its path printed.
// Skips only when Chromium or chromedriver is absent (scripts/install-deps.sh installs both).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::BackgroundProcess;
using testing::DaemonProcess;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

std::string Chromium() {
  if (const char* env = ::getenv("ANERD_CHROMIUM"); env != nullptr && *env) return env;
  return testing::FindExecutable({"/usr/bin/chromium", "chromium", "chromium-browser",
                                  "/Applications/Chromium.app/Contents/MacOS/Chromium",
                                  "google-chrome"});
}

std::string ChromeDriver() {
  if (const char* env = ::getenv("ANERD_CHROMEDRIVER"); env != nullptr && *env) return env;
  return testing::FindExecutable({"/usr/bin/chromedriver", "chromedriver"});
}

// A minimal WebDriver client (W3C protocol over chromedriver's HTTP port).
class WebDriver {
 public:
  explicit WebDriver(int port) : http_("127.0.0.1", port) {
    http_.set_read_timeout(60);
    http_.set_connection_timeout(5);
  }

  bool Ready() {
    httplib::Result r = http_.Get("/status");
    if (!r || r->status != 200) return false;
    const Json j = Json::parse(r->body, nullptr, false);
    return !j.is_discarded() && j["value"].value("ready", false);
  }

  // POST/GET/DELETE `path` ("" body = GET); the "value" of the answer, or an error.
  absl::StatusOr<Json> Call(const std::string& method, const std::string& path,
                            const Json& body = Json()) {
    httplib::Result r = method == "GET" ? http_.Get(path.c_str())
                        : method == "DELETE"
                            ? http_.Delete(path.c_str())
                            : http_.Post(path.c_str(), body.dump(), "application/json");
    if (!r)
      return absl::UnavailableError(method + " " + path + ": " + httplib::to_string(r.error()));
    const Json j = Json::parse(r->body, nullptr, false);
    if (r->status != 200 || j.is_discarded()) {
      return absl::InternalError(
          absl::StrCat(method, " ", path, " -> ", r->status, ": ", r->body.substr(0, 2000)));
    }
    return j["value"];
  }

 private:
  httplib::Client http_;
};

// Calls `probe` until it returns a value for which `done` holds or `wait` passes; the last value.
template <typename T, typename Probe, typename Done>
T WaitFor(Probe probe, Done done, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  T value = probe();
  while (!done(value) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    value = probe();
  }
  return value;
}

TEST(DashboardBrowserTest, ARunningSessionsCurveGrowsInHeadlessChromium) {
  const std::string chromium = Chromium(), chromedriver = ChromeDriver();
  if (chromium.empty() || chromedriver.empty()) {
    GTEST_SKIP() << "Chromium or chromedriver not installed (Debian: chromium chromium-driver; "
                    "Homebrew: --cask chromium chromedriver; or set ANERD_CHROMIUM and "
                    "ANERD_CHROMEDRIVER)";
  }
  TempDir dir;
  DaemonProcess daemon(dir.path());
  const int ui_port = testing::FreeLoopbackPort();
  ASSERT_TRUE(daemon.Start({"--ui-listen", absl::StrCat("127.0.0.1:", ui_port)}).ok())
      << daemon.ReadLog();
  const std::string data = dir.path() + "/stories.txt";
  ASSERT_EQ(daemon.Anectl({"data", "synth", "--out", data, "--bytes", "100000"}).exit_code, 0);
  // Enough steps to run well past the test (stopped at the end); evaluations for the val curve.
  RunResult start =
      daemon.Anectl({"train", "start", "--data", data, "--steps", "100000", "--backend", "cpu",
                     "--eval-every", "25", "--val-fraction", "0.1", "--name", "browser", "--json"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const std::string id = Json::parse(start.out)["session"]["id"];
  // A stored probe result for the probe charts (a small grid: about a second on the CPU).
  ASSERT_EQ(
      daemon.Anectl({"probe", "peak", "--grid", "64x16x4,64x16x8", "--backend", "cpu"}).exit_code,
      0);

  BackgroundProcess driver;
  const int driver_port = testing::FreeLoopbackPort();
  ASSERT_TRUE(driver
                  .Start({chromedriver, absl::StrCat("--port=", driver_port)},
                         dir.path() + "/chromedriver.log")
                  .ok());
  WebDriver wd(driver_port);
  ASSERT_TRUE(
      WaitFor<bool>([&] { return wd.Ready(); }, [](bool r) { return r; }, absl::Seconds(20)))
      << "chromedriver did not become ready: "
      << testing::ReadFile(dir.path() + "/chromedriver.log");

  // CI runs as root: Chromium needs --no-sandbox there; its own profile directory per run.
  const Json caps = {{"capabilities",
                      {{"alwaysMatch",
                        {{"browserName", "chrome"},
                         {"goog:chromeOptions",
                          {{"binary", chromium},
                           {"args",
                            {"--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1400,1200",
                             "--user-data-dir=" + dir.path() + "/chromium-profile"}}}}}}}}};
  absl::StatusOr<Json> session = wd.Call("POST", "/session", caps);
  ASSERT_TRUE(session.ok()) << session.status();
  const std::string sid = (*session)["sessionId"];
  const std::string base = "/session/" + sid;
  const std::string url = absl::StrCat("http://127.0.0.1:", ui_port, "/");
  ASSERT_TRUE(wd.Call("POST", base + "/url", {{"url", url}}).ok());

  auto script = [&](const std::string& js) -> Json {
    absl::StatusOr<Json> v =
        wd.Call("POST", base + "/execute/sync", {{"script", js}, {"args", Json::array()}});
    return v.ok() ? *v : Json();
  };
  auto points = [&] {
    const Json v = script(
        "const e = document.getElementById('loss-chart');"
        "return e ? Number(e.getAttribute('data-points')) : -1;");
    return v.is_number() ? v.get<int64_t>() : int64_t{-1};
  };
  const int64_t first = WaitFor<int64_t>(
      points, [](int64_t n) { return n > 0; }, absl::Seconds(30));
  ASSERT_GT(first, 0) << "the page plotted no loss points; stream: "
                      << script("return document.getElementById('stream').textContent;");
  const int64_t second = WaitFor<int64_t>(
      points, [&](int64_t n) { return n > first; }, absl::Seconds(30));
  EXPECT_GT(second, first) << "the running session's curve did not grow";

  EXPECT_EQ(script("return document.querySelector('#sessions tbody tr').getAttribute('data-id');"),
            id);
  EXPECT_TRUE(absl::StrContains(
      script("return document.getElementById('stream').textContent;").get<std::string>(), "live"));
  const std::string phases =
      script("return document.getElementById('breakdown-chart').getAttribute('data-phases');")
          .get<std::string>();
  EXPECT_TRUE(absl::StrContains(phases, "kernel_ms")) << phases;
  EXPECT_TRUE(absl::StrContains(phases, "optim_ms")) << phases;
  EXPECT_EQ(script("return document.getElementById('dropped').getAttribute('data-dropped');"), "0");
  // The validation curve fills once the first evaluation ran (every 25 steps).
  const Json val = WaitFor<Json>(
      [&] {
        return script(
            "return document.getElementById('loss-chart').getAttribute('data-val-points');");
      },
      [](const Json& v) { return v.is_string() && v != "0"; }, absl::Seconds(30));
  EXPECT_NE(val, "0") << "no validation point plotted";

  EXPECT_EQ(script("return document.querySelectorAll('#probes svg rect').length;"), 2)
      << "one bar per row of the stored peak probe";

  absl::StatusOr<Json> shot = wd.Call("GET", base + "/screenshot");
  ASSERT_TRUE(shot.ok()) << shot.status();
  std::string png;
  ASSERT_TRUE(absl::Base64Unescape(shot->get<std::string>(), &png));
  EXPECT_EQ(png.substr(1, 3), "PNG");
  const std::string artifacts = std::string(ANERD_BINARY_DIR) + "/test-artifacts";
  std::filesystem::create_directories(artifacts);
  const std::string path = artifacts + "/dashboard.png";
  std::ofstream(path, std::ios::binary) << png;
  std::cout << "dashboard screenshot: " << path << std::endl;
  RecordProperty("screenshot", path);

  EXPECT_TRUE(wd.Call("DELETE", base).ok());
  driver.Stop();
  EXPECT_EQ(daemon.Anectl({"train", "stop", id}).exit_code, 0);
}

}  // namespace
}  // namespace anerd
