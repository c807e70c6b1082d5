// CPU package energy from Linux RAPL (powercap): <root>/class/powercap/intel-rapl:N/energy_uj,
// one top-level zone per package (sub-zones intel-rapl:N:M are parts of it and not added). The
// counters are microjoules that wrap at max_energy_range_uj; the source keeps a cumulative total
// per package across wraps (one wrap per read at most: the sampler reads far more often than the
// fastest wrap, ~an hour at 60 W for a 32-bit-ish range).
// Since Linux 5.10 energy_uj is readable by root only; Open then says so instead of reporting 0.
// Thread-safety: one thread at a time (EnergySource).
#ifndef ANERD_SERVER_TELEMETRY_RAPL_SOURCE_H_
#define ANERD_SERVER_TELEMETRY_RAPL_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/telemetry/energy_source.h"

namespace anerd::telemetry {

// The energy consumed between two readings of a counter that wraps at `max_range` (both in the
// counter's units): `now - before`, or `max_range - before + now` after a wrap. INVALID_ARGUMENT
// when a value lies outside [0, max_range].
absl::StatusOr<uint64_t> CounterDelta(uint64_t before, uint64_t now, uint64_t max_range);

class RaplSource : public EnergySource {
 public:
  // Finds the package zones under `sysfs_root` ("/sys"; a temporary tree in tests) and reads them
  // once. UNAVAILABLE with the reason: no powercap tree, no intel-rapl zone, or a counter that
  // cannot be read (permissions) or parsed.
  static absl::StatusOr<std::unique_ptr<RaplSource>> Open(const std::string& sysfs_root);

  std::string name() const override { return "rapl"; }
  absl::StatusOr<EnergyReading> Read() override;

 private:
  struct Zone {
    std::string domain;  // "package-0" (from the zone's `name` file, else the directory)
    std::string energy_path;
    uint64_t max_range = 0;
    uint64_t last = 0;
    double joules = 0;  // cumulative since Open
  };
  explicit RaplSource(std::vector<Zone> zones) : zones_(std::move(zones)) {}
  std::vector<Zone> zones_;
};

}  // namespace anerd::telemetry

#endif  // ANERD_SERVER_TELEMETRY_RAPL_SOURCE_H_
