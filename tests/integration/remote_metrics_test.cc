// The metrics endpoint of a real daemon: after compiling, running and training, a plain-socket
// HTTP scrape returns the Prometheus text format with the expected names, labels and values; a
// non-loopback --metrics-listen is refused at start unless allowed with tokens, and then every
// scrape needs an admin token; on loopback only the daemon's own user scrapes without one. Also:
// health turns NOT_SERVING as soon as the daemon starts draining (a watcher sees it before the
// server goes away).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_harness.h"

namespace anerd {
namespace {

using testing::DaemonProcess;
using testing::FreeLoopbackPort;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunResult;
using testing::TempDir;
using Json = nlohmann::json;

const std::string kConvMil = std::string(ANERD_SOURCE_DIR) + "/examples/kernels/conv1x1/conv.mil";

// GET `path` over a plain TCP socket (with "Authorization: Bearer TOKEN" when `token` is set);
// returns the whole response (head and body).
std::string HttpGet(int port, const std::string& path, const std::string& token = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" +
      (token.empty() ? std::string() : "Authorization: Bearer " + token + "\r\n") + "\r\n";
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  ::close(fd);
  return response;
}

// The text exposition format: "name{labels} value" sample lines keyed by everything before the
// value, and "# TYPE name type" lines.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;

  // The value of the series; NaN when absent.
  double Get(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? NAN : it->second;
  }
  // Some series of `name` whose labels contain every one of `labels` ("k=\"v\"" strings).
  bool Find(const std::string& name, const std::vector<std::string>& labels, double* value) const {
    for (const auto& [series, v] : samples) {
      if (!absl::StartsWith(series, name + "{")) continue;
      bool all = true;
      for (const std::string& l : labels) all = all && absl::StrContains(series, l);
      if (all) {
        *value = v;
        return true;
      }
    }
    return false;
  }
};

Exposition Parse(const std::string& body) {
  Exposition e;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      if (parts.size() == 4) e.types[parts[2]] = parts[3];
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &value)) {
      ADD_FAILURE() << "unparsable sample line: " << line;
      continue;
    }
    e.samples[std::string(line.substr(0, space))] = value;
  }
  return e;
}

