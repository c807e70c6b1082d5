// The dashboard (anerd --ui-listen, server/ui/) against the real daemon: its JSON endpoints carry
// a finished run's steps, evaluations and status exactly as the event log holds them; bad input
// gets 400/404 naming the problem; the event stream opens with the session list; a non-loopback
// bind without TLS and tokens is refused at start; tokens decide who else may look.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"
#include "tests/testing/token_daemon.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

Json GetJson(httplib::Client& http, const std::string& path, int want_status) {
  httplib::Result r = http.Get(path.c_str());
  if (!r) {
    ADD_FAILURE() << "GET " << path << ": " << httplib::to_string(r.error());
    return Json();
  }
  EXPECT_EQ(r->status, want_status) << path << ": " << r->body;
  Json j = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << path << ": " << r->body;
  return j;
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = testing::FreeLoopbackPort();
    ASSERT_GT(port_, 0);
    ASSERT_TRUE(daemon_
                    .Start({"--ui-listen", absl::StrCat("127.0.0.1:", port_), "--metrics-listen",
                            absl::StrCat("127.0.0.1:", metrics_port_)})
                    .ok())
        << daemon_.ReadLog();
  }

  TempDir dir_;
  DaemonProcess daemon_{dir_.path()};
  int port_ = 0;
  int metrics_port_ = testing::FreeLoopbackPort();
};

TEST_F(DashboardTest, JsonEndpointsCarryAFinishedRunsEventsAndStatus) {
  const std::string data = dir_.path() + "/stories.txt";
  ASSERT_EQ(daemon_.Anectl({"data", "synth", "--out", data, "--bytes", "100000"}).exit_code, 0);
  RunResult start =
      daemon_.Anectl({"train", "start", "--data", data, "--steps", "12", "--backend", "cpu",
                      "--eval-every", "4", "--val-fraction", "0.1", "--name", "dash", "--json"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const std::string id = Json::parse(start.out)["session"]["id"];
  RunResult watch = daemon_.Anectl({"--timeout", "120", "train", "watch", id, "--json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;

  httplib::Client http("127.0.0.1", port_);
  const Json sessions = GetJson(http, "/api/sessions", 200);
  ASSERT_EQ(sessions["sessions"].size(), 1u) << sessions;
  const Json& s = sessions["sessions"][0];
  EXPECT_EQ(s["id"], id);
  EXPECT_EQ(s["name"], "dash");
  EXPECT_EQ(s["state"], "completed");
  EXPECT_EQ(s["step"], 12);
  EXPECT_EQ(s["model"]["name"], "tiny");
  EXPECT_FALSE(s.contains("logdir")) << "no daemon paths on the page";

  const Json page = GetJson(http, "/api/sessions/" + id + "/events?from=0&max=5000", 200);
  EXPECT_EQ(page["session"], id);
  EXPECT_TRUE(page["ended"].get<bool>());
  int steps = 0, evals = 0;
  for (const Json& e : page["events"]) {
    if (e["kind"] == 0) {
      ++steps;
      EXPECT_EQ(e["step"]["step"], steps) << e;
      EXPECT_TRUE(e["step"]["loss"].is_number()) << e;
      EXPECT_TRUE(e["step"]["lr"].is_number()) << e;
      EXPECT_TRUE(e["step"]["kernel_ms"].is_number()) << "phase fields pass through: " << e;
    }
    if (e["kind"] == 4) ++evals;
  }
  EXPECT_EQ(steps, 12);
  EXPECT_EQ(evals, 3);
  EXPECT_EQ(page["next"], page["events"].back()["seq"].get<int64_t>() + 1);
  // The default is the tail: the last `max` events.
  const Json tail = GetJson(http, "/api/sessions/" + id + "/events?max=2", 200);
  ASSERT_EQ(tail["events"].size(), 2u);
  EXPECT_EQ(tail["events"][1]["seq"], page["events"].back()["seq"]);

  const Json info = GetJson(http, "/api/info", 200);
  EXPECT_FALSE(info["version"].get<std::string>().empty());
  EXPECT_EQ(info["default_backend"], "cpu");
  EXPECT_TRUE(info["ui"].contains("dropped_total")) << info;
  RunResult probe =
      daemon_.Anectl({"probe", "peak", "--grid", "64x16x4,64x16x8", "--backend", "cpu", "--json"});
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  const Json probes = GetJson(http, "/api/probes?limit=5", 200);
  ASSERT_EQ(probes["probes"].size(), 1u) << probes;
  EXPECT_EQ(probes["probes"][0]["id"], Json::parse(probe.out)["result_id"]);
  EXPECT_EQ(probes["probes"][0]["rows"].size(), 2u);
  EXPECT_TRUE(probes["probes"][0]["rows"][0]["tflops"].is_number());

  httplib::Result index = http.Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_TRUE(absl::StrContains(index->body, "id=\"loss-chart\"")) << "the embedded page";
  httplib::Result script = http.Get("/app.js");
  ASSERT_TRUE(script);
  EXPECT_TRUE(absl::StrContains(script->get_header_value("Content-Type"), "javascript"));

  // The dropped-frames counter is exported with the other metrics.
  httplib::Client metrics("127.0.0.1", metrics_port_);
  httplib::Result scrape = metrics.Get("/metrics");
  ASSERT_TRUE(scrape);
  EXPECT_TRUE(absl::StrContains(scrape->body, "anerd_ui_frames_dropped_total 0")) << scrape->body;
}

TEST_F(DashboardTest, BadRequestsGetErrorsNamingTheProblem) {
  httplib::Client http("127.0.0.1", port_);
  Json e = GetJson(http, "/api/sessions/nosuchsession/events", 404);
  EXPECT_TRUE(absl::StrContains(e["error"].get<std::string>(), "nosuchsession")) << e;
  e = GetJson(http, "/api/sessions/x/events?max=999999999", 400);
  EXPECT_TRUE(absl::StrContains(e["error"].get<std::string>(), "'max'")) << e;
  e = GetJson(http, "/api/sessions/x/events?max=-1", 400);
  EXPECT_TRUE(absl::StrContains(e["error"].get<std::string>(), "'max'")) << e;
  e = GetJson(http, "/api/probes?limit=lots", 400);
  EXPECT_TRUE(absl::StrContains(e["error"].get<std::string>(), "'limit'")) << e;
  e = GetJson(http, "/no/such/page", 404);
  EXPECT_TRUE(absl::StrContains(e["error"].get<std::string>(), "/no/such/page")) << e;
}

TEST_F(DashboardTest, TheStreamOpensWithTheSessionListAndStatus) {
  httplib::Client http("127.0.0.1", port_);
  std::string received;
  // Read until both first frames arrived, then stop the stream from our side.
  httplib::Result r = http.Get("/api/stream", [&](const char* data, size_t n) {
    received.append(data, n);
    return !(absl::StrContains(received, "event: sessions\n") &&
             absl::StrContains(received, "event: status\n"));
  });
  EXPECT_TRUE(absl::StrContains(received, "event: sessions\ndata: {\"sessions\":[]}\n\n"))
      << received;
  EXPECT_TRUE(absl::StrContains(received, "event: status\ndata: {")) << received;
}

TEST(DashboardBindTest, NonLoopbackWithoutTlsAndTokensIsRefusedAtStart) {
  TempDir dir;
  RunResult r = testing::RunProgram({testing::AnerdBinary(), "--socket", dir.path() + "/anerd.sock",
                                     "--state-dir", dir.path() + "/state", "--ui-listen",
                                     "0.0.0.0:" + std::to_string(testing::FreeLoopbackPort())});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "--ui-listen 0.0.0.0:")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "is not a loopback address")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "--tls-cert")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "--auth-tokens")) << r.err;
}

