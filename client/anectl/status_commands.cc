// anectl status, anectl version.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_format.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "common/version.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;
constexpr int kStatusSchemaVersion = 1;

std::string HealthName(grpc::health::v1::HealthCheckResponse::ServingStatus s) {
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(s);
}

Json InfoToJson(const v1::GetInfoResponse& info) {
  Json backends = Json::array();
  for (const v1::BackendInfo& b : info.backends()) {
    backends.push_back({{"name", b.name()},
                        {"version", b.version()},
                        {"device", b.device()},
                        {"default", b.is_default()},
                        {"compile_budget", b.compile_budget()},
                        {"compiles_used", b.compiles_used()}});
  }
  Json workers = Json::array();
  for (const v1::WorkerInfo& w : info.workers()) {
    workers.push_back({{"backend", w.backend()},
                       {"pid", w.pid()},
                       {"generation", w.generation()},
                       {"compiles_used", w.compiles_used()},
                       {"compile_budget", w.compile_budget()},
                       {"uptime_seconds", w.uptime_seconds()},
                       {"restarts", w.restarts()},
                       {"crashes", w.crashes()},
                       {"quarantined", w.quarantined()},
                       {"activity", w.activity()},
                       {"recent_restart_reasons",
                        Json(std::vector<std::string>(w.recent_restart_reasons().begin(),
                                                      w.recent_restart_reasons().end()))}});
  }
  Json out = {{"version", info.version()},
              {"build", info.build()},
              {"os", info.os()},
              {"pid", info.pid()},
              {"uptime_seconds", info.uptime_seconds()},
              {"state_dir", info.state_dir()},
              {"socket", info.socket()},
              {"default_backend", info.default_backend()},
              {"backends", backends},
              {"workers", workers}};
  if (info.has_cache()) {  // absent for remote callers without an admin token
    out["cache"] = {{"kernels_stored", info.cache().kernels_stored()},
                    {"entries", info.cache().entries()},
                    {"bytes", info.cache().bytes()},
                    {"capacity_bytes", info.cache().capacity_bytes()},
                    {"hits", info.cache().hits()},
                    {"misses", info.cache().misses()},
                    {"evictions", info.cache().evictions()}};
  }
  Json queues = Json::array();  // per backend and class (local and admin callers)
  for (const v1::DeviceQueueInfo& q : info.queues()) {
    for (const v1::QueueClassInfo& c : q.classes()) {
      queues.push_back({{"backend", q.backend()},
                        {"class", c.name()},
                        {"queued", c.queued()},
                        {"started", c.started()},
                        {"wait_seconds_sum", c.wait_seconds_sum()},
                        {"wait_seconds_max", c.wait_seconds_max()}});
    }
  }
  out["queues"] = std::move(queues);
  Json config = Json::object();  // the daemon's non-default flags (local and admin callers)
  for (const v1::ConfigEntry& e : info.config()) config[e.name()] = e.value();
  out["config"] = std::move(config);
  Json telemetry = Json::array();  // energy sources: "unavailable" with the reason, never 0
  for (const v1::TelemetrySource& t : info.telemetry()) {
    Json source = {{"name", t.name()}, {"available", t.available()}};
    if (!t.available()) source["unavailable"] = t.unavailable();
    if (!t.thermal_state().empty()) source["thermal_state"] = t.thermal_state();
    telemetry.push_back(std::move(source));
  }
  out["telemetry"] = std::move(telemetry);
  return out;
}

// A queue wait: "85us", "12.3ms", "1.50s".
std::string FormatWait(double seconds) {
  if (seconds < 1e-3) return absl::StrFormat("%.0fus", seconds * 1e6);
  if (seconds < 1) return absl::StrFormat("%.1fms", seconds * 1e3);
  return absl::StrFormat("%.2fs", seconds);
}

// One line per worker process, then the latest restart reasons (what a user needs to see when a
// worker was recycled or crashed).
void PrintWorkers(CommandContext& ctx, const v1::GetInfoResponse& info) {
  if (info.workers_size() == 0) return;
  std::cout << "\n  "
            << ctx.Bold(absl::StrFormat("%-9s %-8s %-5s %-9s %-9s %-9s %s", "WORKER", "PID", "GEN",
                                        "COMPILES", "UPTIME", "RESTARTS", "CRASHES"))
            << "\n";
  for (const v1::WorkerInfo& w : info.workers()) {
    const std::string budget = w.compile_budget() == 0
                                   ? absl::StrCat(w.compiles_used())
                                   : absl::StrCat(w.compiles_used(), "/", w.compile_budget());
    const std::string pid = w.pid() == 0 ? "-" : absl::StrCat(w.pid());
    std::string crashes = absl::StrCat(w.crashes());
    if (w.quarantined() > 0) absl::StrAppend(&crashes, " (", w.quarantined(), " quarantined)");
    std::cout << absl::StrFormat("  %-9s %-8s %-5d %-9s %-9s %-9d %s\n", w.backend(), pid,
                                 w.generation(), budget, FormatDuration(w.uptime_seconds()),
                                 w.restarts(), w.crashes() > 0 ? ctx.Red(crashes) : crashes);
    std::cout << "    " << ctx.Dim("now: " + w.activity()) << "\n";
    const int n = w.recent_restart_reasons_size();
    for (int i = std::max(0, n - 3); i < n; ++i) {
      std::cout << "    " << ctx.Dim(w.recent_restart_reasons(i)) << "\n";
    }
  }
}

