// Probe names, the seed's default grids and option validation.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/probes/probe.h"
#include "server/probes/programs.h"

namespace anerd::probes {
namespace {

struct KindName {
  ProbeKind kind;
  const char* name;
};
constexpr KindName kKindNames[] = {{ProbeKind::kPeak, "peak"},       {ProbeKind::kSram, "sram"},
                                   {ProbeKind::kLatency, "latency"}, {ProbeKind::kInt8, "int8"},
                                   {ProbeKind::kQos, "qos"},         {ProbeKind::kAll, "all"}};

bool FixedDepth(ProbeKind kind) { return kind == ProbeKind::kSram || kind == ProbeKind::kLatency; }

absl::Status PointError(size_t i, const char* field, int64_t value, int64_t max) {
  return absl::InvalidArgumentError(
      absl::StrCat("grid[", i, "].", field, " = ", value, " is outside 1..", max));
}

}  // namespace

absl::string_view ProbeKindName(ProbeKind kind) {
  for (const KindName& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

absl::StatusOr<ProbeKind> ProbeKindFromName(absl::string_view name, absl::string_view field) {
  for (const KindName& k : kKindNames) {
    if (name == k.name) return k.kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": unknown probe '", name, "' (expected peak, sram, latency, int8, qos or all)"));
}

std::vector<GridPoint> DefaultGrid(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kPeak:  // inmem_peak
      return {{512, 64, 32}, {512, 64, 48},  {512, 64, 64},  {512, 64, 96}, {512, 64, 128},
              {256, 64, 64}, {256, 64, 128}, {256, 64, 256}, {384, 64, 64}, {384, 64, 128}};
    case ProbeKind::kSram: {  // sram_probe (sram_bench's channels are a subset)
      std::vector<GridPoint> grid;
      for (int64_t ch : {256, 512, 1024, 1536, 2048, 2560, 3072, 3584, 4096, 4608, 5120, 6144}) {
        grid.push_back({ch, 64, 1});
      }
      grid.push_back({8192, 32, 1});
      return grid;
    }
    case ProbeKind::kLatency:
      return {{64, 64, 1}, {256, 64, 1}};
    case ProbeKind::kInt8:  // ane_int8_bench: [1, ch, sp, sp]
      return {{512, 64, 128}, {512, 64, 64}, {256, 64, 256}, {256, 64, 128}, {384, 64, 128}};
    case ProbeKind::kQos:
    case ProbeKind::kAll:
      return {};
  }
  return {};
}

std::vector<unsigned int> QosSweep() {
  return {0, 1, 5, 10, 15, 17, 19, 21, 25, 31, 33, 40, 47, 50, 55, 60, 63};
}

absl::Status ValidateGrid(ProbeKind kind, const std::vector<GridPoint>& grid) {
  if (grid.size() > static_cast<size_t>(kMaxGridPoints)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid has ", grid.size(), " points; the limit is ", kMaxGridPoints));
  }
  if (!grid.empty() && (kind == ProbeKind::kQos || kind == ProbeKind::kAll)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid: the ", ProbeKindName(kind), " probe takes no grid"));
  }
  for (size_t i = 0; i < grid.size(); ++i) {
    const GridPoint& p = grid[i];
    if (p.channels < 1 || p.channels > kMaxProbeChannels) {
      return PointError(i, "channels", p.channels, kMaxProbeChannels);
    }
    if (p.spatial < 1 || p.spatial > kMaxProbeSpatial) {
      return PointError(i, "spatial", p.spatial, kMaxProbeSpatial);
    }
    if (p.depth < 1 || p.depth > kMaxProbeDepth) {
      return PointError(i, "depth", p.depth, kMaxProbeDepth);
    }
    if (FixedDepth(kind) && p.depth != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("grid[", i, "].depth must be 1 for the ", ProbeKindName(kind), " probe"));
    }
    // One activation tensor (int8: ch * sp * sp) must stay within the programs' element bound.
    const int64_t positions = kind == ProbeKind::kInt8 ? p.spatial * p.spatial : p.spatial;
    if (p.channels * positions > (int64_t{1} << 28)) {
      return absl::InvalidArgumentError(
          absl::StrCat("grid[", i, "]: ", p.channels, " channels x ", positions,
                       " positions is more than 2^28 activation elements"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOptions(const ProbeOptions& options) {
  if (options.repeat < 0 || options.repeat > kMaxRepeat) {
    return absl::InvalidArgumentError(
        absl::StrCat("repeat = ", options.repeat, " is outside 0..", kMaxRepeat));
  }
  if (options.warmup && (*options.warmup < 0 || *options.warmup > kMaxRepeat)) {
    return absl::InvalidArgumentError(
        absl::StrCat("warmup = ", *options.warmup, " is outside 0..", kMaxRepeat));
  }
  if (!(options.row_budget_seconds > 0 && options.row_budget_seconds <= 3600)) {
    return absl::InvalidArgumentError("row_budget_seconds must be in (0, 3600]");
  }
  if (!(options.peak_tflops >= 0 && options.peak_tflops < 1e6)) {
    return absl::InvalidArgumentError("peak_tflops must be >= 0 (0 = the backend's reference)");
  }
  return ValidateGrid(options.kind, options.grid);
}

int PlannedRows(const ProbeOptions& options) {
  auto grid_size = [&](ProbeKind kind) {
    return static_cast<int>(kind == options.kind && !options.grid.empty()
                                ? options.grid.size()
                                : DefaultGrid(kind).size());
  };
  switch (options.kind) {
    case ProbeKind::kInt8:
      return 2 * grid_size(ProbeKind::kInt8);
    case ProbeKind::kQos:  // on backends with QoS; none elsewhere
      return static_cast<int>(QosSweep().size());
    case ProbeKind::kAll:
      return grid_size(ProbeKind::kPeak) + grid_size(ProbeKind::kSram) +
             grid_size(ProbeKind::kLatency) + 2 * grid_size(ProbeKind::kInt8) +
             static_cast<int>(QosSweep().size());
    default:
      return grid_size(options.kind);
  }
}

}  // namespace anerd::probes
