// The AppleNeuralEngine.framework device (built only on macOS): dlopens the private framework and
// drives it exactly as docs/ANE_NOTES.md §1 describes. C++ only; the Objective-C lives in two
// .mm files: ane_device_apple.mm (framework, classes, temp dirs, compile, load, surfaces,
// evaluate) and ane_requests_apple.mm (per model: performance statistics and request bindings,
// ane_requests_apple.h), sharing ane_apple_objc.h.
//
// Lifecycle (issue 18 item 5):
//   * Temp dirs. The framework reads NSTemporaryDirectory()/<hexStringIdentifier>, a per-user path
//     shared by every process that compiles the same program (the hex is content-derived). Each
//     process counts its models per dir; across processes two lock files beside the dir decide:
//     "<dir>.anerd-users" carries a shared flock per process using the dir, "<dir>.anerd-guard" an
//     exclusive flock held only while a dir is being populated or removed. The first user on the
//     machine (it gets the users lock exclusively) clears what an earlier process or the framework
//     left there (net.plist, data) and writes model.mil and the weight files; later users find it
//     populated. The last user removes the dir. flock locks die with their process, so a killed
//     worker never strands the dir or blocks the next one. The lock files stay (empty, per hex).
//     The locking is temp_dir_lease.{h,cc} (plain POSIX, tested on Linux with real processes).
//   * Compiles run one at a time per process (seed tiny_train.m:237: one serial queue).
//   * Requests (ane_requests_apple.h). One _ANERequest per (input surfaces, output surfaces) binding, keyed by each
//     surface's process-unique identity (never its address), reused across evaluations, dropped on
//     unload so a reload builds fresh ones (seed test_weight_reload.m:184-190), at most 16 per
//     model (the oldest is released first).
//   * Memory. Built with -fno-objc-arc: objects kept in C++ structs are retained when stored and
//     released in the destructor; every entry point, the model's and the surface's destructors
//     (unload, request release, temp-dir release) run inside @autoreleasepool.
//   * Counters (issue 18 item 6; ane_requests_apple.h). When _ANEPerformanceStats resolves, a model gets
//     setPerfStatsMask:(driverMaskForANEFMask:0xF) before compile, its load passes
//     kANEFPerformanceStatsMask and kANEFModelLoadPerformanceStats, each request carries a
//     +statsWithHardwareExecutionNS:0 object, and hwExecutionTime is read after each evaluation.
//     Anything missing (class, mask 0, a value of 0, an exception) leaves the time unset; an
//     evaluation that throws because of the stats object is retried once without counters, which
//     stay off for that model.
//   * QoS: the value given to Compile is used for compileWithQoS:, Load's for loadWithQoS: and for
//     the destructor's unload, Evaluate's for evaluateWithQoS:.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_APPLE_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_APPLE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/backend/ane/ane_device.h"

namespace anerd::backend::ane {

// Loads the framework and resolves its classes. UNAVAILABLE (with what was missing) when the
// framework or one of the four compute classes cannot be found.
absl::StatusOr<std::unique_ptr<AneDevice>> CreateAppleDevice();

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_APPLE_H_
