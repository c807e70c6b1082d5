// The AppleNeuralEngine.framework device (ane_device_apple.h): framework and classes, temp dirs,
// compile, load, unload, surfaces and evaluate. Its per-model evaluation state (performance
// statistics, request bindings) is ane_requests_apple.mm; the two files are the only Objective-C++
// in anerd (docs/ARCHITECTURE.md). Every call follows docs/ANE_NOTES.md §1; sections are cited
// where a step comes from.
//
// Memory: compiled with -fno-objc-arc. Every Objective-C object kept in a C++ struct is retained
// when stored and released in the struct's destructor (docs/ANE_NOTES.md §11: "explicit
// retain/release"); temporaries live in an @autoreleasepool per entry point. Exceptions: every
// message to the framework runs inside @try/@catch, so no NSException crosses into C++; NSError and
// NSException become absl::Status with a DeviceError payload (domain, code, description).
//
// Private names: every framework path, class and selector used here (and in
// ane_requests_apple.mm) is a row of private_api.txt (with its cast and seed source); the ctest
// ane_private_api_allowlist keeps the rows and the two files equal. On Linux both files are
// compiled against GNUstep's Foundation and run through clang's analyzer
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
#include "server/backend/ane/ane_apple_objc.h"
#include "server/backend/ane/ane_device_apple.h"
#include "server/backend/ane/ane_requests_apple.h"
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

std::vector<SurfaceRef> SurfaceRefs(const std::vector<DeviceSurface*>& surfaces) {
  std::vector<SurfaceRef> out;
  out.reserve(surfaces.size());
  for (DeviceSurface* s : surfaces) {
    const auto* surface = static_cast<const AppleSurface*>(s);
    out.push_back({surface->identity(), surface->object()});
  }
  return out;
}

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
      requests_.Clear();
      [model_ release];
      StopUsingTempDir(temp_dir_);
      [temp_dir_ release];
    }
  }
  const std::string& identifier() const override { return identifier_; }
  bool loaded() const override { return loaded_; }

  id model_;
  NSString* temp_dir_;
  std::string identifier_;
  bool loaded_ = false;
  unsigned int qos_ = kDefaultQos;  // the last load's, used by the destructor's unload
  PerfStats stats_;                 // ane_requests_apple.h
  RequestBindings requests_;
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
    handle->stats_.Enable(classes_, model);
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
                                                  qos, m.stats_.LoadOptions(), &error);
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
    m.requests_.Clear();
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

// docs/ANE_NOTES.md §1.3 step 8: evaluateWithQoS:options:@{} request:error: with the binding's
// request, then the stats object's hwExecutionTime (absent when 0: the mask was refused or set too
// late).
absl::Status AppleDevice::Evaluate(DeviceModel& model, const std::vector<DeviceSurface*>& inputs,
                                   const std::vector<DeviceSurface*>& outputs, unsigned int qos,
                                   PerfCounters* counters) {
  auto& m = static_cast<AppleModel&>(model);
  if (!m.loaded_) return absl::FailedPreconditionError("ANE eval failed: model is not loaded");
  absl::StatusOr<const Binding*> binding =
      m.requests_.FindOrBind(classes_, m.stats_, SurfaceRefs(inputs), SurfaceRefs(outputs));
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
      m.stats_.Disable();
      m.requests_.Clear();
      return Evaluate(model, inputs, outputs, qos, counters);
    }
    PerfStats::ReadHardwareTime(stats, counters);
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