TEST(DashboardTokenTest, AdminTokensOpenThePageOthersAreRefused) {
  TempDir dir;
  testing::TokenDaemon daemon(dir.path());
  ASSERT_TRUE(daemon.AddToken("admin", /*admin=*/true).ok());
  ASSERT_TRUE(daemon.AddToken("alice").ok());
  const int port = testing::FreeLoopbackPort();
  ASSERT_TRUE(
      daemon.Start({"--insecure-loopback", "--ui-listen", absl::StrCat("127.0.0.1:", port)}).ok())
      << daemon.daemon().ReadLog();
  httplib::Client http("127.0.0.1", port);
  auto status = [&](const std::string& path, const std::string& token) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    httplib::Result r = http.Get(path.c_str(), headers);
    return r ? r->status : -1;
  };
  EXPECT_EQ(status("/api/sessions", daemon.token("admin")), 200);
  EXPECT_EQ(status("/api/sessions?token=" + daemon.token("admin"), ""), 200)
      << "the page's event stream passes the token as a parameter";
  EXPECT_EQ(status("/api/sessions", daemon.token("alice")), 403);
  EXPECT_EQ(status("/api/sessions", "not-a-token"), 401);
  // Without a token only the daemon's own user gets in (the peer's uid, as for metrics).
  EXPECT_EQ(status("/api/sessions", ""), 200);
  if (::geteuid() == 0) {
    const std::string fetch = absl::StrCat(
        "import urllib.request,urllib.error\ntry:\n urllib.request.urlopen('http://127.0.0.1:",
        port, "/api/sessions')\n print(200)\nexcept urllib.error.HTTPError as e:\n print(e.code)");
    testing::RunOptions nobody;
    nobody.run_as_uid = 65534;
    RunResult r = testing::RunProgram({"/usr/bin/python3", "-c", fetch}, nobody);
    EXPECT_EQ(r.out, "401\n") << r.err;
  }
}

}  // namespace
}  // namespace anerd
