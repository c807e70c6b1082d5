// The AppleNeuralEngine.framework device: the only Objective-C++ in anerd (docs/ARCHITECTURE.md).
// Every call follows docs/ANE_NOTES.md §1; sections are cited where a step comes from.
//
// Memory: compiled with -fno-objc-arc. Every Objective-C object kept in a C++ struct is retained
// when stored and released in the struct's destructor (docs/ANE_NOTES.md §11: "explicit
// retain/release"); temporaries live in an @autoreleasepool per entry point. Exceptions: every
// message to the framework runs inside @try/@catch, so no NSException crosses into C++; NSError and
// NSException become absl::Status with a DeviceError payload (domain, code, description).
//
// Private names: every framework path, class and selector used here is a row of private_api.txt
// (with its cast and seed source); the ctest ane_private_api_allowlist keeps the two equal. On
// Linux this file is compiled against GNUstep's Foundation and run through clang's analyzer
// (tests/backend/ane_objc_check.py), so NSError** arguments take nullptr, never nil: the GNU
// runtime's nil is (id)0, which C++ does not convert to NSError**; the SDK's is nullptr.
#import <Foundation/Foundation.h>
#import <IOSurface/IOSurface.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <objc/message.h>
#include <objc/runtime.h>
#include <sys/file.h>
#include <sys/sysctl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/backend/ane/ane_device_apple.h"
#include "server/backend/ane/temp_dir_lease.h"

