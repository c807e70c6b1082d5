// RunProbe: compiles each grid point's program, times it and reports rows and findings.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/mil/verifier.h"
#include "common/status_macros.h"
#include "server/probes/probe.h"
#include "server/probes/programs.h"

namespace anerd::probes {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;
// The seed's %peak reference for the ANE (inmem_peak divides by 19 TFLOPS).
constexpr double kAneStatedPeakTflops = 19.0;

struct Counts {
  int warmup;
  int iters;
};
// The seed's warm-up / iteration counts per probe (docs/ANE_NOTES.md §7).
Counts SeedCounts(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kPeak:
    case ProbeKind::kInt8:
      return {10, 50};
    case ProbeKind::kSram:
      return {5, 50};
    default:
      return {20, 1000};  // latency: many tiny evaluations
  }
}

using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

struct Timing {
  std::vector<double> ms;  // per timed iteration
  double mean = 0, min = 0;
  std::optional<double> hw_us;  // mean device time per iteration, when every one reported it
  bool hw_simulated = false;
  std::optional<telemetry::IntervalEnergy> energy;  // over the timed iterations, when measured
  std::string energy_source, energy_unavailable;
};

// The shared state of one RunProbe call.
class Runner {
 public:
  Runner(backend::Backend* backend, const ProbeOptions& options, const CheckFn& check,
         const RowFn& on_row, const EnergyFn& energy, ProbeSummary* summary)
      : backend_(backend),
        options_(options),
        check_(check),
        on_row_(on_row),
        energy_(energy),
        summary_(summary) {}

  absl::Status Run(ProbeKind kind, const std::vector<GridPoint>& grid);

 private:
  absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> Compile(
      const ProbeProgram& p, std::optional<unsigned int> qos = std::nullopt);
  absl::StatusOr<Timing> Measure(backend::CompiledProgram* program, ProbeKind kind);
  absl::StatusOr<Timing> CompileAndMeasure(absl::StatusOr<ProbeProgram> program, ProbeKind kind);
  absl::Status ResolvePeak();
  void Emit(ProbeRow row);
  absl::Status Peak(const std::vector<GridPoint>& grid);
  absl::Status Sram(const std::vector<GridPoint>& grid);
  absl::Status Latency(const std::vector<GridPoint>& grid);
  absl::Status Int8(const std::vector<GridPoint>& grid);
  absl::Status Qos();
  void AddFinding(ProbeKind kind, std::string k, std::string text, double value) {
    summary_->findings.push_back(
        {std::string(ProbeKindName(kind)), std::move(k), std::move(text), value});
  }

  backend::Backend* backend_;
  const ProbeOptions& options_;
  const CheckFn& check_;
  const RowFn& on_row_;
  const EnergyFn& energy_;
  ProbeSummary* summary_;
};

// Deterministic, non-trivial input values (timing does not depend on them).
std::vector<backend::NamedTensor> InputsFor(const backend::CompiledProgram& program) {
  std::vector<backend::NamedTensor> inputs;
  for (const backend::TensorSignature& sig : program.inputs()) {
    std::vector<float> values(static_cast<size_t>(sig.type.NumElements()));
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = static_cast<float>((i * 37 % 61) - 30) / 30;
    inputs.push_back(
        {sig.name, backend::Tensor::FromFloats(sig.type.dtype, sig.type.shape, values)});
  }
  return inputs;
}

absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> Runner::Compile(
    const ProbeProgram& p, std::optional<unsigned int> qos) {
  ANERD_ASSIGN_OR_RETURN(mil::VerifiedProgram verified, mil::VerifyProgram(p.program, p.weights));
  backend::CompileOptions options;
  options.stop = check_;
  options.qos = qos;
  return backend_->Compile(verified, options);
}

