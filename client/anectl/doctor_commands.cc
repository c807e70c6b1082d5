// anectl doctor: checks the machine and the daemon end to end and says what to do about each
// failure. Device facts come from the daemon (GetInfo: backends with device facts, and the backends
// it left out with the reason); the canary is a tiny MIL program compiled and evaluated through
// the daemon on every backend and compared with the same program on the CPU backend.
// Status per check: "pass", "fail" or "unavailable" (the ANE off macOS: not a failure).
// --probe also runs the ANE capability probe in the daemon (ProbeAneRules) and prints, per rule,
// the table's value, the measured one, whether they agree and the device's evidence; on ane-sim
// the rows are labelled "simulated". Each rule in force shows its source: "table", or the probe
// ("probed at <time> on <chip>, <OS build>") whose measurement replaced the table's value.
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "common/fp16.h"
#include "common/mil/ane_rules.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;

struct Check {
  std::string name;
  std::string status;  // "pass", "fail", "unavailable"
  std::string detail;
  std::string hint;  // what to do when it is not "pass"
};

// 64 channels (the ANE's minimum, docs/ANE_NOTES.md §1.8), weight-free, one input and one output.
constexpr char kCanaryMil[] = R"(program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 64]> x) {
        tensor<fp16, [1, 64, 1, 64]> a = mul(x = x, y = fp16(0.5))[name = string("a")];
        tensor<fp16, [1, 64, 1, 64]> b = add(x = a, y = fp16(0.25))[name = string("b")];
        tensor<fp16, [1, 64, 1, 64]> y = softmax(x = b, axis = int32(1))[name = string("y")];
    } -> (y);
}
)";

v1::Tensor CanaryInput() {
  v1::Tensor t;
  t.set_name("x");
  t.set_dtype("fp16");
  for (int64_t d : {1, 64, 1, 64}) t.add_shape(d);
  std::string bytes(64 * 64 * 2, '\0');
  for (int i = 0; i < 64 * 64; ++i) {
    const uint16_t h = FloatToHalf(std::sin(static_cast<float>(i) * 0.37f) * 2.0f);
    std::memcpy(&bytes[i * 2], &h, 2);
  }
  t.set_data(bytes);
  return t;
}

// Compiles and evaluates the canary on `backend`; the output as floats.
absl::StatusOr<std::vector<float>> RunCanary(client::AnerdClient& client,
                                             const std::string& backend) {
  v1::CompileKernelHeader header;
  header.set_name("doctor-canary");
  header.set_mil_text(kCanaryMil);
  header.mutable_options()->set_backend(backend);
  absl::StatusOr<v1::CompileKernelResponse> compiled = client.CompileKernel(header, {});
  if (!compiled.ok()) return compiled.status();
  v1::EvalKernelRequest request;
  request.set_kernel_id(compiled->kernel().id());
  *request.add_inputs() = CanaryInput();
  absl::StatusOr<v1::EvalKernelResponse> evaluated = client.EvalKernel(request);
  // The canary is doctor's own: it leaves no kernel behind in the user's list (one that was
  // already stored, a cache hit, is not ours to delete).
  if (!compiled->cache_hit()) (void)client.DeleteKernel(compiled->kernel().id());
  if (!evaluated.ok()) return evaluated.status();
  if (evaluated->outputs_size() != 1) return absl::InternalError("canary: expected one output");
  const std::string& data = evaluated->outputs(0).data();
  std::vector<float> out(data.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, &data[i * 2], 2);
    out[i] = HalfToFloat(h);
  }
  return out;
}

