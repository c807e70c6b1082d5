// macOS: ANE/CPU/GPU/DRAM energy from IOReport's "Energy Model" group (libIOReport, no sudo),
// and NSProcessInfo's thermal state. Only the IOReport and Foundation calls are here: which
// channel counts toward which domain, the units and the sums are ioreport_energy.cc's, tested
// on Linux. Compiled on macOS only (server/telemetry/CMakeLists.txt).
//
// IOReport is a private C library (no Objective-C names): subscribe to the group's channels once,
// then each Read() takes a sample, asks for the delta against the previous sample and adds the
// delta's joules to the running totals. Ownership: every CF object made by a Copy/Create call is
// released here; the subscription is a CF object too.
#import <Foundation/Foundation.h>

#include <CoreFoundation/CoreFoundation.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/telemetry/energy_source.h"
#include "server/telemetry/ioreport_energy.h"

typedef struct IOReportSubscriptionCF* IOReportSubscriptionRef;

extern "C" {
CFDictionaryRef IOReportCopyChannelsInGroup(CFStringRef group, CFStringRef subgroup, uint64_t a,
                                            uint64_t b, uint64_t c);
IOReportSubscriptionRef IOReportCreateSubscription(void* a, CFMutableDictionaryRef desired,
                                                   CFMutableDictionaryRef* subscribed,
                                                   uint64_t channel_id, CFTypeRef b);
CFDictionaryRef IOReportCreateSamples(IOReportSubscriptionRef subscription,
                                      CFMutableDictionaryRef channels, CFTypeRef a);
CFDictionaryRef IOReportCreateSamplesDelta(CFDictionaryRef before, CFDictionaryRef after,
                                           CFTypeRef a);
CFStringRef IOReportChannelGetGroup(CFDictionaryRef channel);
CFStringRef IOReportChannelGetChannelName(CFDictionaryRef channel);
CFStringRef IOReportChannelGetUnitLabel(CFDictionaryRef channel);
int64_t IOReportSimpleGetIntegerValue(CFDictionaryRef channel, int32_t index);
}

namespace anerd::telemetry {
namespace {

std::string ToStdString(CFStringRef s) {
  if (s == nullptr) return "";
  char buf[256];
  if (CFStringGetCString(s, buf, sizeof(buf), kCFStringEncodingUTF8)) return buf;
  return "";
}

// The channel deltas of one IOReportCreateSamplesDelta result (not owned).
std::vector<ChannelDelta> ChannelDeltas(CFDictionaryRef delta) {
  std::vector<ChannelDelta> out;
  const void* channels = CFDictionaryGetValue(delta, CFSTR("IOReportChannels"));
  if (channels == nullptr || CFGetTypeID(channels) != CFArrayGetTypeID()) return out;
  const auto array = static_cast<CFArrayRef>(channels);
  for (CFIndex i = 0; i < CFArrayGetCount(array); ++i) {
    const void* item = CFArrayGetValueAtIndex(array, i);
    if (item == nullptr || CFGetTypeID(item) != CFDictionaryGetTypeID()) continue;
    const auto channel = static_cast<CFDictionaryRef>(item);
    ChannelDelta d;
    d.group = ToStdString(IOReportChannelGetGroup(channel));
    d.channel = ToStdString(IOReportChannelGetChannelName(channel));
    if (EnergyDomainOfChannel(d.group, d.channel).empty()) continue;
    d.unit = ToStdString(IOReportChannelGetUnitLabel(channel));
    d.value = IOReportSimpleGetIntegerValue(channel, 0);
    out.push_back(std::move(d));
  }
  return out;
}

class IoReportSource : public EnergySource {
 public:
  IoReportSource(CFMutableDictionaryRef channels, IOReportSubscriptionRef subscription,
                 CFDictionaryRef first)
      : channels_(channels), subscription_(subscription), last_(first) {}
  ~IoReportSource() override {
    if (last_ != nullptr) CFRelease(last_);
    if (subscription_ != nullptr) CFRelease(reinterpret_cast<CFTypeRef>(subscription_));
    if (channels_ != nullptr) CFRelease(channels_);
  }

  std::string name() const override { return "ioreport"; }

  absl::StatusOr<EnergyReading> Read() override {
    CFDictionaryRef now = IOReportCreateSamples(subscription_, channels_, nullptr);
    if (now == nullptr) return absl::UnavailableError("IOReportCreateSamples returned nothing");
    CFDictionaryRef delta = IOReportCreateSamplesDelta(last_, now, nullptr);
    CFRelease(last_);
    last_ = now;
    if (delta == nullptr) return absl::UnavailableError("IOReportCreateSamplesDelta failed");
    absl::StatusOr<std::map<std::string, double>> joules = SumEnergyDeltas(ChannelDeltas(delta));
    CFRelease(delta);
    if (!joules.ok()) return absl::UnavailableError(joules.status().message());
    for (const auto& [domain, j] : *joules) totals_[domain] += j;
    EnergyReading r;
    r.time = absl::Now();
    r.joules = totals_;
    return r;
  }

 private:
  CFMutableDictionaryRef channels_;
  IOReportSubscriptionRef subscription_;
  CFDictionaryRef last_;
  std::map<std::string, double> totals_;  // cumulative since the subscription
};

}  // namespace

PlatformEnergy OpenPlatformEnergy(const std::string&) {
  PlatformEnergy p;
  p.source_name = "ioreport";
  CFDictionaryRef group = IOReportCopyChannelsInGroup(CFSTR("Energy Model"), nullptr, 0, 0, 0);
  if (group == nullptr) {
    p.unavailable = "IOReport has no \"Energy Model\" channel group on this Mac";
    return p;
  }
  CFMutableDictionaryRef channels =
      CFDictionaryCreateMutableCopy(kCFAllocatorDefault, CFDictionaryGetCount(group), group);
  CFRelease(group);
  CFMutableDictionaryRef subscribed = nullptr;
  IOReportSubscriptionRef subscription =
      IOReportCreateSubscription(nullptr, channels, &subscribed, 0, nullptr);
  if (subscribed != nullptr) CFRelease(subscribed);
  if (subscription == nullptr) {
    CFRelease(channels);
    p.unavailable = "IOReportCreateSubscription failed for the \"Energy Model\" group";
    return p;
  }
  CFDictionaryRef first = IOReportCreateSamples(subscription, channels, nullptr);
  if (first == nullptr) {
    CFRelease(reinterpret_cast<CFTypeRef>(subscription));
    CFRelease(channels);
    p.unavailable = "IOReportCreateSamples returned nothing";
    return p;
  }
  p.source = std::make_unique<IoReportSource>(channels, subscription, first);
  return p;
}

std::optional<std::string> ReadThermalState() {
  @autoreleasepool {
    switch ([[NSProcessInfo processInfo] thermalState]) {
      case NSProcessInfoThermalStateNominal:
        return std::string("nominal");
      case NSProcessInfoThermalStateFair:
        return std::string("fair");
      case NSProcessInfoThermalStateSerious:
        return std::string("serious");
      case NSProcessInfoThermalStateCritical:
        return std::string("critical");
    }
  }
  return std::nullopt;
}

}  // namespace anerd::telemetry