absl::StatusOr<Timing> Runner::Measure(backend::CompiledProgram* program, ProbeKind kind) {
  const Counts seed = SeedCounts(kind);
  const bool exact = options_.repeat > 0;
  const int warmup = options_.warmup.value_or(seed.warmup);
  const int iters = exact ? options_.repeat : seed.iters;
  const double budget_ms = options_.row_budget_seconds * 1000;
  const std::vector<backend::NamedTensor> inputs = InputsFor(*program);
  const Clock::time_point warm_start = Clock::now();
  for (int i = 0; i < warmup; ++i) {
    ANERD_RETURN_IF_ERROR(check_());
    ANERD_RETURN_IF_ERROR(program->RunStoppable(inputs, check_).status());
    if (!exact && MsSince(warm_start) > budget_ms / 2) break;
  }
  Timing t;
  double total = 0, hw_total = 0;
  bool hw_every = true;
  std::optional<telemetry::EnergySnapshot> energy_before;
  if (energy_) energy_before = energy_();
  for (int i = 0; i < iters; ++i) {
    ANERD_RETURN_IF_ERROR(check_());
    const Clock::time_point start = Clock::now();
    ANERD_ASSIGN_OR_RETURN(backend::RunResult run, program->RunStoppable(inputs, check_));
    t.ms.push_back(MsSince(start));
    total += t.ms.back();
    hw_every = hw_every && run.timing.hardware_us.has_value();
    if (hw_every) {
      hw_total += *run.timing.hardware_us;
      t.hw_simulated = run.timing.hardware_simulated;
    }
    if (!exact && i + 1 >= kMinTimedIterations && total > budget_ms) break;
  }
  if (energy_before.has_value()) {
    const telemetry::EnergySnapshot after = energy_();
    t.energy = telemetry::EnergyOver(*energy_before, after, total / 1000);
    if (t.energy.has_value()) {
      t.energy_source = after.source;
    } else {
      t.energy_unavailable =
          after.source + ": " +
          (after.unavailable.empty() ? "no power sampled yet" : after.unavailable);
    }
  }
  t.mean = total / static_cast<double>(t.ms.size());
  if (hw_every) t.hw_us = hw_total / static_cast<double>(t.ms.size());
  t.min = *std::min_element(t.ms.begin(), t.ms.end());
  return t;
}

absl::StatusOr<Timing> Runner::CompileAndMeasure(absl::StatusOr<ProbeProgram> program,
                                                 ProbeKind kind) {
  ANERD_RETURN_IF_ERROR(program.status());
  ANERD_RETURN_IF_ERROR(check_());
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<backend::CompiledProgram> compiled, Compile(*program));
  return Measure(compiled.get(), kind);
}

void Runner::Emit(ProbeRow row) {
  ++summary_->rows;
  on_row_(row);
}

// Fills a row's sizes and throughput from its grid point and timing (positions = activation
// elements per channel; bytes_per_weight 2 for fp16, 1 for int8).
ProbeRow MakeRow(ProbeKind kind, const GridPoint& p, int64_t positions, int bytes_per_weight,
                 const Timing& t) {
  ProbeRow row;
  row.probe = std::string(ProbeKindName(kind));
  row.channels = p.channels;
  row.spatial = p.spatial;
  row.depth = p.depth;
  const double weights = static_cast<double>(p.channels) * p.channels * p.depth;
  row.weight_mb = weights * bytes_per_weight / kMiB;
  row.act_mb = static_cast<double>(p.channels) * positions * 2 / kMiB;
  row.total_mb = row.weight_mb + 2 * row.act_mb;
  row.gflop = 2.0 * weights * positions / 1e9;
  row.ms_per_eval = t.mean;
  row.ms_min = t.min;
  row.tflops = t.mean > 0 ? row.gflop / t.mean : 0;
  row.iterations = static_cast<int>(t.ms.size());
  row.p50_us = Percentile(t.ms, 0.50) * 1000;
  row.p90_us = Percentile(t.ms, 0.90) * 1000;
  row.p99_us = Percentile(t.ms, 0.99) * 1000;
  row.hw_us_per_eval = t.hw_us;
  if (t.hw_us.has_value()) row.hw_time_source = t.hw_simulated ? "simulated" : "hardware";
  if (t.energy.has_value() && t.energy->watts > 0) {
    row.watts = t.energy->watts;
    row.tflops_per_watt = row.tflops / t.energy->watts;
    row.energy_source = t.energy_source;
  } else {
    row.energy_unavailable = t.energy_unavailable;
  }
  return row;
}

absl::Status Runner::ResolvePeak() {
  if (summary_->peak_tflops > 0) return absl::OkStatus();
  if (options_.peak_tflops > 0) {
    summary_->peak_tflops = options_.peak_tflops;
    summary_->peak_source = "given";
    return absl::OkStatus();
  }
  const backend::BackendDescription d = backend_->Describe();
  if (absl::StartsWith(d.name, "ane")) {
    summary_->peak_tflops = kAneStatedPeakTflops;
    summary_->peak_source = "stated: the seed's inmem_peak reference (19 TFLOPS)";
    return absl::OkStatus();
  }
  // No stated peak: the best of a large, cache-friendly conv chain on this backend, same run.
  const GridPoint ref{1024, 1024, 4};
  ANERD_ASSIGN_OR_RETURN(ProbeProgram program,
                         PeakProgram(ref.channels, ref.spatial, ref.depth, options_.seed, false));
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<backend::CompiledProgram> compiled, Compile(program));
  const std::vector<backend::NamedTensor> inputs = InputsFor(*compiled);
  double best_ms = 0;
  for (int i = 0; i < 4; ++i) {
    ANERD_RETURN_IF_ERROR(check_());
    const Clock::time_point start = Clock::now();
    ANERD_RETURN_IF_ERROR(compiled->RunStoppable(inputs, check_).status());
    const double ms = MsSince(start);
    if (i > 0 && (best_ms == 0 || ms < best_ms)) best_ms = ms;  // run 0 is the warm-up
  }
  summary_->peak_tflops = static_cast<double>(program.flops) / 1e9 / best_ms;
  summary_->peak_source =
      "measured: best of 3 runs of 4x conv 1024ch sp1024 (fp16 I/O) on " + d.name;
  return absl::OkStatus();
}

