// The machine fingerprint stored with every probe result.
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/version.h"
#include "server/probes/probe.h"

namespace anerd::probes {
namespace {

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

// First line of `command`'s output (macOS sysctl), or "".
std::string CommandOutput(const char* command) {
  FILE* pipe = ::popen(command, "r");
  if (pipe == nullptr) return "";
  char buffer[256] = {};
  const bool got = std::fgets(buffer, sizeof(buffer), pipe) != nullptr;
  ::pclose(pipe);
  return got ? std::string(absl::StripAsciiWhitespace(buffer)) : "";
}

std::string CpuModel() {
  if (kIsMacOS) return CommandOutput("/usr/sbin/sysctl -n machdep.cpu.brand_string 2>/dev/null");
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "model name") || absl::StartsWith(line, "Model")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "";
}

// "L1d 48K, L2 2048K, L3 307200K" from sysfs (cpu0's view), or from sysctl on macOS.
std::string CacheSizes() {
  if (kIsMacOS) {
    const std::string l1 = CommandOutput("/usr/sbin/sysctl -n hw.l1dcachesize 2>/dev/null");
    const std::string l2 = CommandOutput("/usr/sbin/sysctl -n hw.l2cachesize 2>/dev/null");
    if (l1.empty() && l2.empty()) return "";
    return absl::StrCat("L1d ", l1, ", L2 ", l2);
  }
  std::vector<std::string> parts;
  for (int i = 0; i < 8; ++i) {
    const std::string dir = absl::StrCat("/sys/devices/system/cpu/cpu0/cache/index", i, "/");
    const std::string level = ReadLine(dir + "level");
    if (level.empty()) break;
    const std::string type = ReadLine(dir + "type");
    if (type == "Instruction") continue;
    parts.push_back(
        absl::StrCat("L", level, type == "Data" ? "d" : "", " ", ReadLine(dir + "size")));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

Fingerprint MachineFingerprint(const backend::BackendDescription& backend) {
  Fingerprint f;
  utsname u{};
  f.os = uname(&u) == 0 ? absl::StrCat(u.sysname, " ", u.release, " ", u.machine) : kSystem;
  f.cpu = CpuModel();
  f.cpu_cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  f.caches = CacheSizes();
  f.backend = backend.name;
  f.backend_version = backend.version;
  f.device = backend.device;
  f.anerd_version = kVersion;
  return f;
}

}  // namespace anerd::probes
