// Hardware probes (docs/ANE_NOTES.md §7): peak throughput, SRAM/cache spill, dispatch latency, int8
// vs fp16 and the QoS sweep, run through the backend interface on any backend.
//
// A probe compiles its programs (programs.h), evaluates each grid point with warm-up and timed
// repetitions, streams one ProbeRow per measurement through a callback and ends with a
// ProbeSummary holding findings (spill points, best throughput, ratios).
//
// Repetitions: by default each grid point gets the seed's warm-up and iteration counts, but the
// timed loop stops early once it has run at least kMinTimedIterations and spent
// ProbeOptions::row_budget_seconds (slow backends would otherwise take hours on the seed's grids);
// warm-up stops after one evaluation once it exceeds half that budget. `repeat` > 0 asks for
// exactly that many timed iterations (no budget).
//
// Units: MB are MiB (2^20 bytes) as in the seed; GFLOP = 1e9 FLOP; TFLOPS = GFLOP / ms.
// Thread-safety: RunProbe blocks the calling thread (meant to be the backend's device executor)
// and calls `on_row` on it; the other functions are pure.
#ifndef ANERD_SERVER_PROBES_PROBE_H_
#define ANERD_SERVER_PROBES_PROBE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/backend.h"
#include "server/telemetry/energy_sampler.h"