namespace anerd::backend::ane {
namespace {

// docs/ANE_NOTES.md §1.1
constexpr char kFrameworkPath[] =
    "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine";

// docs/ANE_NOTES.md §1.2: the exact C signatures every objc_msgSend is cast to (ARM64 needs exact
// casts).
using DescriptorFn = id (*)(Class, SEL, id, id, id);  // modelWithMILText:weights:optionsPlist:
using ModelWithDescFn = id (*)(Class, SEL, id);       // inMemoryModelWithDescriptor:
using IdGetterFn = id (*)(id, SEL);                   // hexStringIdentifier
using ClassGetterFn = id (*)(Class, SEL);             // +[_ANEDeviceInfo aneSubType]
using QosOptionsErrorFn = BOOL (*)(id, SEL, unsigned int, id, NSError**);  // compile / load
using EvaluateFn = BOOL (*)(id, SEL, unsigned int, id, id, NSError**);
using UnloadFn = BOOL (*)(id, SEL, unsigned int, NSError**);
using SurfaceObjectFn = id (*)(Class, SEL, IOSurfaceRef);  // objectWithIOSurface:
using RequestFn = id (*)(Class, SEL, id, id, id, id, id, id, id);
// _ANEPerformanceStats (issue 18 item 6; recipe in ane-rules-evidence.md "Counters and QoS").
using StatsFactoryFn = id (*)(Class, SEL, unsigned long long);    // statsWithHardwareExecutionNS:
using DriverMaskFn = unsigned int (*)(Class, SEL, unsigned int);  // driverMaskForANEFMask:
using SetMaskFn = void (*)(id, SEL, unsigned int);                // setPerfStatsMask:
using HwTimeFn = unsigned long long (*)(id, SEL);                 // hwExecutionTime

std::string ToStd(NSString* s) {
  const char* utf8 = s == nil ? nullptr : [s UTF8String];
  return utf8 == nullptr ? std::string() : std::string(utf8);
}

absl::Status FromNSError(absl::StatusCode code, absl::string_view what, NSError* error) {
  if (error == nil) {
    return MakeDeviceError(
        code, what, DeviceError{"anerd.ane", 0, "the framework returned NO without an error"});
  }
  return MakeDeviceError(code, what,
                         DeviceError{ToStd([error domain]), static_cast<int64_t>([error code]),
                                     ToStd([error localizedDescription])});
}

absl::Status FromNSException(absl::string_view what, NSException* e) {
  return MakeDeviceError(absl::StatusCode::kInternal, what,
                         DeviceError{ToStd([e name]), 0, ToStd([e reason])});
}

absl::Status NilResult(absl::string_view what) {
  return MakeDeviceError(absl::StatusCode::kInvalidArgument, what,
                         DeviceError{"anerd.ane", 0, "the framework returned nil"});
}

// Writes `data` to `path` atomically, creating intermediate directories (docs/ANE_NOTES.md §1.3
// step 5).
bool WriteFile(NSString* path, NSData* data) {
  NSFileManager* fm = [NSFileManager defaultManager];
  if (![fm createDirectoryAtPath:[path stringByDeletingLastPathComponent]
          withIntermediateDirectories:YES
                           attributes:nil
                                error:nullptr]) {
    return false;
  }
  return [data writeToFile:path atomically:YES];
}

// Fills `dir` the seed's way: weights/, model.mil, every weight file at its key minus
// "@model_path/". Removes what an earlier user left first (the framework leaves net.plist, data).
bool PopulateTempDir(NSString* dir, NSData* mil, NSDictionary* weights) {
  NSFileManager* fm = [NSFileManager defaultManager];
  [fm removeItemAtPath:dir error:nullptr];  // absent is fine
  NSString* wdir = [dir stringByAppendingPathComponent:@"weights"];
  bool ok = [fm createDirectoryAtPath:wdir
          withIntermediateDirectories:YES
                           attributes:nil
                                error:nullptr];
  ok = ok && WriteFile([dir stringByAppendingPathComponent:@"model.mil"], mil);
  for (NSString* key in weights) {
    NSString* rest = [key hasPrefix:@"@model_path/"] ? [key substringFromIndex:12] : key;
    NSData* data = [[weights objectForKey:key] objectForKey:@"data"];
    ok = ok && WriteFile([dir stringByAppendingPathComponent:rest], data);
  }
  return ok;
}

// The temp-dir lifecycle (ane_device_apple.h, temp_dir_lease.h): the first user on the machine
// clears and populates the dir, the last one removes it.
absl::Status UseTempDir(NSString* dir, NSData* mil, NSDictionary* weights) {
  return ane::AcquireTempDir(ToStd(dir), [&] { return PopulateTempDir(dir, mil, weights); });
}

void StopUsingTempDir(NSString* dir) {
  ane::ReleaseTempDir(ToStd(dir), [&] {
    @try {
      [[NSFileManager defaultManager] removeItemAtPath:dir error:nullptr];
    } @catch (NSException* e) {
      (void)e;  // best effort: the next first user clears it
    }
  });
}

// docs/ANE_NOTES.md §1.3 + seed tiny_train.m:237 (one serial compile queue): compiles in this
// process run one at a time.
std::mutex& CompileMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

struct Classes {
  Class descriptor = nil;   // _ANEInMemoryModelDescriptor
  Class model = nil;        // _ANEInMemoryModel
  Class request = nil;      // _ANERequest
  Class surface = nil;      // _ANEIOSurfaceObject
  Class device_info = nil;  // _ANEDeviceInfo (optional: only for aneSubType)
  Class perf_stats = nil;   // _ANEPerformanceStats (optional: hardware execution time)
};

// A process-unique identity per surface: requests are keyed by it, never by an address a freed
// surface's successor may reuse.
uint64_t NextSurfaceId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

class AppleSurface : public DeviceSurface {
 public:
  AppleSurface(IOSurfaceRef surface, id object, size_t bytes)
      : surface_(surface), object_([object retain]), bytes_(bytes), id_(NextSurfaceId()) {}
  ~AppleSurface() override {
    @autoreleasepool {
      [object_ release];
      CFRelease(surface_);
    }
  }
  uint64_t identity() const { return id_; }
  size_t size() const override { return bytes_; }
  // docs/ANE_NOTES.md §1.4: lock(0) -> copy into the base address -> unlock.
  absl::Status Write(size_t offset, absl::string_view data) override {
    if (offset > bytes_ || data.size() > bytes_ - offset) {
      return absl::InvalidArgumentError("surface write out of range");
    }
    IOSurfaceLock(surface_, 0, nullptr);
    std::memcpy(static_cast<char*>(IOSurfaceGetBaseAddress(surface_)) + offset, data.data(),
                data.size());
    IOSurfaceUnlock(surface_, 0, nullptr);
    return absl::OkStatus();
  }
  // docs/ANE_NOTES.md §1.4: lock(ReadOnly) -> copy out -> unlock(ReadOnly).
  absl::Status Read(size_t offset, size_t bytes, void* out) const override {
    if (offset > bytes_ || bytes > bytes_ - offset) {
      return absl::InvalidArgumentError("surface read out of range");
    }
    IOSurfaceLock(surface_, kIOSurfaceLockReadOnly, nullptr);
    std::memcpy(out, static_cast<const char*>(IOSurfaceGetBaseAddress(surface_)) + offset, bytes);
    IOSurfaceUnlock(surface_, kIOSurfaceLockReadOnly, nullptr);
    return absl::OkStatus();
  }
  id object() const { return object_; }