// One line per backend and priority class: waiting now, started so far, mean and longest wait.
void PrintQueues(CommandContext& ctx, const v1::GetInfoResponse& info) {
  if (info.queues_size() == 0) return;
  std::cout << "\n  "
            << ctx.Bold(absl::StrFormat("%-9s %-12s %-7s %-9s %-10s %s", "QUEUE", "CLASS",
                                        "WAITING", "STARTED", "MEAN WAIT", "MAX WAIT"))
            << "\n";
  for (const v1::DeviceQueueInfo& q : info.queues()) {
    for (const v1::QueueClassInfo& c : q.classes()) {
      const double mean = c.started() == 0 ? 0 : c.wait_seconds_sum() / c.started();
      std::cout << absl::StrFormat("  %-9s %-12s %-7d %-9d %-10s %s\n", q.backend(), c.name(),
                                   c.queued(), c.started(), FormatWait(mean),
                                   FormatWait(c.wait_seconds_max()));
    }
  }
}

void PrintHuman(CommandContext& ctx, const std::string& endpoint, const std::string& health,
                const v1::GetInfoResponse& info) {
  std::cout << ctx.Bold("anerd " + info.version()) << "  " << ctx.Dim(info.build()) << "\n";
  const std::string health_text = health == "SERVING" ? ctx.Green(health) : ctx.Red(health);
  std::cout << absl::StrFormat("  %-10s %s\n", "health", health_text)
            << absl::StrFormat("  %-10s %s\n", "endpoint", endpoint)
            << absl::StrFormat("  %-10s %d\n", "pid", info.pid())
            << absl::StrFormat("  %-10s %s\n", "uptime", FormatDuration(info.uptime_seconds()))
            << absl::StrFormat("  %-10s %s\n", "os", info.os())
            << absl::StrFormat("  %-10s %s\n", "state dir", info.state_dir());
  std::cout << "\n  "
            << ctx.Bold(
                   absl::StrFormat("%-9s %-9s %-9s %s", "BACKEND", "VERSION", "COMPILES", "DEVICE"))
            << "\n";
  for (const v1::BackendInfo& b : info.backends()) {
    const std::string budget = b.compile_budget() == 0
                                   ? absl::StrCat(b.compiles_used())
                                   : absl::StrCat(b.compiles_used(), "/", b.compile_budget());
    std::cout << absl::StrFormat("  %-9s %-9s %-9s %s\n", b.name() + (b.is_default() ? "*" : ""),
                                 b.version(), budget, b.device());
  }
  if (info.backends_size() == 0) std::cout << "  (no backends)\n";
  PrintWorkers(ctx, info);
  PrintQueues(ctx, info);
  for (const v1::TelemetrySource& t : info.telemetry()) {
    std::cout << absl::StrFormat(
        "\n  %-10s %s: %s%s\n", "energy", t.name(),
        t.available() ? "available" : "unavailable (" + t.unavailable() + ")",
        t.thermal_state().empty() ? "" : ", thermal state " + t.thermal_state());
  }
  if (info.config_size() > 0) {
    std::cout << "\n  " << ctx.Bold("CONFIG (flags that differ from their defaults)") << "\n";
    for (const v1::ConfigEntry& e : info.config()) {
      std::cout << absl::StrFormat("  --%s=%s\n", e.name(), e.value());
    }
  }
  if (!info.has_cache()) {
    std::cout << absl::StrFormat("\n  %-10s daemon-wide counters are shown to admin tokens only\n",
                                 "kernels");
    return;
  }
  const v1::CacheStats& c = info.cache();
  std::cout << absl::StrFormat(
      "\n  %-10s %d stored, %d compiled in memory (%s of %s), %d hits, %d misses, %d evictions\n",
      "kernels", c.kernels_stored(), c.entries(), FormatBytes(c.bytes()),
      FormatBytes(c.capacity_bytes()), c.hits(), c.misses(), c.evictions());
}

}  // namespace

int RunStatus(CommandContext& ctx, const std::vector<std::string>& args) {
  ArgParser parser("anectl status [--json]",
                   "Shows whether anerd is reachable and healthy, its backends and counters.");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  absl::StatusOr<v1::GetInfoResponse> info = (*client)->GetInfo();
  if (!info.ok()) return ctx.Fail(info.status());
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> health = (*client)->Health();
  const std::string health_name = health.ok() ? HealthName(*health) : "UNKNOWN";
  const std::string endpoint = (*client)->options().endpoint.GrpcTarget();
  if (ctx.json()) {
    Json out = {{"schema_version", kStatusSchemaVersion},
                {"endpoint", endpoint},
                {"health", health_name},
                {"daemon", InfoToJson(*info)}};
    std::cout << out.dump(2) << "\n";
  } else {
    PrintHuman(ctx, endpoint, health_name, *info);
  }
  return kExitOk;
}

int RunVersion(CommandContext& ctx, const std::vector<std::string>& args) {
  ArgParser parser("anectl version [--json]",
                   "Prints anectl's version and, when reachable, the daemon's.");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  std::string daemon_version;
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (client.ok()) {
    absl::StatusOr<v1::GetInfoResponse> info = (*client)->GetInfo();
    if (info.ok()) daemon_version = info->version();
  }
  if (ctx.json()) {
    Json out = {{"schema_version", 1}, {"anectl", kVersion}};
    out["anerd"] = daemon_version.empty() ? Json(nullptr) : Json(daemon_version);
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "anectl " << kVersion << " (" << kBuildType << ", " << kCompiler << ")\n"
              << "anerd  " << (daemon_version.empty() ? "not reachable" : daemon_version) << "\n";
  }
  return kExitOk;
}

}  // namespace anerd::anectl