absl::Status Runner::Peak(const std::vector<GridPoint>& grid) {
  ANERD_RETURN_IF_ERROR(ResolvePeak());
  const ProbeRow* best = nullptr;
  ProbeRow best_row;
  for (const GridPoint& p : grid) {
    ANERD_ASSIGN_OR_RETURN(
        Timing t, CompileAndMeasure(PeakProgram(p.channels, p.spatial, p.depth, options_.seed),
                                    ProbeKind::kPeak));
    ProbeRow row = MakeRow(ProbeKind::kPeak, p, p.spatial, 2, t);
    row.config = absl::StrFormat("%dx conv %dch sp%d", p.depth, p.channels, p.spatial);
    row.pct_peak = 100 * row.tflops / summary_->peak_tflops;
    if (best == nullptr || row.tflops > best_row.tflops) {
      best_row = row;
      best = &best_row;
    }
    Emit(std::move(row));
  }
  if (best != nullptr) {
    AddFinding(
        ProbeKind::kPeak, "peak",
        absl::StrFormat("peak %.3f TFLOPS at %s (%.1f%% of %.3f TFLOPS, %s)", best->tflops,
                        best->config, best->pct_peak, summary_->peak_tflops, summary_->peak_source),
        best->tflops);
  }
  return absl::OkStatus();
}

absl::Status Runner::Sram(const std::vector<GridPoint>& grid) {
  std::vector<CurvePoint> curve;
  for (const GridPoint& p : grid) {
    ANERD_ASSIGN_OR_RETURN(
        Timing t,
        CompileAndMeasure(SramProgram(p.channels, p.spatial, options_.seed), ProbeKind::kSram));
    ProbeRow row = MakeRow(ProbeKind::kSram, p, p.spatial, 2, t);
    row.config = absl::StrFormat("conv %dch sp%d", p.channels, p.spatial);
    row.gflops_per_mb = row.weight_mb > 0 ? row.tflops * 1000 / row.weight_mb : 0;
    curve.push_back({row.weight_mb, row.tflops});
    Emit(std::move(row));
  }
  summary_->spills = DetectSpills(curve);
  for (const SpillPoint& s : summary_->spills) {
    AddFinding(ProbeKind::kSram, "spill",
               absl::StrFormat("throughput drops %.0f%% between %.2f and %.2f MB of fp16 weights "
                               "(%.3f -> %.3f TFLOPS): the working set outgrows a cache/SRAM level",
                               100 * s.drop, s.x_before, s.x_after, s.level_before, s.level_after),
               s.x_after);
  }
  if (summary_->spills.empty() && curve.size() > 1) {
    AddFinding(ProbeKind::kSram, "spill",
               absl::StrFormat("no spill point between %.2f and %.2f MB of fp16 weights "
                               "(throughput never fell 25%% below its best)",
                               curve.front().x, curve.back().x),
               0);
  }
  return absl::OkStatus();
}

absl::Status Runner::Latency(const std::vector<GridPoint>& grid) {
  for (const GridPoint& p : grid) {
    ANERD_ASSIGN_OR_RETURN(
        Timing t, CompileAndMeasure(SramProgram(p.channels, p.spatial, options_.seed, false),
                                    ProbeKind::kLatency));
    ProbeRow row = MakeRow(ProbeKind::kLatency, p, p.spatial, 2, t);
    row.config = absl::StrFormat("conv %dch sp%d", p.channels, p.spatial);
    row.variant = "in-process";
    AddFinding(ProbeKind::kLatency, "latency",
               absl::StrFormat("in-process evaluation of %s: p50 %.1f us, p99 %.1f us", row.config,
                               row.p50_us, row.p99_us),
               row.p50_us);
    Emit(std::move(row));
  }
  return absl::OkStatus();
}

