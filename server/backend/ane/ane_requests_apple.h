// The per-model evaluation state of the Apple device (ane_requests_apple.mm): its performance
// statistics (issue 18 item 6) and its request bindings (docs/ANE_NOTES.md §1.3 step 7, §1.5).
// Objective-C++: included only by the .mm files. Every private name used is a row of
// private_api.txt (tests/backend/ane_objc_check.py checks both .mm files against it).
//
//   * PerfStats. When _ANEPerformanceStats resolves, Enable sets
//     setPerfStatsMask:(driverMaskForANEFMask:0xF) on a fresh model, before compile and load;
//     LoadOptions then carries kANEFPerformanceStatsMask and kANEFModelLoadPerformanceStats, each
//     new request carries a +statsWithHardwareExecutionNS:0 object, and ReadHardwareTime reads
//     hwExecutionTime after an evaluation. Anything missing (class, mask 0, a value of 0, an
//     exception) leaves the time unset; Disable turns counters off for the model for good (the
//     device does so when an evaluation throws because of the stats object).
//   * RequestBindings. One _ANERequest per (input surfaces, output surfaces) binding, keyed by each
//     surface's process-unique identity (never its address), built once and reused; at most
//     kMaxBindings per model (the oldest is released first); Clear drops them all (on unload, so
//     a reload builds fresh ones: seed test_weight_reload.m:184-190).
//
// Memory (-fno-objc-arc): a Binding's request and stats are retained while it is held and released
// by Clear, eviction or the destructor. Each entry point runs in its own @autoreleasepool.
// Exceptions: every framework message is inside @try; none escapes. Thread-safety: none; the
// device uses one model's state from one thread at a time (ane_device.h).
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_REQUESTS_APPLE_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_REQUESTS_APPLE_H_

#import <Foundation/Foundation.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend/ane/ane_apple_objc.h"
#include "server/backend/ane/ane_device.h"

namespace anerd::backend::ane {

class PerfStats {
 public:
  // Sets the mask on `model` (a fresh _ANEInMemoryModel, not yet compiled); stays off when the
  // class is missing, the framework gives mask 0 or throws.
  void Enable(const Classes& classes, id model);
  bool on() const { return on_; }
  void Disable() { on_ = false; }
  // The loadWithQoS: options: @{} as the seed, plus the two perf-stats keys when on (autoreleased).
  NSDictionary* LoadOptions() const;
  // A stats object for a new request (autoreleased), or nil when off or the factory fails.
  id NewStats(const Classes& classes) const;
  // Sets counters->hardware_ns from `stats`' hwExecutionTime when it is > 0; no-op for nil.
  static void ReadHardwareTime(id stats, PerfCounters* counters);

 private:
  bool on_ = false;
  unsigned int mask_ = 0;  // the driver mask set on the model (when on_)
};

// One surface as a request binds it.
struct SurfaceRef {
  uint64_t identity = 0;  // process-unique (never an address)
  id object = nil;        // its _ANEIOSurfaceObject, not retained here
};

struct Binding {
  std::vector<uint64_t> inputs;
  std::vector<uint64_t> outputs;
  id request = nil;  // retained _ANERequest
  id stats = nil;    // retained _ANEPerformanceStats given as the request's perfStats, or nil
};

class RequestBindings {
 public:
  static constexpr size_t kMaxBindings = 16;

  RequestBindings() = default;
  RequestBindings(const RequestBindings&) = delete;
  RequestBindings& operator=(const RequestBindings&) = delete;
  ~RequestBindings() { Clear(); }

  // The binding for these surfaces, built when missing (with a stats object when `stats` is on),
  // evicting the oldest beyond kMaxBindings. The pointer stays valid until the next call or Clear.
  absl::StatusOr<const Binding*> FindOrBind(const Classes& classes, const PerfStats& stats,
                                            const std::vector<SurfaceRef>& inputs,
                                            const std::vector<SurfaceRef>& outputs);
  void Clear();

 private:
  std::vector<Binding> bindings_;
};

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_REQUESTS_APPLE_H_
