// AneDevice: the small C++ interface between the portable ANE backend (ane_backend.h) and a
// device that compiles and runs MIL programs the way Apple's private AppleNeuralEngine framework
// does (docs/ANE_NOTES.md §1). Two implementations:
//   * ane_device_apple.mm — the framework itself (macOS only; with ane_requests_apple.mm the only
//     Objective-C++ in anerd);
//   * ane_device_sim.cc   — a simulated device that runs anywhere (ane_device_sim.h).
// No Objective-C type appears here.
//
// Lifecycle (docs/ANE_NOTES.md §1.3): Compile(MIL text, weight files) -> DeviceModel; Load;
// allocate surfaces; Evaluate(model, input surfaces, output surfaces) many times, rewriting surface
// contents in place; Unload. A DeviceModel that is destroyed while loaded is unloaded first.
//
// Surfaces (docs/ANE_NOTES.md §1.4): byte buffers holding one tensor each, row-major in the MIL
// shape, fp16 as IEEE binary16 bits and fp32 as IEEE binary32, little-endian, packed at offset 0 of
// a surface that may be larger (Orion #12, #14: the device reads the first C*S values). Surface
// sizes, counts and binding order follow DeviceInfo::rules (ane_rules.h): at least
// min_surface_bytes, the same size within the inputs and within the outputs, bound in alphabetical
// order of the MIL names.
//
// Errors: every failure the framework reports (NSError) or throws (NSException) becomes an
// absl::Status whose message contains the framework's text and which carries a DeviceError
// payload (domain, code, description), see MakeDeviceError/GetDeviceError. Status codes chosen by
// the device: INVALID_ARGUMENT (program or surface rejected), FAILED_PRECONDITION (wrong state,
// e.g. evaluate before load), RESOURCE_EXHAUSTED (compile budget spent, when the device can tell),
// UNAVAILABLE (framework missing), INTERNAL (anything else).
//
// Ownership: models and surfaces are owned by the caller through unique_ptr and must be destroyed
// before the device. Thread-safety: AneDevice methods are thread-safe; one DeviceModel or
// DeviceSurface must not be used by two threads at once (the backend serialises per program).
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ane_rules.h"