 private:
  IOSurfaceRef surface_;  // owned (created by IOSurfaceCreate)
  id object_;             // retained _ANEIOSurfaceObject wrapping surface_
  size_t bytes_;
  uint64_t id_;
};

std::vector<uint64_t> Identities(const std::vector<DeviceSurface*>& surfaces) {
  std::vector<uint64_t> out;
  for (DeviceSurface* s : surfaces) out.push_back(static_cast<AppleSurface*>(s)->identity());
  return out;
}

// One _ANERequest per (input surfaces, output surfaces) binding, built once and reused
// (docs/ANE_NOTES.md §1.3 step 7), keyed by surface identity. Dropped on unload, so a reload gets
// fresh requests (seed test_weight_reload.m:184-190); at most kMaxBindings per model (the oldest
// goes first).
constexpr size_t kMaxBindings = 16;
struct Binding {
  std::vector<uint64_t> inputs;
  std::vector<uint64_t> outputs;
  id request = nil;  // retained
  id stats = nil;    // retained _ANEPerformanceStats passed as the request's perfStats, or nil
};

class AppleModel : public DeviceModel {
 public:
  AppleModel(id model, NSString* temp_dir, std::string identifier)
      : model_([model retain]), temp_dir_([temp_dir retain]), identifier_(std::move(identifier)) {}
  ~AppleModel() override {
    @autoreleasepool {
      if (loaded_) {
        @try {
          NSError* error = nil;
          ((UnloadFn)objc_msgSend)(model_, @selector(unloadWithQoS:error:), qos_, &error);
        } @catch (NSException* e) {
          (void)e;
        }
      }
      DropBindings();
      [model_ release];
      StopUsingTempDir(temp_dir_);
      [temp_dir_ release];
    }
  }
  const std::string& identifier() const override { return identifier_; }
  bool loaded() const override { return loaded_; }
  void DropBindings() {
    for (Binding& b : bindings_) {
      [b.request release];
      [b.stats release];
    }
    bindings_.clear();
  }

  id model_;
  NSString* temp_dir_;
  std::string identifier_;
  bool loaded_ = false;
  unsigned int qos_ = kDefaultQos;  // the last load's, used by the destructor's unload
  bool stats_ = false;              // the perf-stats mask is set: requests carry a stats object
  unsigned int stats_mask_ = 0;     // the driver mask set on the model (when stats_)
  std::vector<Binding> bindings_;
};

class AppleDevice : public AneDevice {
 public:
  AppleDevice(Classes classes, std::vector<std::string> found)
      : classes_(classes), found_(std::move(found)) {}

  DeviceInfo Info() const override;
  absl::StatusOr<std::unique_ptr<DeviceModel>> Compile(absl::string_view mil_text,
                                                       const std::vector<DeviceWeightFile>& weights,
                                                       unsigned int qos) override;
  absl::Status Load(DeviceModel& model, unsigned int qos) override;
  absl::Status Unload(DeviceModel& model, unsigned int qos) override;
  absl::StatusOr<std::unique_ptr<DeviceSurface>> AllocateSurface(size_t bytes) override;
  absl::Status Evaluate(DeviceModel& model, const std::vector<DeviceSurface*>& inputs,
                        const std::vector<DeviceSurface*>& outputs, unsigned int qos,
                        PerfCounters* counters) override;
  int64_t compile_count() const override { return compiles_.load(); }

