// The portable half of the IOReport energy source (macOS; the calls themselves are in
// energy_platform_macos.mm): which "Energy Model" channel counts toward which domain, the units,
// and the sum of one delta sample into joules per domain. Tested on Linux with channel dumps
// under tests/telemetry/fixtures/.
//
// Channels (docs: ane-rules-evidence "Energy and thermal"; macmon's classification):
//   "CPU Energy" and the per-die "DIE_<n>_CPU Energy" (Ultra) → cpu;
//   "GPU Energy" → gpu (the per-core "GPU0"... channels are parts of it and not added);
//   "ANE" (base chips), "ANE0" (Pro/Max), "ANE0_<n>"/"DIE_<n>_ANE..." (Ultra) → ane;
//   "DRAM", "DRAM0"... → dram; every other channel (per-cluster, per-core, SRAM) → none, so no
//   energy is counted twice. Only group "Energy Model" counts (base M1/M2's "PMP" group repeats
//   the ANE channel).
// Units: the channel's unit label "mJ", "uJ" (also "µJ"), "nJ" or "J"; any other label is an
// error, never a guess.
// Thread-safety: pure functions.
#ifndef ANERD_SERVER_TELEMETRY_IOREPORT_ENERGY_H_
#define ANERD_SERVER_TELEMETRY_IOREPORT_ENERGY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::telemetry {

// "cpu", "gpu", "ane", "dram", or "" for a channel that is not counted.
std::string EnergyDomainOfChannel(absl::string_view group, absl::string_view channel);

// Joules per one unit of `label`; INVALID_ARGUMENT naming an unknown label.
absl::StatusOr<double> JoulesPerUnit(absl::string_view label);

// One channel of an IOReport delta sample (IOReportCreateSamplesDelta): its group, name, unit
// label and integer value (the energy over the interval, in that unit).
struct ChannelDelta {
  std::string group;
  std::string channel;
  std::string unit;
  int64_t value = 0;
};

// Joules per domain over the interval; domains with no counted channel are absent. An unknown
// unit on a counted channel or a negative value is INVALID_ARGUMENT naming the channel.
absl::StatusOr<std::map<std::string, double>> SumEnergyDeltas(
    const std::vector<ChannelDelta>& deltas);

// Watts per domain: joules / seconds (INVALID_ARGUMENT unless seconds > 0).
absl::StatusOr<std::map<std::string, double>> DomainWatts(
    const std::map<std::string, double>& joules, double seconds);

// A recorded channel dump (fixtures, and `anerd` logs on a Mac): one channel per line,
// "group<TAB>channel<TAB>unit<TAB>value"; '#' lines and blank lines are skipped.
// INVALID_ARGUMENT naming the 1-based line. Input is bounded by the caller.
absl::StatusOr<std::vector<ChannelDelta>> ParseChannelDump(absl::string_view text);

}  // namespace anerd::telemetry

#endif  // ANERD_SERVER_TELEMETRY_IOREPORT_ENERGY_H_
