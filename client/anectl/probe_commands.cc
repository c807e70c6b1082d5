// anectl probe peak|sram|latency|int8|qos|all, probe ls|show|compare: run the daemon's hardware
// probes, print the seed's table columns as rows arrive, findings at the end, and keep, list and
// compare stored results.
//
// The latency probe's in-process rows come from the daemon; anectl adds one row measured here: the
// client-side round trip of tiny EvalKernel calls through the daemon (p50/p90/p99), labelled
// variant "rpc". That row is printed and in --json, but not stored with the daemon's result.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "client/anectl/probe_chart.h"
#include "common/atomic_file.h"
#include "common/rpc/grpc_status.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kJsonSchemaVersion = 1;
constexpr int kRpcLatencyCalls = 300;
constexpr int kMaxListedResults = 100000;  // what ls asks for at most
constexpr char kRpcLatencyMil[] = R"(program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 64]> x) {
        tensor<fp16, [1, 64, 1, 64]> y = add(x=x, y=x)[name=string("y")];
    } -> (y);
}
)";

// ---- grid parsing: "CHxSPxDEPTH,..." (SP defaults to 64, DEPTH to 1) ----

absl::StatusOr<std::vector<v1::ProbeGridPoint>> ParseGrid(const std::string& text) {
  std::vector<v1::ProbeGridPoint> grid;
  for (absl::string_view point : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts = absl::StrSplit(point, 'x');
    int64_t v[3] = {0, 64, 1};
    if (parts.size() > 3) {
      return absl::InvalidArgumentError(absl::StrCat("--grid: '", point, "' is not CHxSPxDEPTH"));
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!absl::SimpleAtoi(parts[i], &v[i]) || v[i] < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("--grid: '", point, "' is not CHxSPxDEPTH with positive integers"));
      }
    }
    v1::ProbeGridPoint p;
    p.set_channels(v[0]);
    p.set_spatial(v[1]);
    p.set_depth(static_cast<int32_t>(std::min<int64_t>(v[2], 1 << 30)));
    grid.push_back(p);
  }
  if (grid.empty()) return absl::InvalidArgumentError("--grid is empty");
  return grid;
}

// ---- tables ----

std::string Header(const std::string& probe) {
  if (probe == "peak") {
    return absl::StrFormat("%-24s %9s %9s %10s %9s %7s %8s %9s", "CONFIG", "W(MB)", "GFLOP",
                           "ms/eval", "TFLOPS", "%peak", "watts", "TFLOPS/W");
  }
  if (probe == "sram") {
    return absl::StrFormat("%-20s %9s %8s %8s %10s %9s %10s", "CONFIG", "W(MB)", "Act(MB)",
                           "Tot(MB)", "ms/eval", "TFLOPS", "GFLOPS/MB");
  }
  if (probe == "latency") {
    return absl::StrFormat("%-20s %-11s %7s %10s %10s %10s %12s", "CONFIG", "VARIANT", "ITERS",
                           "p50(us)", "p90(us)", "p99(us)", "device(us)");
  }
  if (probe == "qos") {
    return absl::StrFormat("%4s %-26s %7s %10s %10s %10s %12s", "QOS", "CONFIG", "ITERS", "p50(us)",
                           "p90(us)", "p99(us)", "device(us)");
  }
  return absl::StrFormat("%-24s %-6s %8s %9s %10s %9s %7s", "CONFIG", "VARIANT", "W(MB)", "GOP",
                         "ms/eval", "TOPS", "Ratio");
}

// The device's own time per evaluation, "—" when absent; "(sim)" marks ane-sim's model.
std::string DeviceUs(const v1::ProbeRow& r) {
  if (!r.has_hw_us_per_eval()) return "\u2014";
  return absl::StrFormat("%.1f%s", r.hw_us_per_eval(),
                         r.hw_time_source() == "simulated" ? " (sim)" : "");
}