Check CanaryCheck(client::AnerdClient& client, const std::string& backend,
                  const std::vector<float>& reference) {
  Check c{"canary " + backend, "pass", "", ""};
  absl::StatusOr<std::vector<float>> got = RunCanary(client, backend);
  if (!got.ok()) {
    return {c.name, "fail", std::string(got.status().message()),
            "check the daemon log; `anectl kernel compile` with --backend " + backend};
  }
  if (got->size() != reference.size()) return {c.name, "fail", "output size differs", ""};
  for (size_t i = 0; i < reference.size(); ++i) {
    if (std::fabs((*got)[i] - reference[i]) > 2e-3f + 1e-2f * std::fabs(reference[i])) {
      return {c.name, "fail",
              absl::StrFormat("element %d: %g vs CPU %g", i, (*got)[i], reference[i]),
              "the device computes differently from the CPU reference: report the chip and OS"};
    }
  }
  c.detail =
      absl::StrCat("compile + evaluate match the CPU backend (", reference.size(), " values)");
  return c;
}

std::string Fact(const v1::BackendInfo& b, const std::string& key) {
  auto it = b.device_facts().find(key);
  return it == b.device_facts().end() || it->second.empty() ? "unknown" : it->second;
}

void DeviceChecks(client::AnerdClient& client, const v1::GetInfoResponse& info,
                  std::vector<Check>& checks) {
  const v1::BackendInfo* ane = nullptr;
  for (const v1::BackendInfo& b : info.backends()) {
    if (b.name() == "ane") ane = &b;
  }
  if (ane != nullptr) {
    checks.push_back({"chip", "pass", Fact(*ane, "chip"), ""});
    checks.push_back({"ane subtype", "pass", Fact(*ane, "ane_subtype"), ""});
    checks.push_back({"framework", "pass",
                      absl::StrCat(Fact(*ane, "framework"), "; classes: ", Fact(*ane, "classes")),
                      ""});
  } else {
    std::string why = "the daemon offers no 'ane' backend";
    for (const v1::UnavailableBackend& u : info.unavailable_backends()) {
      if (u.name() == "ane") why = u.reason();
    }
    checks.push_back({"ane", "unavailable", why,
                      "on a Mac: check the daemon log; elsewhere use --backend ane-sim or cpu"});
  }
  for (const v1::TelemetrySource& t : info.telemetry()) {
    checks.push_back({"energy " + t.name(), t.available() ? "pass" : "unavailable",
                      t.available() ? "readable" : t.unavailable(),
                      t.available()
                          ? ""
                          : "step and probe energy fields stay absent (never 0); on Linux "
                            "RAPL needs /sys/class/powercap (root-only since 5.10)"});
  }
  absl::StatusOr<std::vector<float>> reference = RunCanary(client, "cpu");
  if (!reference.ok()) {
    checks.push_back({"canary cpu", "fail", std::string(reference.status().message()),
                      "the CPU backend must work: check the daemon log"});
    return;
  }
  checks.push_back({"canary cpu", "pass", "reference computed", ""});
  for (const v1::BackendInfo& b : info.backends()) {
    if (b.name() == "cpu") continue;
    checks.push_back(CanaryCheck(client, b.name(), *reference));
  }
  for (const v1::BackendInfo& b : info.backends()) {
    const bool spent = b.compile_budget() > 0 && b.compiles_used() >= b.compile_budget();
    checks.push_back(
        {"compile budget " + b.name(), spent ? "fail" : "pass",
         b.compile_budget() == 0
             ? absl::StrCat(b.compiles_used(), " used, unlimited")
             : absl::StrCat(b.compiles_used(), " of ", b.compile_budget(), " used"),
         spent ? "restart the daemon (`anectl service restart`) to get a fresh budget" : ""});
  }
}

