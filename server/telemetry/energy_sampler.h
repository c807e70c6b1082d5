// The telemetry thread: reads an energy source every `period` and keeps the last two readings
// (and the thermal state), so that callers on device executor threads — the training step, the
// probe runner — take a snapshot without any I/O (one mutex, no syscalls) and turn two
// snapshots into the energy of what ran between them (EnergyOver).
//
// Energy of an interval: the average power between the readings that bracket it, times its wall
// time; when no reading fell inside it (shorter than the period), the power of the latest
// sampled interval. It is the whole domain's energy (package, ANE...), not this process's: other
// work on the machine counts too.
// Thread-safety: Snapshot() from any thread; destruction stops and joins the thread.
#ifndef ANERD_SERVER_TELEMETRY_ENERGY_SAMPLER_H_
#define ANERD_SERVER_TELEMETRY_ENERGY_SAMPLER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/telemetry/energy_source.h"

namespace anerd::telemetry {

struct EnergySnapshot {
  std::string source;       // "rapl", "ioreport" (the one tried, when unavailable)
  std::string unavailable;  // why there is no energy figure; empty when available
  std::optional<EnergyReading> latest, previous;  // cumulative readings, newest first
  std::optional<std::string> thermal;             // ReadThermalState() at the latest sample
  bool available() const { return unavailable.empty() && latest.has_value(); }
  // Watts per domain over the latest sampled interval (empty before two readings).
  std::map<std::string, double> Watts() const;
};

struct IntervalEnergy {
  double joules = 0;  // over the interval, all domains
  double watts = 0;   // average power used
};

// The energy of an interval of `wall_seconds` that began at `start` and ended at `end` (see the
// file comment); nullopt when either snapshot has no energy or no power is known yet.
std::optional<IntervalEnergy> EnergyOver(const EnergySnapshot& start, const EnergySnapshot& end,
                                         double wall_seconds);

class EnergySampler {
 public:
  // Takes the platform's source (or its absence, reported by every snapshot) and starts sampling
  // every `period` when there is a source.
  EnergySampler(PlatformEnergy platform, absl::Duration period);
  ~EnergySampler();
  EnergySampler(const EnergySampler&) = delete;
  EnergySampler& operator=(const EnergySampler&) = delete;

  EnergySnapshot Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  // Takes one reading now, on the caller's thread (tests; the thread does this every period).
  void SampleNow() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  std::unique_ptr<EnergySource> source_;  // used by the sampling thread (or SampleNow) only
  const absl::Duration period_;
  mutable absl::Mutex mu_;
  EnergySnapshot snapshot_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex sample_mu_;  // one reading at a time
  std::thread thread_;
};

}  // namespace anerd::telemetry

#endif  // ANERD_SERVER_TELEMETRY_ENERGY_SAMPLER_H_
