#include "server/telemetry/energy_sampler.h"

#include <utility>

#include "spdlog/spdlog.h"

namespace anerd::telemetry {
namespace {

double Seconds(const EnergyReading& a, const EnergyReading& b) {
  return absl::ToDoubleSeconds(b.time - a.time);
}

}  // namespace

std::map<std::string, double> EnergySnapshot::Watts() const {
  std::map<std::string, double> watts;
  if (!available() || !previous.has_value()) return watts;
  const double dt = Seconds(*previous, *latest);
  if (!(dt > 0)) return watts;
  for (const auto& [domain, j] : latest->joules) {
    const auto before = previous->joules.find(domain);
    if (before != previous->joules.end()) watts[domain] = (j - before->second) / dt;
  }
  return watts;
}

std::optional<IntervalEnergy> EnergyOver(const EnergySnapshot& start, const EnergySnapshot& end,
                                         double wall_seconds) {
  if (!start.available() || !end.available() || start.source != end.source ||
      !(wall_seconds >= 0)) {
    return std::nullopt;
  }
  double watts = 0;
  const double dt = Seconds(*start.latest, *end.latest);
  if (dt > 0) {
    watts = (end.latest->total() - start.latest->total()) / dt;
  } else if (end.previous.has_value() && Seconds(*end.previous, *end.latest) > 0) {
    watts = (end.latest->total() - end.previous->total()) / Seconds(*end.previous, *end.latest);
  } else {
    return std::nullopt;
  }
  if (!(watts >= 0)) return std::nullopt;
  return IntervalEnergy{watts * wall_seconds, watts};
}

EnergySampler::EnergySampler(PlatformEnergy platform, absl::Duration period)
    : source_(std::move(platform.source)), period_(period) {
  snapshot_.source = platform.source_name;
  snapshot_.unavailable = platform.unavailable;
  if (source_ == nullptr) {
    if (snapshot_.unavailable.empty()) snapshot_.unavailable = "no energy source";
    snapshot_.thermal = ReadThermalState();
    return;
  }
  SampleNow();
  thread_ = std::thread([this] { Loop(); });
}

EnergySampler::~EnergySampler() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

EnergySnapshot EnergySampler::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

void EnergySampler::SampleNow() {
  if (source_ == nullptr) return;
  absl::MutexLock one(&sample_mu_);
  absl::StatusOr<EnergyReading> r = source_->Read();  // blocking I/O, without mu_
  std::optional<std::string> thermal = ReadThermalState();
  absl::MutexLock lock(&mu_);
  snapshot_.thermal = std::move(thermal);
  if (!r.ok()) {
    if (snapshot_.unavailable.empty()) {
      spdlog::warn("energy telemetry ({}) stopped: {}", snapshot_.source, r.status().ToString());
    }
    snapshot_.unavailable = std::string(r.status().message());
    snapshot_.latest.reset();
    snapshot_.previous.reset();
    return;
  }
  snapshot_.unavailable.clear();
  snapshot_.previous = std::move(snapshot_.latest);
  snapshot_.latest = *std::move(r);
}

void EnergySampler::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), period_)) return;
    }
    SampleNow();
  }
}

}  // namespace anerd::telemetry
