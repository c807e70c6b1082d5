// The Apple device's per-model evaluation state: performance statistics and request bindings
// (ane_requests_apple.h). Every call follows docs/ANE_NOTES.md §1; sections are cited where a step
// comes from. Private names: each is a row of private_api.txt with the cast used here (checked on
// Linux by tests/backend/ane_objc_check.py, as ane_device_apple.mm is). NSError** arguments take
// nullptr, never nil (the GNU runtime's nil does not convert; see ane_device_apple.mm).
#import <Foundation/Foundation.h>
#include <objc/message.h>
#include <objc/runtime.h>

#include <vector>

#include "server/backend/ane/ane_requests_apple.h"

namespace anerd::backend::ane {
namespace {

// docs/ANE_NOTES.md §1.2: the exact C signature of each objc_msgSend (ARM64 needs exact casts).
using RequestFn = id (*)(Class, SEL, id, id, id, id, id, id, id);
// _ANEPerformanceStats (issue 18 item 6; recipe in ane-rules-evidence.md "Counters and QoS").
using StatsFactoryFn = id (*)(Class, SEL, unsigned long long);    // statsWithHardwareExecutionNS:
using DriverMaskFn = unsigned int (*)(Class, SEL, unsigned int);  // driverMaskForANEFMask:
using SetMaskFn = void (*)(id, SEL, unsigned int);                // setPerfStatsMask:
using HwTimeFn = unsigned long long (*)(id, SEL);                 // hwExecutionTime

// The ANEF mask asked for: Espresso's default bits (on an M3 Max any bit outside 0xF gives 0).
constexpr unsigned int kPerfStatsAnefMask = 0xF;

std::vector<uint64_t> Identities(const std::vector<SurfaceRef>& surfaces) {
  std::vector<uint64_t> out;
  out.reserve(surfaces.size());
  for (const SurfaceRef& s : surfaces) out.push_back(s.identity);
  return out;
}

// docs/ANE_NOTES.md §1.2, §1.5: inputs, indices @0..n-1, outputs, indices, weightsBuffer nil,
// perfStats `stats` (nil, or the _ANEPerformanceStats the evaluation fills), procedureIndex @0 (an
// NSNumber). Returns a retained request.
absl::StatusOr<id> BuildRequest(const Classes& classes, const std::vector<SurfaceRef>& inputs,
                                const std::vector<SurfaceRef>& outputs, id stats) {
  @autoreleasepool {
    NSMutableArray* in = [NSMutableArray array];
    NSMutableArray* in_idx = [NSMutableArray array];
    NSMutableArray* out = [NSMutableArray array];
    NSMutableArray* out_idx = [NSMutableArray array];
    for (size_t i = 0; i < inputs.size(); ++i) {
      [in addObject:inputs[i].object];
      [in_idx addObject:@(static_cast<int>(i))];
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      [out addObject:outputs[i].object];
      [out_idx addObject:@(static_cast<int>(i))];
    }
    @try {
      id request = ((RequestFn)objc_msgSend)(
          classes.request,
          @selector
          (requestWithInputs:
                inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:),
          in, in_idx, out, out_idx, nil, stats, @0);
      if (request == nil) return NilResult("ANE requestWithInputs failed");
      return [request retain];
    } @catch (NSException* e) {
      return FromNSException("ANE requestWithInputs failed", e);
    }
  }
}

}  // namespace

void PerfStats::Enable(const Classes& classes, id model) {
  if (classes.perf_stats == nil) return;
  @autoreleasepool {
    @try {
      const unsigned int mask = ((DriverMaskFn)objc_msgSend)(
          classes.perf_stats, @selector(driverMaskForANEFMask:), kPerfStatsAnefMask);
      if (mask == 0) return;
      ((SetMaskFn)objc_msgSend)(model, @selector(setPerfStatsMask:), mask);
      on_ = true;
      mask_ = mask;
    } @catch (NSException* e) {
      (void)e;  // no counters: evaluations report hardware time as absent
    }
  }
}

// Load options: @{} as the seed, plus Espresso's two perf-stats keys when the mask is set.
NSDictionary* PerfStats::LoadOptions() const {
  if (!on_) return @{};
  return @{
    @"kANEFPerformanceStatsMask" : @(mask_),
    @"kANEFModelLoadPerformanceStats" : [NSNumber numberWithBool:YES]
  };
}

id PerfStats::NewStats(const Classes& classes) const {
  if (!on_) return nil;
  @try {  // docs/ANE_NOTES.md §1.7: alloc/init returns nil; the factory works
    return ((StatsFactoryFn)objc_msgSend)(classes.perf_stats,
                                          @selector(statsWithHardwareExecutionNS:), 0ULL);
  } @catch (NSException* e) {
    return nil;
  }
}

// The stats object's hwExecutionTime (absent when 0: the mask was refused or set too late).
void PerfStats::ReadHardwareTime(id stats, PerfCounters* counters) {
  if (counters == nullptr || stats == nil) return;
  @autoreleasepool {
    @try {
      const unsigned long long ns = ((HwTimeFn)objc_msgSend)(stats, @selector(hwExecutionTime));
      if (ns > 0) counters->hardware_ns = static_cast<uint64_t>(ns);
    } @catch (NSException* e) {
      (void)e;  // absent
    }
  }
}

absl::StatusOr<const Binding*> RequestBindings::FindOrBind(const Classes& classes,
                                                           const PerfStats& stats,
                                                           const std::vector<SurfaceRef>& inputs,
                                                           const std::vector<SurfaceRef>& outputs) {
  const std::vector<uint64_t> in = Identities(inputs), out = Identities(outputs);
  for (const Binding& b : bindings_) {
    if (b.inputs == in && b.outputs == out) return &b;
  }
  @autoreleasepool {
    id stats_object = stats.NewStats(classes);
    absl::StatusOr<id> request = BuildRequest(classes, inputs, outputs, stats_object);
    if (!request.ok()) return request.status();
    if (bindings_.size() >= kMaxBindings) {
      [bindings_.front().request release];
      [bindings_.front().stats release];
      bindings_.erase(bindings_.begin());
    }
    bindings_.push_back(Binding{in, out, *request, [stats_object retain]});
    return &bindings_.back();
  }
}

void RequestBindings::Clear() {
  @autoreleasepool {
    for (Binding& b : bindings_) {
      [b.request release];
      [b.stats release];
    }
    bindings_.clear();
  }
}

}  // namespace anerd::backend::ane