std::string FormatRow(const v1::ProbeRow& r) {
  if (r.probe() == "peak") {
    return absl::StrFormat(
        "%-24s %9.2f %9.3f %10.3f %9.4f %6.1f%% %8s %9s", r.config(), r.weight_mb(), r.gflop(),
        r.ms_per_eval(), r.tflops(), r.pct_peak(),
        r.has_watts() ? absl::StrFormat("%.2f", r.watts()) : "\u2014",
        r.has_tflops_per_watt() ? absl::StrFormat("%.4f", r.tflops_per_watt()) : "\u2014");
  }
  if (r.probe() == "sram") {
    return absl::StrFormat("%-20s %9.2f %8.3f %8.2f %10.3f %9.4f %10.1f", r.config(), r.weight_mb(),
                           r.act_mb(), r.total_mb(), r.ms_per_eval(), r.tflops(),
                           r.gflops_per_mb());
  }
  if (r.probe() == "latency") {
    return absl::StrFormat("%-20s %-11s %7d %10.1f %10.1f %10.1f %12s", r.config(), r.variant(),
                           r.iterations(), r.p50_us(), r.p90_us(), r.p99_us(), DeviceUs(r));
  }
  if (r.probe() == "qos") {
    return absl::StrFormat("%4d %-26s %7d %10.1f %10.1f %10.1f %12s", r.qos(), r.config(),
                           r.iterations(), r.p50_us(), r.p90_us(), r.p99_us(), DeviceUs(r));
  }
  return absl::StrFormat("%-24s %-6s %8.2f %9.2f %10.2f %9.4f %7s", r.config(), r.variant(),
                         r.weight_mb(), r.gflop(), r.ms_per_eval(), r.tflops(),
                         r.variant() == "w8a8" ? absl::StrFormat("%.2fx", r.ratio()) : "");
}

// Prints rows under a header that is repeated whenever the probe changes (for `all`).
class TablePrinter {
 public:
  explicit TablePrinter(CommandContext& ctx) : ctx_(ctx) {}
  void Print(const v1::ProbeRow& row) {
    if (row.probe() != current_) {
      current_ = row.probe();
      std::cout << "\n"
                << ctx_.Bold(absl::StrCat("== ", current_, " ==")) << "\n"
                << ctx_.Bold(Header(current_)) << "\n";
    }
    std::cout << FormatRow(row) << "\n" << std::flush;
    // Energy that was not measured is said once, with the reason (never printed as 0 W).
    if (!row.has_watts() && !row.energy_unavailable().empty() && !said_unavailable_) {
      said_unavailable_ = true;
      std::cout << ctx_.Dim("energy unavailable: " + row.energy_unavailable()) << "\n";
    }
  }

 private:
  CommandContext& ctx_;
  std::string current_;
  bool said_unavailable_ = false;
};

// ---- JSON ----

Json RowJson(const v1::ProbeRow& r) {
  Json j = {{"probe", r.probe()},
            {"config", r.config()},
            {"variant", r.variant()},
            {"channels", r.channels()},
            {"spatial", r.spatial()},
            {"depth", r.depth()},
            {"weight_mb", r.weight_mb()},
            {"act_mb", r.act_mb()},
            {"total_mb", r.total_mb()},
            {"gflop", r.gflop()},
            {"ms_per_eval", r.ms_per_eval()},
            {"ms_min", r.ms_min()},
            {"tflops", r.tflops()},
            {"pct_peak", r.pct_peak()},
            {"gflops_per_mb", r.gflops_per_mb()},
            {"ratio", r.ratio()},
            {"p50_us", r.p50_us()},
            {"p90_us", r.p90_us()},
            {"p99_us", r.p99_us()},
            {"iterations", r.iterations()},
            // null when the backend has no device counter (cpu): never a made-up 0
            {"hw_us_per_eval", r.has_hw_us_per_eval() ? Json(r.hw_us_per_eval()) : Json()},
            {"hw_time_source", r.hw_time_source()},
            // null when the energy was not measured, with the reason: never a made-up 0
            {"watts", r.has_watts() ? Json(r.watts()) : Json()},
            {"tflops_per_watt", r.has_tflops_per_watt() ? Json(r.tflops_per_watt()) : Json()}};
  if (!r.energy_source().empty()) j["energy_source"] = r.energy_source();
  if (!r.energy_unavailable().empty()) j["energy_unavailable"] = r.energy_unavailable();
  if (r.has_qos()) j["qos"] = r.qos();
  return j;
}

Json FingerprintJson(const v1::MachineFingerprint& f) {
  return {{"os", f.os()},
          {"cpu", f.cpu()},
          {"cpu_cores", f.cpu_cores()},
          {"caches", f.caches()},
          {"backend", f.backend()},
          {"backend_version", f.backend_version()},
          {"device", f.device()},
          {"anerd_version", f.anerd_version()}};
}