namespace anerd::probes {

enum class ProbeKind { kPeak, kSram, kLatency, kInt8, kQos, kAll };

// "peak", "sram", "latency", "int8", "qos", "all".
absl::string_view ProbeKindName(ProbeKind kind);
// INVALID_ARGUMENT naming `field` and the accepted names for an unknown probe.
absl::StatusOr<ProbeKind> ProbeKindFromName(absl::string_view name, absl::string_view field);

// One grid point. `depth` is the number of chained convs (1 for sram and latency).
struct GridPoint {
  int64_t channels = 0;
  int64_t spatial = 0;
  int depth = 1;
};

// The QoS values the qos probe sweeps: the seed's test_qos_sweep.m (docs/ANE_NOTES.md §1.6), 0..63.
std::vector<unsigned int> QosSweep();
// The qos probe's kernel: test_qos_sweep's 256x256 conv at 64 positions.
inline constexpr GridPoint kQosPoint = {256, 64, 1};

// The seed's grids (docs/ANE_NOTES.md §7): inmem_peak, sram_probe (a superset of sram_bench's
// channels), the latency kernels (64 and 256 channels at 64 positions) and ane_int8_bench. Empty
// for qos/all.
std::vector<GridPoint> DefaultGrid(ProbeKind kind);
// INVALID_ARGUMENT naming "grid[i].channels" etc. when a point is outside programs.h's bounds or a
// probe with a fixed depth (sram, latency) is given another depth. At most kMaxGridPoints points.
inline constexpr int kMaxGridPoints = 64;
absl::Status ValidateGrid(ProbeKind kind, const std::vector<GridPoint>& grid);

inline constexpr int kMinTimedIterations = 3;
inline constexpr int kMaxRepeat = 100000;

struct ProbeOptions {
  ProbeKind kind = ProbeKind::kPeak;
  std::vector<GridPoint> grid;      // empty = DefaultGrid(kind); ignored for `all`
  int repeat = 0;                   // timed iterations; 0 = seed count within the row budget
  std::optional<int> warmup;        // default: the seed's count
  double row_budget_seconds = 2.0;  // see the file comment
  double peak_tflops = 0;           // reference for %peak; 0 = backend's stated or measured
  uint64_t seed = 1;                // weight generator seed
};
// INVALID_ARGUMENT naming the field (repeat, warmup, row_budget_seconds, peak_tflops, grid...).
absl::Status ValidateOptions(const ProbeOptions& options);

// What a probe may cost, checked for every grid point before the probe starts (daemon flags
// --max-probe-bytes and --max-probe-gflop). 0 = unlimited.
struct ProbeBudget {
  uint64_t max_bytes = uint64_t{2} << 30;  // memory one grid point needs while it runs
  double max_gflop = 1000;                 // work of one evaluation (GFLOP; int8: GOP)
};

// The estimated cost of one grid point: the weight files (fp16, or int8 for the W8A8 variant)
// held twice while compiling, the weights decoded to fp32, and six fp32 activation-sized buffers
// (inputs, outputs and the backend's live intermediates); and 2 FLOP per weight per position.
struct ProbeCost {
  double bytes = 0;
  double gflop = 0;
};
ProbeCost EstimateCost(ProbeKind kind, const GridPoint& point);

// RESOURCE_EXHAUSTED naming the grid point, the estimate, the limit and the flag that raises it
// when any point the probe would run (including the peak probe's reference point and, for `all`,
// every default grid) exceeds `budget`. Call after ValidateOptions.
absl::Status CheckBudget(const ProbeOptions& options, const ProbeBudget& budget);

// One measurement. Fields that do not apply to a probe are zero.
struct ProbeRow {
  std::string probe;    // "peak", "sram", ...
  std::string config;   // "128x conv 512ch sp64"
  std::string variant;  // "fp16" / "w8a8" for int8, "in-process" for latency, else ""
  int64_t channels = 0, spatial = 0;
  int depth = 0;
  double weight_mb = 0;      // weight bytes / MiB (2 bytes per fp16 weight, 1 per int8)
  double act_mb = 0;         // one activation tensor in fp16 / MiB: ch * positions * 2
  double total_mb = 0;       // weight_mb + 2 * act_mb
  double gflop = 0;          // FLOP per evaluation / 1e9 (int8: GOP)
  double ms_per_eval = 0;    // mean of the timed iterations
  double ms_min = 0;         // fastest timed iteration
  double tflops = 0;         // gflop / ms_per_eval (int8: TOPS)
  double pct_peak = 0;       // 100 * tflops / the summary's reference peak (peak probe)
  double gflops_per_mb = 0;  // tflops * 1000 / weight_mb (sram)
  double ratio = 0;          // int8: ms_fp16 / ms_w8a8 (on the w8a8 row)
  double p50_us = 0, p90_us = 0, p99_us = 0;  // latency percentiles of the timed iterations
  int iterations = 0;                         // timed iterations actually run
  // The device's own execution time per evaluation (mean over the timed iterations) when every
  // one reported it (backend::RunTiming::hardware_us); unset otherwise (cpu): never a made-up 0.
  std::optional<double> hw_us_per_eval;
  std::string hw_time_source;       // "hardware" / "simulated" when hw_us_per_eval is set
  std::optional<unsigned int> qos;  // qos probe: the QoS of the row's compile, load and runs
  // Average power of the daemon's energy source over the timed iterations (the whole package or
  // chip) and tflops / watts; unset when not measured, with the reason in energy_unavailable.
  std::optional<double> watts;
  std::optional<double> tflops_per_watt;
  std::string energy_source;       // "rapl", "ioreport" when watts is set
  std::string energy_unavailable;  // why watts is unset ("" when set or not asked for)
};

struct Finding {
  std::string probe;
  std::string kind;  // "peak", "spill", "ratio", "latency", "qos", "not_applicable"
  std::string text;  // one human sentence
  double value = 0;  // the headline number (TFLOPS, MB, ratio, us)
};

// A point of a throughput curve and a detected drop.
struct CurvePoint {
  double x = 0;  // working-set size (MB)
  double y = 0;  // throughput
};
struct SpillPoint {
  size_t index = 0;         // first point past the drop (index into the x-sorted curve)
  double x_before = 0;      // the last size before the drop
  double x_after = 0;       // the first size after it
  double level_before = 0;  // best throughput of the plateau before
  double level_after = 0;   // throughput after
  double drop = 0;          // 1 - level_after / level_before
};
// Finds where throughput falls by at least `min_drop` (fraction) below the best value seen since
// the previous spill and stays down at the next point too (a single slow point is noise; the last
// point needs no confirmation). Points are sorted by x first. Pure.
std::vector<SpillPoint> DetectSpills(std::vector<CurvePoint> curve, double min_drop = 0.25);

struct Fingerprint {
  std::string os;      // "Linux 6.1.0 x86_64"
  std::string cpu;     // /proc/cpuinfo model name, or sysctl machdep.cpu.brand_string
  int cpu_cores = 0;   // online logical CPUs
  std::string caches;  // "L1d 48K, L2 2048K, L3 307200K" (empty when unknown)
  std::string backend, backend_version, device;
  std::string anerd_version;
};
Fingerprint MachineFingerprint(const backend::BackendDescription& backend);

struct ProbeSummary {
  std::string probe;
  std::vector<Finding> findings;
  std::vector<SpillPoint> spills;  // sram
  double peak_tflops = 0;          // the %peak reference used (0 when not measured)
  std::string peak_source;         // "stated (ANE M4, seed)", "measured: ...", "given"
  double wall_seconds = 0;
  int rows = 0;
};

// Returns OK to continue or the reason to stop (CANCELLED, DEADLINE_EXCEEDED).
using CheckFn = std::function<absl::Status()>;
using RowFn = std::function<void(const ProbeRow&)>;
// The energy sampler's cached snapshot (no I/O; server/telemetry/energy_sampler.h).
using EnergyFn = std::function<telemetry::EnergySnapshot()>;

// Number of rows RunProbe will emit for `options` (for progress displays).
int PlannedRows(const ProbeOptions& options);

// Runs the probe on `backend` (see the file comment). Errors: ValidateOptions' errors, the
// backend's compile/run errors, and `check`'s status when it stops the run.
// With `energy`, each row gets the average power over its timed iterations (ProbeRow::watts).
absl::StatusOr<ProbeSummary> RunProbe(backend::Backend* backend, const ProbeOptions& options,
                                      const CheckFn& check, const RowFn& on_row,
                                      const EnergyFn& energy = {});

}  // namespace anerd::probes

#endif  // ANERD_SERVER_PROBES_PROBE_H_