namespace anerd::backend::ane {

// QoS passed to compile/load/evaluate/unload; the seed uses 21 everywhere (docs/ANE_NOTES.md §1.6)
// and sweeps 0..kMaxQos in test_qos_sweep.m (m5result.md: every value works). anerd accepts that
// range.
inline constexpr unsigned int kDefaultQos = 21;
inline constexpr unsigned int kMaxQos = 63;
// The framework's observed per-process compile cliff (docs/ANE_NOTES.md §1.8, §11: "~119 compiles
// per process"; oMLX #2781 stops at 120). Approximate: the device may fail earlier.
inline constexpr int64_t kFrameworkCompileBudget = 119;
// The budget anerd uses by default: the seed stops at 100 compiles and restarts the process
// (training/stories_config.h:26, train_large.m:372), well before the cliff.
inline constexpr int64_t kDefaultCompileBudget = 100;

struct DeviceInfo {
  std::string name;  // "Apple Neural Engine" or "simulated ANE"
  bool simulated = false;
  std::string chip;            // e.g. "Apple M4" (empty when unknown)
  std::string ane_subtype;     // _ANEDeviceInfo aneSubType, e.g. "h16" (empty when unknown)
  std::string os_build;        // e.g. "macOS 15.4 (24E248)"
  int cores = 0;               // ANE cores if known, else 0
  std::string framework_path;  // what was dlopen'ed (empty for the simulator)
  std::vector<std::string> classes_found;  // private classes resolved by name
  // Compile attempts the device is expected to allow per process (0 = unlimited); approximate.
  int64_t compile_budget = 0;
  // The rules table in force for this device (common/mil/ane_rules.h): surfaces, packing, ops.
  // The lowering satisfies them; the simulator enforces them.
  mil::AneRules rules;
  // Whether scaled_dot_product_attention honours attn_mask (docs/ANE_NOTES.md §1.8: it does not).
  bool honors_attn_mask = false;
  // Whether Evaluate can fill PerfCounters::hardware_ns (the framework: when _ANEPerformanceStats
  // resolved; it may still leave single evaluations unset).
  bool hardware_counters = false;
};

// The framework's error triple (NSError domain/code/localizedDescription, or an NSException's
// name/reason with code 0).
struct DeviceError {
  std::string domain;
  int64_t code = 0;
  std::string description;
};

// A status with `code`, message "WHAT: DESCRIPTION (DOMAIN code CODE)" and `error` as payload.
absl::Status MakeDeviceError(absl::StatusCode code, absl::string_view what,
                             const DeviceError& error);
// The DeviceError carried by `status`, if any.
std::optional<DeviceError> GetDeviceError(const absl::Status& status);

// One weight file: the path exactly as the MIL BLOBFILE names it ("@model_path/weights/w.bin")
// and its bytes (blob format, docs/ANE_NOTES.md §2). Shared, immutable from the caller's side.
struct DeviceWeightFile {
  std::string path;
  std::shared_ptr<const std::string> bytes;
};

// Performance counters of one evaluation (issue 18 item 6). Never a made-up zero: a counter the
// device did not report stays unset.
struct PerfCounters {
  // The device's own execution time (ns): _ANEPerformanceStats hwExecutionTime on the framework
  // (docs/ANE_NOTES.md §1.7; unset when the class, the mask or the value is missing, or the value
  // is 0), the cost model on the simulator (ane_device_sim.h).
  std::optional<uint64_t> hardware_ns;
  bool simulated = false;  // hardware_ns comes from the simulator's model, not a device
};

class DeviceSurface {
 public:
  virtual ~DeviceSurface() = default;
  virtual size_t size() const = 0;  // bytes
  // Copies `data` to byte `offset`; INVALID_ARGUMENT if it does not fit.
  virtual absl::Status Write(size_t offset, absl::string_view data) = 0;
  // Copies `bytes` bytes from byte `offset` into `out`; INVALID_ARGUMENT if out of range.
  virtual absl::Status Read(size_t offset, size_t bytes, void* out) const = 0;
};

class DeviceModel {
 public:
  virtual ~DeviceModel() = default;
  // The content-derived identifier (hexStringIdentifier on the framework).
  virtual const std::string& identifier() const = 0;
  virtual bool loaded() const = 0;
  // Bytes the device holds for the model (buffers, scratch, constants) as planned at compile
  // time; 0 when the device cannot tell (the framework).
  virtual uint64_t memory_bytes() const { return 0; }
};

class AneDevice {
 public:
  virtual ~AneDevice() = default;
  virtual DeviceInfo Info() const = 0;
  // Compiles `mil_text` (UTF-8) with `weights`; every call that reaches the framework counts
  // towards compile_count(), whether it succeeds or fails.
  virtual absl::StatusOr<std::unique_ptr<DeviceModel>> Compile(
      absl::string_view mil_text, const std::vector<DeviceWeightFile>& weights,
      unsigned int qos = kDefaultQos) = 0;
  // As Compile, but refuses a program that would hold more than `max_memory_bytes` (0 =
  // unlimited) with RESOURCE_EXHAUSTED containing backend::kMemoryLimitMarker and both sizes,
  // before allocating it (CompileOptions::max_memory_bytes). Devices that cannot tell their memory
  // before allocating (the framework) keep this default, which ignores the limit.
  virtual absl::StatusOr<std::unique_ptr<DeviceModel>> CompileWithinMemory(
      absl::string_view mil_text, const std::vector<DeviceWeightFile>& weights, unsigned int qos,
      uint64_t max_memory_bytes) {
    (void)max_memory_bytes;
    return Compile(mil_text, weights, qos);
  }
  virtual absl::Status Load(DeviceModel& model, unsigned int qos = kDefaultQos) = 0;
  virtual absl::Status Unload(DeviceModel& model, unsigned int qos = kDefaultQos) = 0;
  // A zero-filled surface of `bytes` bytes (INVALID_ARGUMENT when the device's size rules refuse).
  virtual absl::StatusOr<std::unique_ptr<DeviceSurface>> AllocateSurface(size_t bytes) = 0;
  // Runs a loaded model on the bound surfaces: input surface i binds to the i-th MIL parameter in
  // alphabetical order of the names when rules.alphabetical_binding (Orion #13), else in
  // declaration order; likewise outputs (Orion #3). The lowering declares them sorted, so both
  // readings agree. `counters` may be null.
  virtual absl::Status Evaluate(DeviceModel& model, const std::vector<DeviceSurface*>& inputs,
                                const std::vector<DeviceSurface*>& outputs,
                                unsigned int qos = kDefaultQos,
                                PerfCounters* counters = nullptr) = 0;
  // Compile attempts by this device so far, failed ones included (what the framework's budget
  // counts: its compiler leaks per attempt, and the seed treats any failure as budget spent).
  virtual int64_t compile_count() const = 0;
};

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_DEVICE_H_