absl::Status Runner::Int8(const std::vector<GridPoint>& grid) {
  double ratio_sum = 0;
  for (const GridPoint& p : grid) {
    const std::string config =
        absl::StrFormat("%dx conv %dch %dx%d", p.depth, p.channels, p.spatial, p.spatial);
    ProbeRow fp16;
    for (bool w8a8 : {false, true}) {
      ANERD_ASSIGN_OR_RETURN(Timing t, CompileAndMeasure(Int8Program(p.channels, p.spatial, p.depth,
                                                                     w8a8, options_.seed),
                                                         ProbeKind::kInt8));
      ProbeRow row = MakeRow(ProbeKind::kInt8, p, p.spatial * p.spatial, w8a8 ? 1 : 2, t);
      row.config = config;
      row.variant = w8a8 ? "w8a8" : "fp16";
      if (w8a8) {
        row.ratio = row.ms_per_eval > 0 ? fp16.ms_per_eval / row.ms_per_eval : 0;
        ratio_sum += row.ratio;
      } else {
        fp16 = row;
      }
      Emit(std::move(row));
    }
  }
  if (!grid.empty()) {
    const double mean = ratio_sum / static_cast<double>(grid.size());
    AddFinding(ProbeKind::kInt8, "ratio",
               absl::StrFormat("W8A8 runs at %.2fx the speed of fp16 on average (the seed measured "
                               "1.85-1.88x on the M4 ANE)",
                               mean),
               mean);
  }
  return absl::OkStatus();
}

// test_qos_sweep.m: the same 256x256 conv compiled, loaded and run at each QoS value; one row
// per value with the latency and, where the device reports it, its own execution time.
absl::Status Runner::Qos() {
  const backend::BackendDescription d = backend_->Describe();
  if (!d.capabilities.qos) {
    AddFinding(ProbeKind::kQos, "not_applicable",
               absl::StrCat("QoS is an ANE request parameter; it does not apply to the ", d.name,
                            " backend"),
               0);
    return absl::OkStatus();
  }
  const GridPoint p = kQosPoint;
  ProbeRow fastest, slowest;
  int rows = 0;
  for (unsigned int qos : QosSweep()) {
    ANERD_RETURN_IF_ERROR(check_());
    ANERD_ASSIGN_OR_RETURN(ProbeProgram program,
                           SramProgram(p.channels, p.spatial, options_.seed, false));
    ANERD_ASSIGN_OR_RETURN(std::unique_ptr<backend::CompiledProgram> compiled,
                           Compile(program, qos));
    ANERD_ASSIGN_OR_RETURN(Timing t, Measure(compiled.get(), ProbeKind::kQos));
    ProbeRow row = MakeRow(ProbeKind::kQos, p, p.spatial, 2, t);
    row.config = absl::StrFormat("conv %dch sp%d qos %d", p.channels, p.spatial, qos);
    row.qos = qos;
    if (rows == 0 || row.p50_us < fastest.p50_us) fastest = row;
    if (rows == 0 || row.p50_us > slowest.p50_us) slowest = row;
    ++rows;
    Emit(std::move(row));
  }
  const double spread = fastest.p50_us > 0 ? slowest.p50_us / fastest.p50_us : 0;
  AddFinding(ProbeKind::kQos, "qos",
             absl::StrFormat("p50 latency over QoS 0-63: fastest %.1f us at QoS %d, slowest %.1f "
                             "us at QoS %d (%.2fx; the seed measured no difference on M4/M5)",
                             fastest.p50_us, *fastest.qos, slowest.p50_us, *slowest.qos, spread),
             spread);
  return absl::OkStatus();
}

absl::Status Runner::Run(ProbeKind kind, const std::vector<GridPoint>& grid) {
  switch (kind) {
    case ProbeKind::kPeak:
      return Peak(grid);
    case ProbeKind::kSram:
      return Sram(grid);
    case ProbeKind::kLatency:
      return Latency(grid);
    case ProbeKind::kInt8:
      return Int8(grid);
    case ProbeKind::kQos:
      return Qos();
    case ProbeKind::kAll:
      for (ProbeKind k : {ProbeKind::kPeak, ProbeKind::kSram, ProbeKind::kLatency, ProbeKind::kInt8,
                          ProbeKind::kQos}) {
        ANERD_RETURN_IF_ERROR(Run(k, DefaultGrid(k)));
      }
      return absl::OkStatus();
  }
  return absl::InternalError("unhandled probe kind");
}

}  // namespace

absl::StatusOr<ProbeSummary> RunProbe(backend::Backend* backend, const ProbeOptions& options,
                                      const CheckFn& check, const RowFn& on_row,
                                      const EnergyFn& energy) {
  ANERD_RETURN_IF_ERROR(ValidateOptions(options));
  const Clock::time_point start = Clock::now();
  ProbeSummary summary;
  summary.probe = std::string(ProbeKindName(options.kind));
  Runner runner(backend, options, check, on_row, energy, &summary);
  const std::vector<GridPoint> grid =
      options.grid.empty() ? DefaultGrid(options.kind) : options.grid;
  ANERD_RETURN_IF_ERROR(runner.Run(options.kind, grid));
  summary.wall_seconds = MsSince(start) / 1000;
  return summary;
}

}  // namespace anerd::probes
