// Probe cost estimates and the budget check made before a probe starts.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/probes/probe.h"

namespace anerd::probes {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr int kActivationBuffers = 6;  // see ProbeCost
// The peak probe's reference point on backends without a stated peak (runner.cc, ResolvePeak).
constexpr GridPoint kPeakReference{1024, 1024, 4};

absl::Status CheckPoint(ProbeKind kind, const GridPoint& p, const std::string& where,
                        const ProbeBudget& budget) {
  const ProbeCost cost = EstimateCost(kind, p);
  const std::string point =
      absl::StrFormat("%s (%s probe, %d channels, spatial %d, depth %d)", where,
                      ProbeKindName(kind), p.channels, p.spatial, p.depth);
  if (budget.max_bytes > 0 && cost.bytes > static_cast<double>(budget.max_bytes)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s needs an estimated %.2f GiB of memory; the limit is %.2f GiB (raise it with anerd "
        "--max-probe-bytes, or use a smaller grid point)",
        point, cost.bytes / kGiB, static_cast<double>(budget.max_bytes) / kGiB));
  }
  if (budget.max_gflop > 0 && cost.gflop > budget.max_gflop) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s needs an estimated %.0f GFLOP per evaluation; the limit is %.0f GFLOP (raise it "
        "with anerd --max-probe-gflop, or use a smaller grid point)",
        point, cost.gflop, budget.max_gflop));
  }
  return absl::OkStatus();
}

absl::Status CheckGrid(ProbeKind kind, const std::vector<GridPoint>& grid, bool given,
                       const ProbeBudget& budget) {
  for (size_t i = 0; i < grid.size(); ++i) {
    const std::string where =
        given ? absl::StrCat("grid[", i, "]") : absl::StrCat("default grid point ", i);
    if (absl::Status s = CheckPoint(kind, grid[i], where, budget); !s.ok()) return s;
  }
  if (kind == ProbeKind::kPeak) {
    return CheckPoint(kind, kPeakReference, "the peak reference point", budget);
  }
  return absl::OkStatus();
}

}  // namespace

ProbeCost EstimateCost(ProbeKind kind, const GridPoint& p) {
  const double c = static_cast<double>(p.channels);
  const double positions = kind == ProbeKind::kInt8 ? static_cast<double>(p.spatial) * p.spatial
                                                    : static_cast<double>(p.spatial);
  const double weights = c * c * p.depth;
  // fp16 weight files (int8's fp16 variant is the larger of its two), held twice while
  // compiling, plus their fp32 decoding.
  const double weight_bytes = weights * (2 * 2 + 4);
  const double activation_bytes = kActivationBuffers * c * positions * 4;
  return {weight_bytes + activation_bytes, 2 * weights * positions / 1e9};
}

absl::Status CheckBudget(const ProbeOptions& options, const ProbeBudget& budget) {
  if (options.kind != ProbeKind::kAll) {
    const bool given = !options.grid.empty();
    return CheckGrid(options.kind, given ? options.grid : DefaultGrid(options.kind), given, budget);
  }
  for (ProbeKind k : {ProbeKind::kPeak, ProbeKind::kSram, ProbeKind::kLatency, ProbeKind::kInt8}) {
    if (absl::Status s = CheckGrid(k, DefaultGrid(k), false, budget); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace anerd::probes