// The ANE rules in force per ANE backend, from the backend's device facts (ane_rules.h
// EncodeAneRuleFact), as {"<backend>": {"profile": .., "rules": [{id, value, ...}]}}.
Json RulesInForce(const v1::GetInfoResponse& info, std::vector<Check>& checks) {
  Json out = Json::object();
  for (const v1::BackendInfo& b : info.backends()) {
    Json rules = Json::array();
    for (const auto& [key, value] : b.device_facts()) {
      mil::AneRuleRow r;
      if (!mil::DecodeAneRuleFact(key, value, &r)) continue;
      rules.push_back({{"id", r.id},
                       {"value", r.value},
                       {"alternative", r.alternative},
                       {"sources", r.sources},
                       {"alternative_sources", r.alternative_sources},
                       {"applies_to", r.applies_to},
                       {"stage", std::string(mil::RuleStageName(r.stage))},
                       {"lowering", r.lowering},
                       {"description", r.description},
                       {"source", r.origin}});
    }
    if (rules.empty()) continue;
    std::sort(rules.begin(), rules.end(),
              [](const Json& a, const Json& c) { return a["id"] < c["id"]; });
    const std::string profile = Fact(b, "ane_rules_profile");
    int measured = 0;
    for (const Json& r : rules) measured += r["source"] != "table";
    checks.push_back({"ane rules " + b.name(), "pass",
                      absl::StrCat(rules.size(), " rules, profile ", profile, ", ", measured,
                                   " measured by a probe (anectl doctor --json lists each with "
                                   "its sources)"),
                      ""});
    out[b.name()] = {{"profile", profile}, {"rules", rules}};
  }
  return out;
}

std::vector<Check> RunChecks(CommandContext& ctx, Json* rules_in_force) {
  std::vector<Check> checks;
  struct utsname u;
  checks.push_back(
      {"os", "pass",
       uname(&u) == 0 ? absl::StrCat(u.sysname, " ", u.release, " ", u.machine) : "unknown", ""});
  absl::StatusOr<Endpoint> endpoint = ctx.ResolvedEndpoint();
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!endpoint.ok() || !client.ok()) {
    checks.push_back({"socket", "fail",
                      std::string((endpoint.ok() ? client.status() : endpoint.status()).message()),
                      "fix --host / ANERD_HOST"});
    return checks;
  }
  absl::StatusOr<v1::GetInfoResponse> info = (*client)->GetInfo();
  if (!info.ok()) {
    checks.push_back({"socket", "fail", std::string(info.status().message()),
                      "start the daemon: `anectl service start` (or run `anerd`)"});
    return checks;
  }
  checks.push_back({"socket", "pass", endpoint->GrpcTarget(), ""});
  auto health = (*client)->Health();
  const bool serving = health.ok() && *health == grpc::health::v1::HealthCheckResponse::SERVING;
  checks.push_back({"service", serving ? "pass" : "fail",
                    absl::StrCat("anerd ", info->version(), ", pid ", info->pid(),
                                 serving ? ", serving" : ", not serving"),
                    serving ? "" : "the daemon is starting or shutting down: retry shortly"});
  if (info->state_findings().empty()) {
    checks.push_back({"state dir", "pass", info->state_dir(), ""});
  }
  for (const std::string& finding : info->state_findings()) {
    checks.push_back({"state dir", "warn", finding,
                      "the daemon runs on a rebuilt registry: check that nothing you need is "
                      "missing, then delete the moved-aside file"});
  }
  *rules_in_force = RulesInForce(*info, checks);
  DeviceChecks(**client, *info, checks);
  return checks;
}

// The probe's rows as JSON (doctor --probe --json: "rule_probe").
Json ProbeJson(const v1::ProbeAneRulesResponse& p) {
  Json rows = Json::array();
  for (const v1::AneRuleMeasurement& m : p.rows()) {
    rows.push_back({{"rule", m.rule()},
                    {"table_value", m.table_value()},
                    {"measured_value", m.measured_value()},
                    {"agrees", m.agrees()},
                    {"evidence", m.evidence()},
                    {"label", p.simulated() ? "simulated" : "measured"}});
  }
  Json applied = Json::object();
  for (const auto& [id, value] : p.rules_applied()) applied[id] = value;
  return {{"backend", p.backend()},
          {"chip", p.chip()},
          {"os_build", p.os_build()},
          {"simulated", p.simulated()},
          {"probed_unix_ms", p.probed_unix_ms()},
          {"origin", p.origin()},
          {"rows", rows},
          {"rules_applied", applied}};
}