Json SummaryJson(const v1::ProbeSummary& s) {
  Json findings = Json::array(), spills = Json::array();
  for (const v1::ProbeFinding& f : s.findings()) {
    findings.push_back(
        {{"probe", f.probe()}, {"kind", f.kind()}, {"text", f.text()}, {"value", f.value()}});
  }
  for (const v1::ProbeSpill& p : s.spills()) {
    spills.push_back({{"x_before_mb", p.x_before_mb()},
                      {"x_after_mb", p.x_after_mb()},
                      {"level_before", p.level_before()},
                      {"level_after", p.level_after()},
                      {"drop", p.drop()}});
  }
  return {{"findings", findings},
          {"spills", spills},
          {"peak_tflops", s.peak_tflops()},
          {"peak_source", s.peak_source()},
          {"wall_seconds", s.wall_seconds()},
          {"rows", s.rows()}};
}

// The versioned document `--json` prints for a run or a stored result.
Json ResultJson(const v1::ProbeResult& r, const std::vector<v1::ProbeRow>& client_rows) {
  Json rows = Json::array();
  for (const v1::ProbeRow& row : r.rows()) rows.push_back(RowJson(row));
  Json client = Json::array();
  for (const v1::ProbeRow& row : client_rows) client.push_back(RowJson(row));
  Json grid = Json::array();
  for (const v1::ProbeGridPoint& p : r.request().grid()) {
    grid.push_back({p.channels(), p.spatial(), p.depth()});
  }
  return {{"schema_version", kJsonSchemaVersion},
          {"result_id", r.summary().result_id()},
          {"probe", r.summary().probe()},
          {"created_unix_ms", r.summary().created_unix_ms()},
          {"options", {{"grid", grid}, {"repeat", r.request().repeat()}}},
          {"fingerprint", FingerprintJson(r.summary().fingerprint())},
          {"rows", rows},
          {"client_rows", client},
          {"summary", SummaryJson(r.summary())}};
}

void PrintFindings(CommandContext& ctx, const v1::ProbeSummary& s) {
  std::cout << "\n" << ctx.Bold("Findings") << "\n";
  for (const v1::ProbeFinding& f : s.findings()) {
    std::cout << "  [" << f.probe() << "] " << f.text() << "\n";
  }
  const v1::MachineFingerprint& fp = s.fingerprint();
  std::cout << ctx.Dim(
      absl::StrFormat("\nresult %s: %s backend %s on %s (%s; %d CPUs; %s), "
                      "%.1f s\n",
                      s.result_id(), fp.backend(), fp.backend_version(),
                      fp.cpu().empty() ? "unknown CPU" : fp.cpu(), fp.os(), fp.cpu_cores(),
                      fp.caches(), s.wall_seconds()));
}

// ---- SVG ----

absl::Status WriteSvg(const std::string& path, const v1::ProbeResult& r) {
  return WriteFileAtomically(path, RenderSvgChart(ProbeChart(r)), 0644);
}

// ---- client-side RPC latency ----

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

absl::StatusOr<v1::ProbeRow> MeasureRpcLatency(client::AnerdClient* client,
                                               const std::string& backend) {
  v1::CompileKernelHeader header;
  header.set_name("probe-rpc-latency");
  header.set_mil_text(kRpcLatencyMil);
  header.mutable_options()->set_backend(backend);
  absl::StatusOr<v1::CompileKernelResponse> kernel = client->CompileKernel(header, {});
  if (!kernel.ok()) return kernel.status();
  v1::EvalKernelRequest request;
  request.set_kernel_id(kernel->kernel().id());
  v1::Tensor* x = request.add_inputs();
  x->set_name("x");
  x->set_dtype("fp16");
  for (int64_t d : {1, 64, 1, 64}) x->add_shape(d);
  x->set_data(std::string(64 * 64 * 2, '\0'));
  std::vector<double> us;
  for (int i = 0; i < kRpcLatencyCalls + 10; ++i) {
    const absl::Time start = absl::Now();
    absl::StatusOr<v1::EvalKernelResponse> r = client->EvalKernel(request);
    if (!r.ok()) return r.status();
    if (i >= 10) us.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));  // 10 warm-up
  }
  v1::ProbeRow row;
  row.set_probe("latency");
  row.set_config("add 64ch sp64");
  row.set_variant("rpc");
  row.set_channels(64);
  row.set_spatial(64);
  row.set_depth(1);
  row.set_iterations(static_cast<int32_t>(us.size()));
  double total = 0;
  for (double v : us) total += v;
  row.set_ms_per_eval(total / us.size() / 1000);
  row.set_ms_min(*std::min_element(us.begin(), us.end()) / 1000);
  row.set_p50_us(Percentile(us, 0.5));
  row.set_p90_us(Percentile(us, 0.9));
  row.set_p99_us(Percentile(us, 0.99));
  return row;
}

