#include "server/telemetry/ioreport_energy.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace anerd::telemetry {
namespace {

// "DIE_1_CPU Energy" → "CPU Energy": Ultra chips prefix each die's channels.
absl::string_view StripDie(absl::string_view name) {
  if (!absl::StartsWith(name, "DIE_")) return name;
  const size_t underscore = name.find('_', 4);
  return underscore == absl::string_view::npos ? name : name.substr(underscore + 1);
}

}  // namespace

std::string EnergyDomainOfChannel(absl::string_view group, absl::string_view channel) {
  if (group != "Energy Model") return "";
  const absl::string_view name = StripDie(channel);
  if (name == "CPU Energy") return "cpu";
  if (name == "GPU Energy") return "gpu";
  if (absl::StartsWith(name, "ANE")) return "ane";
  if (absl::StartsWith(name, "DRAM")) return "dram";
  return "";
}

absl::StatusOr<double> JoulesPerUnit(absl::string_view label) {
  const absl::string_view unit = absl::StripAsciiWhitespace(label);
  if (unit == "J") return 1.0;
  if (unit == "mJ") return 1e-3;
  if (unit == "uJ" || unit == "\xC2\xB5J") return 1e-6;  // also the micro sign
  if (unit == "nJ") return 1e-9;
  return absl::InvalidArgumentError(absl::StrCat("unknown energy unit '", label, "'"));
}

absl::StatusOr<std::map<std::string, double>> SumEnergyDeltas(
    const std::vector<ChannelDelta>& deltas) {
  std::map<std::string, double> joules;
  for (const ChannelDelta& d : deltas) {
    const std::string domain = EnergyDomainOfChannel(d.group, d.channel);
    if (domain.empty()) continue;
    absl::StatusOr<double> scale = JoulesPerUnit(d.unit);
    if (!scale.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("channel '", d.channel, "': ", scale.status().message()));
    }
    if (d.value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("channel '", d.channel, "': negative energy ", d.value));
    }
    joules[domain] += static_cast<double>(d.value) * *scale;
  }
  return joules;
}

absl::StatusOr<std::map<std::string, double>> DomainWatts(
    const std::map<std::string, double>& joules, double seconds) {
  if (!(seconds > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("interval of ", seconds, " s"));
  }
  std::map<std::string, double> watts;
  for (const auto& [domain, j] : joules) watts[domain] = j / seconds;
  return watts;
}

absl::StatusOr<std::vector<ChannelDelta>> ParseChannelDump(absl::string_view text) {
  std::vector<ChannelDelta> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (absl::StripAsciiWhitespace(line).empty() || absl::StartsWith(line, "#")) continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
    ChannelDelta d;
    if (f.size() != 4 || !absl::SimpleAtoi(f[3], &d.value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": want group<TAB>channel<TAB>unit<TAB>integer"));
    }
    d.group = std::string(f[0]);
    d.channel = std::string(f[1]);
    d.unit = std::string(f[2]);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace anerd::telemetry
