#include "server/telemetry/rapl_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace anerd::telemetry {
namespace {

// The first line of a small sysfs file (bounded: these hold one number or one word).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::UnavailableError(absl::StrCat(
        "cannot read ", path, ": ", std::strerror(errno),
        errno == EACCES ? " (energy_uj is readable by root only since Linux 5.10)" : ""));
  }
  std::string line;
  line.resize(64);
  in.read(line.data(), static_cast<std::streamsize>(line.size()));
  line.resize(static_cast<size_t>(in.gcount()));
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  return std::string(absl::StripAsciiWhitespace(line));
}

absl::StatusOr<uint64_t> ReadCounter(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  uint64_t v = 0;
  if (!absl::SimpleAtoi(*text, &v)) {
    return absl::UnavailableError(absl::StrCat(path, ": not a counter: '", *text, "'"));
  }
  return v;
}

// A top-level package zone: "intel-rapl:N" with no second colon.
bool IsPackageZone(const std::string& name) {
  return absl::StartsWith(name, "intel-rapl:") && std::count(name.begin(), name.end(), ':') == 1;
}

}  // namespace

absl::StatusOr<uint64_t> CounterDelta(uint64_t before, uint64_t now, uint64_t max_range) {
  if (before > max_range || now > max_range) {
    return absl::InvalidArgumentError(
        absl::StrCat("counter value ", std::max(before, now), " above its range ", max_range));
  }
  return now >= before ? now - before : max_range - before + now;
}

absl::StatusOr<std::unique_ptr<RaplSource>> RaplSource::Open(const std::string& sysfs_root) {
  const std::string dir = sysfs_root + "/class/powercap";
  std::error_code ec;
  std::vector<std::string> names;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (IsPackageZone(name)) names.push_back(name);
  }
  if (names.empty()) {
    return absl::UnavailableError(
        absl::StrCat("no RAPL package zone (", dir, "/intel-rapl:N) on this machine"));
  }
  std::sort(names.begin(), names.end());
  std::vector<Zone> zones;
  for (const std::string& name : names) {
    const std::string zone_dir = absl::StrCat(dir, "/", name);
    Zone z;
    absl::StatusOr<std::string> label = ReadSmallFile(zone_dir + "/name");
    z.domain = label.ok() && !label->empty() ? *label : name;
    z.energy_path = zone_dir + "/energy_uj";
    absl::StatusOr<uint64_t> range = ReadCounter(zone_dir + "/max_energy_range_uj");
    if (!range.ok()) return range.status();
    if (*range == 0) return absl::UnavailableError(zone_dir + "/max_energy_range_uj is 0");
    z.max_range = *range;
    absl::StatusOr<uint64_t> now = ReadCounter(z.energy_path);
    if (!now.ok()) return now.status();
    z.last = *now;
    zones.push_back(std::move(z));
  }
  return std::unique_ptr<RaplSource>(new RaplSource(std::move(zones)));
}

absl::StatusOr<EnergyReading> RaplSource::Read() {
  EnergyReading r;
  for (Zone& z : zones_) {
    absl::StatusOr<uint64_t> now = ReadCounter(z.energy_path);
    if (!now.ok()) return now.status();
    absl::StatusOr<uint64_t> delta = CounterDelta(z.last, *now, z.max_range);
    if (!delta.ok())
      return absl::UnavailableError(absl::StrCat(z.energy_path, ": ", delta.status().message()));
    z.last = *now;
    z.joules += static_cast<double>(*delta) * 1e-6;
    r.joules[z.domain] += z.joules;
  }
  r.time = absl::Now();
  return r;
}

}  // namespace anerd::telemetry