// ---- run ----

struct RunFlags {
  std::string grid;
  int64_t repeat = 0;
  int64_t warmup = -1;
  std::string backend;
  double peak_tflops = 0;
  double budget = 0;
  std::string svg;
  bool no_rpc = false;
};

// A progress bar on stderr (only when it is a terminal). Clear() it before anything is printed
// on stdout: both usually share the terminal, and a row printed after the bar would be mangled.
class ProgressBar {
 public:
  void Draw(int done, int planned) {
    if (planned <= 0 || !::isatty(STDERR_FILENO)) return;
    const int filled = std::min(kWidth, done * kWidth / planned);
    std::fprintf(stderr, "\r[%s%s] %d/%d rows", std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), done, planned);
    std::fflush(stderr);
    shown_ = true;
    if (done >= planned) Clear();
  }
  void Clear() {
    if (!shown_) return;
    std::fprintf(stderr, "\r%*s\r", kWidth + 20, "");
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  static constexpr int kWidth = 30;
  bool shown_ = false;
};

// Streams the probe; fills `result` with the summary and rows.
absl::Status StreamProbe(CommandContext& ctx, client::AnerdClient* client,
                         const v1::RunProbeRequest& request, v1::ProbeResult* result) {
  std::unique_ptr<grpc::ClientContext> context = client->NewContext(absl::InfiniteDuration());
  std::unique_ptr<grpc::ClientReader<v1::RunProbeResponse>> reader =
      client->stub()->RunProbe(context.get(), request);
  TablePrinter table(ctx);
  ProgressBar bar;
  v1::RunProbeResponse message;
  int planned = 0;
  while (reader->Read(&message)) {
    if (message.has_started()) {
      planned = message.started().planned_rows();
      if (!ctx.json()) {
        const v1::MachineFingerprint& f = message.started().fingerprint();
        std::cout << ctx.Bold(absl::StrCat("probe ", request.probe())) << " on " << f.backend()
                  << " (" << f.device() << ")"
                  << (message.started().queued_ms() > 100
                          ? absl::StrFormat(", waited %.0f ms for the device",
                                            message.started().queued_ms())
                          : "")
                  << "\n";
      }
    } else if (message.has_row()) {
      *result->add_rows() = message.row();
      bar.Clear();
      if (!ctx.json()) table.Print(message.row());
      std::cout.flush();
      bar.Draw(result->rows_size(), planned);
    } else if (message.has_summary()) {
      *result->mutable_summary() = message.summary();
    }
  }
  bar.Clear();
  absl::Status status = FromGrpcStatus(reader->Finish());
  if (status.ok() && !result->has_summary()) {
    return absl::InternalError("the probe stream ended without a summary");
  }
  return status;
}

absl::StatusOr<v1::RunProbeRequest> BuildRequest(const std::string& probe, const RunFlags& f) {
  v1::RunProbeRequest request;
  request.set_probe(probe);
  if (!f.grid.empty()) {
    absl::StatusOr<std::vector<v1::ProbeGridPoint>> grid = ParseGrid(f.grid);
    if (!grid.ok()) return grid.status();
    for (const v1::ProbeGridPoint& p : *grid) *request.add_grid() = p;
  }
  if (f.repeat < 0 || f.repeat > 100000) {
    return absl::InvalidArgumentError("--repeat wants 0..100000");
  }
  request.set_repeat(static_cast<int32_t>(f.repeat));
  if (f.warmup >= 0) request.set_warmup(static_cast<int32_t>(std::min<int64_t>(f.warmup, 100000)));
  request.set_backend(f.backend);
  request.set_peak_tflops(f.peak_tflops);
  request.set_row_budget_seconds(f.budget);
  return request;
}