TEST(RemoteMetricsTest, ScrapeAfterWorkHasRpcCompileCacheAndSessionSeries) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  const int port = FreeLoopbackPort();
  ASSERT_TRUE(daemon.Start({"--metrics-listen=127.0.0.1:" + std::to_string(port)}).ok())
      << daemon.ReadLog();

  RunResult compile = daemon.Anectl({"kernel", "compile", kConvMil, "--json"});
  ASSERT_EQ(compile.exit_code, 0) << compile.err;
  const std::string id = Json::parse(compile.out)["kernel"]["id"];
  ASSERT_EQ(daemon.Anectl({"kernel", "compile", kConvMil}).exit_code, 0);  // a cache hit
  RunResult run = daemon.Anectl({"kernel", "run", id, "--random", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(daemon.Anectl({"kernel", "show", std::string(64, 'f')}).exit_code, 0);

  const std::string data = dir.path() + "/stories.txt";
  ASSERT_EQ(daemon.Anectl({"data", "synth", "--out", data, "--bytes", "100000"}).exit_code, 0);
  RunResult start = daemon.Anectl({"train", "start", "--data", data, "--steps", "4", "--json"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const std::string session = Json::parse(start.out)["session"]["id"];
  RunResult watch = daemon.Anectl({"--timeout", "120", "train", "watch", session, "--json"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;

  const std::string response = HttpGet(port, "/metrics");
  ASSERT_THAT(response, HasSubstr("HTTP/1.1 200 OK\r\n"));
  ASSERT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  const Exposition m = Parse(response.substr(response.find("\r\n\r\n") + 4));

  EXPECT_EQ(m.types.at("anerd_rpc_requests_total"), "counter");
  EXPECT_EQ(m.types.at("anerd_rpc_latency_seconds"), "histogram");
  EXPECT_GE(m.Get(R"(anerd_rpc_requests_total{code="OK",method="/anerd.v1.Anerd/CompileKernel"})"),
            2);
  EXPECT_GE(m.Get(R"(anerd_rpc_requests_total{code="OK",method="/anerd.v1.Anerd/EvalKernel"})"), 1);
  EXPECT_GE(
      m.Get(R"(anerd_rpc_requests_total{code="NOT_FOUND",method="/anerd.v1.Anerd/GetKernel"})"), 1);
  EXPECT_GE(
      m.Get(R"(anerd_rpc_latency_seconds_count{code="OK",method="/anerd.v1.Anerd/EvalKernel"})"),
      1);
  EXPECT_EQ(m.Get(R"(anerd_kernel_compiles_total{backend="cpu"})"), 1) << "the second was a hit";
  EXPECT_EQ(m.Get(R"(anerd_kernel_compile_seconds_count{backend="cpu"})"), 1);
  EXPECT_GT(m.Get(R"(anerd_kernel_compile_seconds_sum{backend="cpu"})"), 0);
  EXPECT_GE(m.Get(R"(anerd_kernel_eval_seconds_count{backend="cpu"})"), 1);
  EXPECT_GE(m.Get("anerd_cache_hits_total"), 1);
  EXPECT_GE(m.Get("anerd_cache_misses_total"), 0);
  EXPECT_EQ(m.Get("anerd_kernels_stored"), 1);
  EXPECT_EQ(m.Get(R"(anerd_backend_compile_budget{backend="cpu"})"), 0);
  EXPECT_GE(m.Get(R"(anerd_backend_compiles_used{backend="cpu"})"), 1);
  EXPECT_GT(m.Get("anerd_uptime_seconds"), 0);

  const std::string s = "session=\"" + session + "\"";
  double loss = NAN, step = NAN, step_s = NAN, tokens = NAN, kernel_s = NAN, active = NAN;
  ASSERT_TRUE(m.Find("anerd_session_loss", {s}, &loss)) << response;
  EXPECT_TRUE(std::isfinite(loss) && loss > 0) << loss;
  ASSERT_TRUE(m.Find("anerd_session_step", {s}, &step));
  EXPECT_EQ(step, 4);
  ASSERT_TRUE(m.Find("anerd_session_step_seconds", {s}, &step_s));
  EXPECT_GT(step_s, 0);
  ASSERT_TRUE(m.Find("anerd_session_tokens_per_second", {s}, &tokens));
  EXPECT_GT(tokens, 0);
  ASSERT_TRUE(m.Find("anerd_session_phase_seconds", {s, "phase=\"kernel\""}, &kernel_s));
  EXPECT_GT(kernel_s, 0);
  EXPECT_LE(kernel_s, step_s);
  ASSERT_TRUE(m.Find("anerd_session_active", {s}, &active));
  EXPECT_EQ(active, 0) << "the run completed";

  EXPECT_THAT(HttpGet(port, "/other"), HasSubstr("HTTP/1.1 404"));
  // The scrape itself is not an RPC; counters only grow between scrapes.
  const Exposition again = Parse(HttpGet(port, "/metrics").substr(response.find("\r\n\r\n") + 4));
  EXPECT_GE(again.Get(R"(anerd_rpc_requests_total{code="OK",method="/anerd.v1.Anerd/EvalKernel"})"),
            m.Get(R"(anerd_rpc_requests_total{code="OK",method="/anerd.v1.Anerd/EvalKernel"})"));
}

TEST(RemoteMetricsTest, NonLoopbackMetricsAddressIsRefusedUnlessAllowed) {
  TempDir dir;
  RunResult r =
      testing::RunProgram({testing::AnerdBinary(), "--socket=" + dir.path() + "/x.sock",
                           "--state-dir=" + dir.path() + "/state",
                           "--metrics-listen=0.0.0.0:" + std::to_string(FreeLoopbackPort())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--metrics-allow-remote"));
  RunResult bad =
      testing::RunProgram({testing::AnerdBinary(), "--socket=" + dir.path() + "/x.sock",
                           "--state-dir=" + dir.path() + "/state", "--metrics-listen=nonsense"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("HOST:PORT"));
  RunResult open = testing::RunProgram(
      {testing::AnerdBinary(), "--socket=" + dir.path() + "/x.sock",
       "--state-dir=" + dir.path() + "/state",
       "--metrics-listen=0.0.0.0:" + std::to_string(FreeLoopbackPort()), "--metrics-allow-remote"});
  EXPECT_EQ(open.exit_code, 1);
  EXPECT_THAT(open.err, HasSubstr("--metrics-allow-remote needs --auth-tokens"));

  // Beyond loopback every scrape needs an admin token, even from the daemon's own user.
  DaemonProcess daemon(dir.path());
  const std::string tokens = dir.path() + "/tokens";
  RunResult admin = daemon.Anectl({"token", "create", "ops", "--admin", "--file", tokens});
  ASSERT_EQ(admin.exit_code, 0) << admin.err;
  RunResult plain = daemon.Anectl({"token", "create", "alice", "--file", tokens});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const int port = FreeLoopbackPort();
  ASSERT_TRUE(daemon
                  .Start({"--metrics-listen=0.0.0.0:" + std::to_string(port),
                          "--metrics-allow-remote", "--auth-tokens=" + tokens})
                  .ok())
      << daemon.ReadLog();
  const std::string none = HttpGet(port, "/metrics");
  EXPECT_THAT(none, HasSubstr("HTTP/1.1 401"));
  EXPECT_THAT(none, HasSubstr("WWW-Authenticate: Bearer"));
  EXPECT_THAT(none, Not(HasSubstr("anerd_")));
  EXPECT_THAT(HttpGet(port, "/metrics", std::string(64, 'x')), HasSubstr("HTTP/1.1 401"));
  const std::string ordinary = HttpGet(port, "/metrics", plain.out.substr(0, 64));
  EXPECT_THAT(ordinary, HasSubstr("HTTP/1.1 403"));
  EXPECT_THAT(ordinary, Not(HasSubstr("anerd_")));
  EXPECT_THAT(HttpGet(port, "/metrics", admin.out.substr(0, 64)), HasSubstr("anerd_build_info"));
}

TEST(RemoteMetricsTest, LoopbackScrapesNeedAnAdminTokenUnlessFromTheDaemonsOwnUser) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  const std::string tokens = dir.path() + "/tokens";
  RunResult admin = daemon.Anectl({"token", "create", "ops", "--admin", "--file", tokens});
  ASSERT_EQ(admin.exit_code, 0) << admin.err;
  RunResult plain = daemon.Anectl({"token", "create", "alice", "--file", tokens});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const int port = FreeLoopbackPort();
  ASSERT_TRUE(
      daemon
          .Start({"--metrics-listen=127.0.0.1:" + std::to_string(port), "--auth-tokens=" + tokens})
          .ok())
      << daemon.ReadLog();
  // This test runs as the daemon's user: its socket's uid (from /proc/net/tcp) lets it in.
  EXPECT_THAT(HttpGet(port, "/metrics"), HasSubstr("anerd_build_info"));
  EXPECT_THAT(HttpGet(port, "/metrics", plain.out.substr(0, 64)), HasSubstr("HTTP/1.1 403"));
  EXPECT_THAT(HttpGet(port, "/metrics", std::string(64, 'x')), HasSubstr("HTTP/1.1 401"));
  EXPECT_THAT(HttpGet(port, "/metrics", admin.out.substr(0, 64)), HasSubstr("anerd_build_info"));
}

TEST(RemoteMetricsTest, HealthTurnsNotServingWhenDrainingStarts) {
  TempDir dir;
  DaemonProcess daemon(dir.path());
  ASSERT_TRUE(daemon.Start({"--shutdown-grace-ms=3000"}).ok()) << daemon.ReadLog();
  auto channel = grpc::CreateChannel(daemon.host(), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = health->Watch(&context, grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  ASSERT_EQ(::kill(daemon.pid(), SIGTERM), 0);
  ASSERT_TRUE(reader->Read(&response)) << "the watcher hears about draining before the end";
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  context.TryCancel();
  (void)reader->Finish();
  // Signal 0 only waits: a second SIGTERM during shutdown lands on a thread that does not block it
  // (OpenBLAS starts its pool before main) and kills the daemon outright.
  absl::StatusOr<int> exit_code = daemon.Stop(0);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
}

}  // namespace
}  // namespace anerd
