// Energy telemetry sources (issue 21 item 3): a small interface over the platform's energy
// counters — IOReport's "Energy Model" group on macOS (ioreport_energy.h), RAPL on Linux
// (rapl_source.h) — read by the sampler thread (energy_sampler.h), never by a device executor.
//
// Units: joules, seconds. A reading is cumulative per domain since an arbitrary origin of that
// source (only differences between two readings of one source mean anything). Domains: "cpu",
// "gpu", "ane", "dram" (IOReport), "package-N" (RAPL). A source that cannot read says why; it
// never reports zero for what it could not measure.
// Thread-safety: a source is used by one thread at a time (the sampler's).
#ifndef ANERD_SERVER_TELEMETRY_ENERGY_SOURCE_H_
#define ANERD_SERVER_TELEMETRY_ENERGY_SOURCE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anerd::telemetry {

struct EnergyReading {
  absl::Time time;                       // when the counters were read
  std::map<std::string, double> joules;  // cumulative per domain
  double total() const {
    double sum = 0;
    for (const auto& [domain, j] : joules) sum += j;
    return sum;
  }
};

class EnergySource {
 public:
  virtual ~EnergySource() = default;
  // "ioreport", "rapl".
  virtual std::string name() const = 0;
  // Reads the counters now (may block on file or kernel I/O). UNAVAILABLE naming why when the
  // counters cannot be read any more.
  virtual absl::StatusOr<EnergyReading> Read() = 0;
};

// What the platform offers: a source, or why there is none ("no /sys/class/powercap/intel-rapl:*
// on this machine", "IOReport has no Energy Model channels"). Exactly one of the two is set.
struct PlatformEnergy {
  std::unique_ptr<EnergySource> source;
  std::string source_name;  // the source's name, or the one that was tried ("rapl", "ioreport")
  std::string unavailable;  // the reason, when `source` is null
};

// The platform's energy source: IOReport on macOS, RAPL under `sysfs_root` (normally "/sys") on
// Linux. One definition per platform (energy_platform_{macos.mm,linux.cc}), chosen by CMake.
PlatformEnergy OpenPlatformEnergy(const std::string& sysfs_root);

// The platform's thermal state ("nominal", "fair", "serious", "critical": NSProcessInfo
// thermalState on macOS), or nullopt where the platform gives none (Linux).
std::optional<std::string> ReadThermalState();

}  // namespace anerd::telemetry

#endif  // ANERD_SERVER_TELEMETRY_ENERGY_SOURCE_H_