int RunProbeCommand(CommandContext& ctx, const std::string& probe,
                    const std::vector<std::string>& args) {
  RunFlags f;
  ArgParser parser(
      absl::StrCat("anectl probe ", probe,
                   " [--grid CHxSPxDEPTH,...] [--repeat N] [--svg FILE] [--json]"),
      "Runs the probe on the daemon with the device to itself (other work waits), printing rows "
      "as they are measured and findings at the end. The result is stored; see anectl probe ls.");
  parser.AddString("grid", &f.grid,
                   "grid points, e.g. 512x64x32,256x64x64 (SP defaults to 64, "
                   "DEPTH to 1); default: the seed's grid");
  parser.AddInt("repeat", &f.repeat,
                "timed iterations per point (default: the seed's count "
                "within a per-point time budget)");
  parser.AddInt("warmup", &f.warmup, "warm-up evaluations per point (default: the seed's)");
  parser.AddString("backend", &f.backend, "backend to probe (default: the daemon's)");
  parser.AddDouble("peak-tflops", &f.peak_tflops, "reference for %peak (default: stated/measured)");
  parser.AddDouble("budget", &f.budget, "seconds per point when --repeat is not given (default 2)");
  parser.AddString("svg", &f.svg, "write a chart (TFLOPS vs weight MB, spill points marked)");
  parser.AddBool("no-rpc", &f.no_rpc, "latency: skip the client-side RPC round-trip row");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<v1::RunProbeRequest> request = BuildRequest(probe, f);
  if (!request.ok()) {
    std::fprintf(stderr, "anectl: %s\n", std::string(request.status().message()).c_str());
    return kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::ProbeResult result;
  *result.mutable_request() = *request;
  if (absl::Status s = StreamProbe(ctx, *client, *request, &result); !s.ok()) return ctx.Fail(s);
  std::vector<v1::ProbeRow> client_rows;
  if ((probe == "latency" || probe == "all") && !f.no_rpc) {
    absl::StatusOr<v1::ProbeRow> rpc = MeasureRpcLatency(*client, f.backend);
    if (!rpc.ok()) return ctx.Fail(rpc.status());
    client_rows.push_back(*rpc);
    if (!ctx.json()) {
      std::cout << "\n"
                << ctx.Bold("== latency through the daemon (measured by anectl) ==") << "\n"
                << ctx.Bold(Header("latency")) << "\n"
                << FormatRow(*rpc) << "\n";
    }
  }
  if (!f.svg.empty()) {
    if (absl::Status s = WriteSvg(f.svg, result); !s.ok()) return ctx.Fail(s);
  }
  if (ctx.json()) {
    std::cout << ResultJson(result, client_rows).dump(2) << "\n";
  } else {
    PrintFindings(ctx, result.summary());
  }
  return kExitOk;
}

// ---- ls / show / compare ----

int List(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string probe;
  int64_t limit = 50;
  ArgParser parser("anectl probe ls [--probe NAME] [--limit N] [--json]",
                   "Lists stored probe results, newest first.");
  parser.AddString("probe", &probe, "only results of this probe");
  parser.AddInt("limit", &limit, "at most N results (default 50)");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::ListProbeResultsRequest request;
  request.set_probe(probe);
  request.set_limit(static_cast<int32_t>(std::clamp<int64_t>(limit, 0, kMaxListedResults)));
  v1::ListProbeResultsResponse response;
  std::unique_ptr<grpc::ClientContext> context = (*client)->NewContext();
  absl::Status s =
      FromGrpcStatus((*client)->stub()->ListProbeResults(context.get(), request, &response));
  if (!s.ok()) return ctx.Fail(s);
  if (ctx.json()) {
    Json results = Json::array();
    for (const v1::ProbeSummary& r : response.results()) {
      Json j = SummaryJson(r);
      results.push_back({{"result_id", r.result_id()},
                         {"probe", r.probe()},
                         {"created_unix_ms", r.created_unix_ms()},
                         {"fingerprint", FingerprintJson(r.fingerprint())},
                         {"summary", j}});
    }
    std::cout << Json{{"schema_version", kJsonSchemaVersion}, {"results", results}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << ctx.Bold(absl::StrFormat("%-22s %-8s %-8s %-20s %5s %8s  %s", "ID", "PROBE",
                                        "BACKEND", "CREATED (UTC)", "ROWS", "WALL", "HEADLINE"))
            << "\n";
  for (const v1::ProbeSummary& r : response.results()) {
    const std::string created = absl::FormatTime(
        "%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(r.created_unix_ms()), absl::UTCTimeZone());
    std::cout << absl::StrFormat("%-22s %-8s %-8s %-20s %5d %7.1fs  %s\n", r.result_id(), r.probe(),
                                 r.fingerprint().backend(), created, r.rows(), r.wall_seconds(),
                                 r.findings_size() > 0 ? r.findings(0).text().substr(0, 70) : "");
  }
  if (response.results_size() == 0) std::cout << "(no probe results; run anectl probe peak)\n";
  return kExitOk;
}

absl::StatusOr<v1::ProbeResult> FetchExact(client::AnerdClient& client, const std::string& id) {
  v1::GetProbeResultRequest request;
  request.set_result_id(id);
  v1::ProbeResult result;
  std::unique_ptr<grpc::ClientContext> context = client.NewContext();
  absl::Status s = FromGrpcStatus(client.stub()->GetProbeResult(context.get(), request, &result));
  if (!s.ok()) return s;
  return result;
}

// A stored result by its full id or, like docker, by a prefix that only one result id has
// (INVALID_ARGUMENT listing the candidates when several have it).
absl::StatusOr<v1::ProbeResult> Fetch(CommandContext& ctx, const std::string& id) {
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<v1::ProbeResult> exact = FetchExact(**client, id);
  if (exact.ok() || !absl::IsNotFound(exact.status()) || id.empty()) return exact;
  v1::ListProbeResultsRequest request;
  request.set_limit(kMaxListedResults);
  v1::ListProbeResultsResponse all;
  std::unique_ptr<grpc::ClientContext> context = (*client)->NewContext();
  absl::Status s =
      FromGrpcStatus((*client)->stub()->ListProbeResults(context.get(), request, &all));
  if (!s.ok()) return s;
  std::vector<std::string> matches;
  for (const v1::ProbeSummary& r : all.results()) {
    if (absl::StartsWith(r.result_id(), id)) matches.push_back(r.result_id());
  }
  if (matches.empty()) return exact.status();
  if (matches.size() == 1) return FetchExact(**client, matches[0]);
  constexpr size_t kShown = 8;
  const size_t more = matches.size() > kShown ? matches.size() - kShown : 0;
  matches.resize(std::min(matches.size(), kShown));
  return absl::InvalidArgumentError(absl::StrCat(
      "probe result prefix '", id, "' is ambiguous: ", matches.size() + more, " results match (",
      absl::StrJoin(matches, ", "), more ? absl::StrCat(", and ", more, " more") : "",
      "); give more characters of the id"));
}

int Show(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string id, svg;
  ArgParser parser("anectl probe show ID [--svg FILE] [--json]",
                   "Shows a stored probe result: its rows, findings and machine fingerprint.");
  parser.AddPositional("ID", &id, "result id or a unique prefix of one (see anectl probe ls)");
  parser.AddString("svg", &svg, "also write the chart to FILE");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<v1::ProbeResult> result = Fetch(ctx, id);
  if (!result.ok()) return ctx.Fail(result.status());
  if (!svg.empty()) {
    if (absl::Status s = WriteSvg(svg, *result); !s.ok()) return ctx.Fail(s);
  }
  if (ctx.json()) {
    std::cout << ResultJson(*result, {}).dump(2) << "\n";
    return kExitOk;
  }
  std::cout << ctx.Bold(absl::StrCat("probe ", result->summary().probe())) << " result "
            << result->summary().result_id() << "\n";
  TablePrinter table(ctx);
  for (const v1::ProbeRow& row : result->rows()) table.Print(row);
  PrintFindings(ctx, result->summary());
  return kExitOk;
}

// The compared metric: p50 latency for latency rows (lower is better), else throughput.
bool IsLatency(const v1::ProbeRow& r) { return r.probe() == "latency"; }
double Metric(const v1::ProbeRow& r) { return IsLatency(r) ? r.p50_us() : r.tflops(); }
std::string RowKey(const v1::ProbeRow& r) {
  return absl::StrCat(r.probe(), "|", r.config(), "|", r.variant());
}

int Compare(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string a_id, b_id;
  ArgParser parser("anectl probe compare A B [--json]",
                   "Compares two stored results row by row: throughput (TFLOPS/TOPS) or, for "
                   "latency rows, p50 microseconds, with the ratio B/A.");
  parser.AddPositional("A", &a_id, "baseline result id (or a unique prefix)");
  parser.AddPositional("B", &b_id, "result id (or a unique prefix) to compare against A");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<v1::ProbeResult> a = Fetch(ctx, a_id);
  if (!a.ok()) return ctx.Fail(a.status());
  absl::StatusOr<v1::ProbeResult> b = Fetch(ctx, b_id);
  if (!b.ok()) return ctx.Fail(b.status());
  std::map<std::string, const v1::ProbeRow*> b_rows;
  for (const v1::ProbeRow& r : b->rows()) b_rows.emplace(RowKey(r), &r);
  Json rows = Json::array();
  if (!ctx.json()) {
    std::cout << ctx.Bold(absl::StrFormat("%-8s %-24s %-10s %-7s %12s %12s %8s", "PROBE", "CONFIG",
                                          "VARIANT", "METRIC", "A", "B", "B/A"))
              << "\n";
  }
  for (const v1::ProbeRow& ra : a->rows()) {
    auto it = b_rows.find(RowKey(ra));
    const v1::ProbeRow* rb = it == b_rows.end() ? nullptr : it->second;
    const double va = Metric(ra), vb = rb ? Metric(*rb) : 0;
    const double ratio = rb && va > 0 ? vb / va : 0;
    const char* metric = IsLatency(ra) ? "p50_us" : "tflops";
    rows.push_back({{"probe", ra.probe()},
                    {"config", ra.config()},
                    {"variant", ra.variant()},
                    {"metric", metric},
                    {"a", va},
                    {"b", rb ? Json(vb) : Json(nullptr)},
                    {"ratio", rb ? Json(ratio) : Json(nullptr)}});
    if (!ctx.json()) {
      std::cout << absl::StrFormat(
          "%-8s %-24s %-10s %-7s %12.4f %12s %8s\n", ra.probe(), ra.config(), ra.variant(), metric,
          va, rb ? absl::StrFormat("%.4f", vb) : "-", rb ? absl::StrFormat("%.2fx", ratio) : "-");
    }
  }
  if (ctx.json()) {
    Json out = {{"schema_version", kJsonSchemaVersion},
                {"a",
                 {{"result_id", a->summary().result_id()},
                  {"fingerprint", FingerprintJson(a->summary().fingerprint())}}},
                {"b",
                 {{"result_id", b->summary().result_id()},
                  {"fingerprint", FingerprintJson(b->summary().fingerprint())}}},
                {"rows", rows}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  const v1::MachineFingerprint& fa = a->summary().fingerprint();
  const v1::MachineFingerprint& fb = b->summary().fingerprint();
  std::cout << ctx.Dim(absl::StrFormat("\nA: %s, %s on %s\nB: %s, %s on %s\n",
                                       a->summary().result_id(), fa.backend(), fa.cpu(),
                                       b->summary().result_id(), fb.backend(), fb.cpu()));
  return kExitOk;
}

}  // namespace

int RunProbe(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = new std::vector<Command>{
      {"peak", "peak throughput of 1x1 conv chains (seed inmem_peak)",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return RunProbeCommand(c, "peak", a);
       }},
      {"sram", "single convs over a channel sweep; detects spill points",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return RunProbeCommand(c, "sram", a);
       }},
      {"latency", "dispatch latency of the smallest kernels (in-process and via RPC)",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return RunProbeCommand(c, "latency", a);
       }},
      {"int8", "fp16 vs W8A8 conv chains (seed ane_int8_bench)",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return RunProbeCommand(c, "int8", a);
       }},
      {"qos", "latency across QoS values (ANE only)",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return RunProbeCommand(c, "qos", a);
       }},
      {"all", "every probe, in order, with default grids",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return RunProbeCommand(c, "all", a);
       }},
      {"ls", "list stored probe results", List},
      {"show", "show a stored result", Show},
      {"compare", "compare two stored results side by side", Compare},
  };
  return RunSubcommand(ctx, "probe", *subcommands, args);
}

}  // namespace anerd::anectl