void PrintProbe(CommandContext& ctx, const v1::ProbeAneRulesResponse& p) {
  std::cout << "\nANE rule probe on " << p.backend() << " (" << p.chip() << ", " << p.os_build()
            << (p.simulated() ? "; simulated device" : "") << "):\n";
  std::cout << absl::StrFormat("  %-24s %-14s %-18s %-9s %s\n", "rule", "table", "measured",
                               "result", "evidence");
  for (const v1::AneRuleMeasurement& m : p.rows()) {
    const std::string result = m.agrees() ? "agrees" : "differs";
    std::string measured = m.measured_value();
    if (p.simulated()) measured += " (simulated)";
    std::cout << absl::StrFormat("  %-24s %-14s %-18s %-9s %s\n", m.rule(), m.table_value(),
                                 measured, m.agrees() ? ctx.Green(result) : ctx.Red(result),
                                 m.evidence().substr(0, 100));
  }
  std::cout << "  " << p.rules_applied_size() << " measured rules now in force (" << p.origin()
            << ")\n";
}

}  // namespace

int RunDoctor(CommandContext& ctx, const std::vector<std::string>& args) {
  ArgParser parser("anectl doctor [--probe [--backend NAME]] [--json]",
                   "Checks the OS, the daemon, the ANE (or why it is unavailable), a canary kernel "
                   "on every backend against the CPU backend, and the compile budgets. --probe "
                   "also measures the ANE rules that differ per chip and OS on the device (the "
                   "results are kept per chip and OS build and used by the lowering).");
  bool probe = false;
  std::string probe_backend;
  parser.AddBool("probe", &probe, "run the ANE capability probe in the daemon (admin)");
  parser.AddString("backend", &probe_backend,
                   "with --probe: the ANE backend to probe (default: ane, else ane-sim)");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  std::optional<v1::ProbeAneRulesResponse> probed;
  if (probe) {
    // First, so that the rules listed below are the ones the probe put in force.
    absl::StatusOr<client::AnerdClient*> client = ctx.Client();
    absl::StatusOr<v1::ProbeAneRulesResponse> p =
        client.ok() ? (*client)->ProbeAneRules(probe_backend)
                    : absl::StatusOr<v1::ProbeAneRulesResponse>(client.status());
    if (!p.ok()) {
      std::cerr << "anectl doctor --probe: " << p.status().message() << "\n";
      return kExitError;
    }
    probed = *std::move(p);
  }
  Json rules_in_force = Json::object();
  std::vector<Check> checks = RunChecks(ctx, &rules_in_force);
  if (probed.has_value()) {
    int differs = 0;
    for (const v1::AneRuleMeasurement& m : probed->rows()) differs += !m.agrees();
    checks.push_back({"ane rule probe " + probed->backend(), "pass",
                      absl::StrCat(probed->rows_size(), " rules measured",
                                   probed->simulated() ? " (simulated)" : "", ", ", differs,
                                   " differ from the table; ", probed->origin()),
                      ""});
  }
  bool ok = true;
  for (const Check& c : checks) ok = ok && c.status != "fail";
  if (ctx.json()) {
    Json list = Json::array();
    for (const Check& c : checks) {
      list.push_back(
          {{"name", c.name}, {"status", c.status}, {"detail", c.detail}, {"hint", c.hint}});
    }
    Json doc = {{"schema_version", 1}, {"ok", ok}, {"checks", list}, {"ane_rules", rules_in_force}};
    if (probed.has_value()) doc["rule_probe"] = ProbeJson(*probed);
    std::cout << doc.dump(2) << "\n";
  } else {
    for (const Check& c : checks) {
      const std::string mark = c.status == "pass"   ? ctx.Green("pass")
                               : c.status == "fail" ? ctx.Red("FAIL")
                               : c.status == "warn" ? ctx.Red("WARN")
                                                    : ctx.Dim("n/a ");
      std::cout << absl::StrFormat("  %s  %-22s %s\n", mark, c.name, c.detail);
      if (c.status != "pass" && !c.hint.empty()) std::cout << "        " << ctx.Dim(c.hint) << "\n";
    }
    if (probed.has_value()) PrintProbe(ctx, *probed);
  }
  return ok ? kExitOk : kExitError;
}

}  // namespace anerd::anectl
