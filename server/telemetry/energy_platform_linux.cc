// Linux: CPU package energy from RAPL; no thermal state.
#include <memory>
#include <utility>

#include "server/telemetry/energy_source.h"
#include "server/telemetry/rapl_source.h"

namespace anerd::telemetry {

PlatformEnergy OpenPlatformEnergy(const std::string& sysfs_root) {
  PlatformEnergy p;
  p.source_name = "rapl";
  absl::StatusOr<std::unique_ptr<RaplSource>> rapl = RaplSource::Open(sysfs_root);
  if (rapl.ok()) {
    p.source = *std::move(rapl);
  } else {
    p.unavailable = std::string(rapl.status().message());
  }
  return p;
}

std::optional<std::string> ReadThermalState() { return std::nullopt; }

}  // namespace anerd::telemetry