 private:
  absl::StatusOr<id> BuildRequest(const std::vector<DeviceSurface*>& inputs,
                                  const std::vector<DeviceSurface*>& outputs, id stats);
  // The model's binding for these surfaces, built (and the oldest evicted) when missing.
  absl::StatusOr<Binding*> FindOrBind(AppleModel& m, const std::vector<DeviceSurface*>& inputs,
                                      const std::vector<DeviceSurface*>& outputs);
  // Sets the perf-stats mask on a fresh model, before compile and load (m.stats_ stays false
  // when the framework has no stats or refuses the mask).
  void EnablePerfStats(AppleModel& m);

  const Classes classes_;
  const std::vector<std::string> found_;
  std::atomic<int64_t> compiles_{0};
};

std::string SysctlString(const char* name) {
  size_t size = 0;
  if (sysctlbyname(name, nullptr, &size, nullptr, 0) != 0 || size == 0) return "";
  std::string out(size, '\0');
  if (sysctlbyname(name, out.data(), &size, nullptr, 0) != 0) return "";
  out.resize(strnlen(out.c_str(), out.size()));
  return out;
}

DeviceInfo AppleDevice::Info() const {
  DeviceInfo info;
  info.name = "Apple Neural Engine";
  info.simulated = false;
  info.framework_path = kFrameworkPath;
  info.classes_found = found_;
  info.chip = SysctlString("machdep.cpu.brand_string");
  info.compile_budget = kFrameworkCompileBudget;
  info.rules = mil::AneRulesForChip(info.chip);  // the rules table (common/mil/ane_rules.h)
  info.honors_attn_mask = false;                 // docs/ANE_NOTES.md §1.8
  info.hardware_counters = classes_.perf_stats != nil;
  @autoreleasepool {
    @try {
      info.os_build = ToStd([[NSProcessInfo processInfo] operatingSystemVersionString]);
      if (classes_.device_info != nil) {  // docs/ANE_NOTES.md §1.2: +[_ANEDeviceInfo aneSubType]
        id subtype = ((ClassGetterFn)objc_msgSend)(classes_.device_info, @selector(aneSubType));
        if (subtype != nil) info.ane_subtype = ToStd([subtype description]);
      }
    } @catch (NSException* e) {
      (void)e;  // facts stay empty
    }
  }
  return info;
}

// The ANEF mask asked for: Espresso's default bits (on an M3 Max any bit outside 0xF gives 0).
constexpr unsigned int kPerfStatsAnefMask = 0xF;

void AppleDevice::EnablePerfStats(AppleModel& m) {
  if (classes_.perf_stats == nil) return;
  @try {
    const unsigned int mask = ((DriverMaskFn)objc_msgSend)(
        classes_.perf_stats, @selector(driverMaskForANEFMask:), kPerfStatsAnefMask);
    if (mask == 0) return;
    ((SetMaskFn)objc_msgSend)(m.model_, @selector(setPerfStatsMask:), mask);
    m.stats_ = true;
    m.stats_mask_ = mask;
  } @catch (NSException* e) {
    (void)e;  // no counters: evaluations report hardware time as absent
  }
}

// Load options: @{} as the seed, plus Espresso's two perf-stats keys when the mask is set.
NSDictionary* LoadOptions(const AppleModel& m) {
  if (!m.stats_) return @{};
  return @{
    @"kANEFPerformanceStatsMask" : @(m.stats_mask_),
    @"kANEFModelLoadPerformanceStats" : [NSNumber numberWithBool:YES]
  };
}

// docs/ANE_NOTES.md §1.3 steps 1-6 (compile half): MIL as UTF-8 NSData; weights dictionary keyed by
// the exact BLOBFILE path with {offset: @0, data: NSData}, @{} (never nil) when there are none;
// descriptor with optionsPlist nil; in-memory model; temp dir populated;
// compileWithQoS:options:@{}. Every attempt that reaches compileWithQoS counts, and compiles in
// this process run one at a time.
absl::StatusOr<std::unique_ptr<DeviceModel>> AppleDevice::Compile(
    absl::string_view mil_text, const std::vector<DeviceWeightFile>& weights, unsigned int qos) {
  std::lock_guard<std::mutex> serial(CompileMutex());
  @autoreleasepool {
    id model = nil;
    NSString* dir = nil;
    std::string identifier;
    NSData* mil = [NSData dataWithBytes:mil_text.data() length:mil_text.size()];
    NSMutableDictionary* wdict = [NSMutableDictionary dictionary];
    for (const DeviceWeightFile& w : weights) {
      NSData* data = [NSData dataWithBytes:w.bytes->data() length:w.bytes->size()];
      NSString* key = [NSString stringWithUTF8String:w.path.c_str()];
      [wdict setObject:@{@"offset" : @0, @"data" : data} forKey:key];
    }
    @try {
      id desc = ((DescriptorFn)objc_msgSend)(
          classes_.descriptor, @selector(modelWithMILText:weights:optionsPlist:), mil, wdict, nil);
      if (desc == nil) return NilResult("ANE modelWithMILText failed");
      model = ((ModelWithDescFn)objc_msgSend)(classes_.model,
                                              @selector(inMemoryModelWithDescriptor:), desc);
      if (model == nil) return NilResult("ANE inMemoryModelWithDescriptor failed");
      id hex = ((IdGetterFn)objc_msgSend)(model, @selector(hexStringIdentifier));
      if (hex == nil) return NilResult("ANE hexStringIdentifier failed");
      identifier = ToStd(hex);
      dir = [NSTemporaryDirectory() stringByAppendingPathComponent:hex];
    } @catch (NSException* e) {
      return FromNSException("ANE compile failed", e);
    }
    absl::Status populated = UseTempDir(dir, mil, wdict);
    if (!populated.ok()) return populated;
    // From here the temp dir reference belongs to the model object (released in its destructor).
    auto handle = std::make_unique<AppleModel>(model, dir, identifier);
    EnablePerfStats(*handle);
    compiles_.fetch_add(1);
    @try {
      NSError* error = nil;
      BOOL ok = ((QosOptionsErrorFn)objc_msgSend)(model, @selector(compileWithQoS:options:error:),
                                                  qos, @{}, &error);
      if (!ok) return FromNSError(absl::StatusCode::kInternal, "ANE compile failed", error);
    } @catch (NSException* e) {
      return FromNSException("ANE compile failed", e);
    }
    return std::unique_ptr<DeviceModel>(std::move(handle));
  }
}

// docs/ANE_NOTES.md §1.3 step 6 (load half); the retry after 100 ms lives in the backend
// (LoadWithRetry).
absl::Status AppleDevice::Load(DeviceModel& model, unsigned int qos) {
  auto& m = static_cast<AppleModel&>(model);
  if (m.loaded_) return absl::OkStatus();
  @autoreleasepool {
    @try {
      NSError* error = nil;
      BOOL ok = ((QosOptionsErrorFn)objc_msgSend)(m.model_, @selector(loadWithQoS:options:error:),
                                                  qos, LoadOptions(m), &error);
      if (!ok) return FromNSError(absl::StatusCode::kUnavailable, "ANE load failed", error);
    } @catch (NSException* e) {
      return FromNSException("ANE load failed", e);
    }
  }
  m.loaded_ = true;
  m.qos_ = qos;
  return absl::OkStatus();
}

// docs/ANE_NOTES.md §1.3 step 9: unloadWithQoS:error:. The model's requests go with it: a reload
// builds fresh ones (seed test_weight_reload.m:184-190).
absl::Status AppleDevice::Unload(DeviceModel& model, unsigned int qos) {
  auto& m = static_cast<AppleModel&>(model);
  if (!m.loaded_) return absl::OkStatus();
  @autoreleasepool {
    m.DropBindings();
    @try {
      NSError* error = nil;
      BOOL ok = ((UnloadFn)objc_msgSend)(m.model_, @selector(unloadWithQoS:error:), qos, &error);
      m.loaded_ = false;
      if (!ok) return FromNSError(absl::StatusCode::kInternal, "ANE unload failed", error);
    } @catch (NSException* e) {
      m.loaded_ = false;
      return FromNSException("ANE unload failed", e);
    }
  }
  return absl::OkStatus();
}

// docs/ANE_NOTES.md §1.4: a one-row byte buffer of exactly `bytes` bytes, wrapped once in
// _ANEIOSurfaceObject.
absl::StatusOr<std::unique_ptr<DeviceSurface>> AppleDevice::AllocateSurface(size_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("IOSurface of 0 bytes");
  @autoreleasepool {
    NSDictionary* props = @{
      (NSString*)kIOSurfaceWidth : @(bytes),
      (NSString*)kIOSurfaceHeight : @1,
      (NSString*)kIOSurfaceBytesPerElement : @1,
      (NSString*)kIOSurfaceBytesPerRow : @(bytes),
      (NSString*)kIOSurfaceAllocSize : @(bytes),
      (NSString*)kIOSurfacePixelFormat : @0
    };
    IOSurfaceRef surface = IOSurfaceCreate((CFDictionaryRef)props);
    if (surface == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("IOSurfaceCreate(", bytes, ") failed"));
    }
    @try {
      id object = ((SurfaceObjectFn)objc_msgSend)(classes_.surface, @selector(objectWithIOSurface:),
                                                  surface);
      if (object == nil) {
        CFRelease(surface);
        return NilResult("ANE objectWithIOSurface failed");
      }
      return std::unique_ptr<DeviceSurface>(new AppleSurface(surface, object, bytes));
    } @catch (NSException* e) {
      CFRelease(surface);
      return FromNSException("ANE objectWithIOSurface failed", e);
    }
  }
}

// docs/ANE_NOTES.md §1.2, §1.5: inputs, indices @0..n-1, outputs, indices, weightsBuffer nil,
// perfStats `stats` (nil, or the _ANEPerformanceStats the evaluation fills), procedureIndex @0 (an
// NSNumber). Returns a retained request.
absl::StatusOr<id> AppleDevice::BuildRequest(const std::vector<DeviceSurface*>& inputs,
                                             const std::vector<DeviceSurface*>& outputs, id stats) {
  @autoreleasepool {
    NSMutableArray* in = [NSMutableArray array];
    NSMutableArray* in_idx = [NSMutableArray array];
    NSMutableArray* out = [NSMutableArray array];
    NSMutableArray* out_idx = [NSMutableArray array];
    for (size_t i = 0; i < inputs.size(); ++i) {
      [in addObject:static_cast<AppleSurface*>(inputs[i])->object()];
      [in_idx addObject:@(static_cast<int>(i))];
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      [out addObject:static_cast<AppleSurface*>(outputs[i])->object()];
      [out_idx addObject:@(static_cast<int>(i))];
    }
    @try {
      id request = ((RequestFn)objc_msgSend)(
          classes_.request,
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

absl::StatusOr<Binding*> AppleDevice::FindOrBind(AppleModel& m,
                                                 const std::vector<DeviceSurface*>& inputs,
                                                 const std::vector<DeviceSurface*>& outputs) {
  const std::vector<uint64_t> in = Identities(inputs), out = Identities(outputs);
  for (Binding& b : m.bindings_) {
    if (b.inputs == in && b.outputs == out) return &b;
  }
  @autoreleasepool {
    id stats = nil;
    if (m.stats_) {
      @try {  // docs/ANE_NOTES.md §1.7: alloc/init returns nil; the factory works
        stats = ((StatsFactoryFn)objc_msgSend)(classes_.perf_stats,
                                               @selector(statsWithHardwareExecutionNS:), 0ULL);
      } @catch (NSException* e) {
        stats = nil;
      }
    }
    absl::StatusOr<id> request = BuildRequest(inputs, outputs, stats);
    if (!request.ok()) return request.status();
    if (m.bindings_.size() >= kMaxBindings) {
      [m.bindings_.front().request release];
      [m.bindings_.front().stats release];
      m.bindings_.erase(m.bindings_.begin());
    }
    m.bindings_.push_back(Binding{in, out, *request, [stats retain]});
    return &m.bindings_.back();
  }
}

// docs/ANE_NOTES.md §1.3 step 8: evaluateWithQoS:options:@{} request:error: with the binding's
// request, then the stats object's hwExecutionTime (absent when 0: the mask was refused or set too
// late).
absl::Status AppleDevice::Evaluate(DeviceModel& model, const std::vector<DeviceSurface*>& inputs,
                                   const std::vector<DeviceSurface*>& outputs, unsigned int qos,
                                   PerfCounters* counters) {
  auto& m = static_cast<AppleModel&>(model);
  if (!m.loaded_) return absl::FailedPreconditionError("ANE eval failed: model is not loaded");
  absl::StatusOr<Binding*> binding = FindOrBind(m, inputs, outputs);
  if (!binding.ok()) return binding.status();
  const id request = (*binding)->request;
  const id stats = (*binding)->stats;
  @autoreleasepool {
    @try {
      NSError* error = nil;
      BOOL ok = ((EvaluateFn)objc_msgSend)(
          m.model_, @selector(evaluateWithQoS:options:request:error:), qos, @{}, request, &error);
      if (!ok) return FromNSError(absl::StatusCode::kInternal, "ANE eval failed", error);
    } @catch (NSException* e) {
      if (stats == nil) return FromNSException("ANE eval failed", e);
      // A framework that wants perfStats in another form (an array on newer macOS) throws here:
      // evaluate without counters from now on.
      m.stats_ = false;
      m.DropBindings();
      return Evaluate(model, inputs, outputs, qos, counters);
    }
    if (counters != nullptr && stats != nil) {
      @try {
        const unsigned long long ns = ((HwTimeFn)objc_msgSend)(stats, @selector(hwExecutionTime));
        if (ns > 0) counters->hardware_ns = static_cast<uint64_t>(ns);
      } @catch (NSException* e) {
        (void)e;  // absent
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

// docs/ANE_NOTES.md §1.1: dlopen with RTLD_NOW, then NSClassFromString for the four compute
// classes.
absl::StatusOr<std::unique_ptr<AneDevice>> CreateAppleDevice() {
  void* handle = dlopen(kFrameworkPath, RTLD_NOW);
  if (handle == nullptr) {
    const char* err = dlerror();
    return absl::UnavailableError(absl::StrCat("cannot load AppleNeuralEngine.framework: ",
                                               err == nullptr ? "unknown error" : err));
  }
  Classes c;
  std::vector<std::string> found, missing;
  @autoreleasepool {
    @try {
      const std::pair<const char*, Class*> wanted[] = {
          {"_ANEInMemoryModelDescriptor", &c.descriptor},
          {"_ANEInMemoryModel", &c.model},
          {"_ANERequest", &c.request},
          {"_ANEIOSurfaceObject", &c.surface},
          {"_ANEDeviceInfo", &c.device_info},
          {"_ANEPerformanceStats", &c.perf_stats}};
      for (const auto& [name, slot] : wanted) {
        *slot = NSClassFromString([NSString stringWithUTF8String:name]);
        (*slot != nil ? found : missing).push_back(name);
      }
    } @catch (NSException* e) {
      return FromNSException("resolving ANE classes failed", e);
    }
  }
  if (c.descriptor == nil || c.model == nil || c.request == nil || c.surface == nil) {
    std::string list;
    for (const std::string& m : missing) absl::StrAppend(&list, list.empty() ? "" : ", ", m);
    return absl::UnavailableError(absl::StrCat("AppleNeuralEngine.framework lacks ", list));
  }
  return std::unique_ptr<AneDevice>(new AppleDevice(c, std::move(found)));
}

}  // namespace anerd::backend::ane
