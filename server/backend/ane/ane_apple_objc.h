// The Objective-C++ pieces the Apple device's two files share: ane_device_apple.mm (the device:
// framework, classes, temp dirs, compile, load, surfaces, evaluate) and ane_requests_apple.mm (the
// per-model evaluation state: performance statistics and request bindings). Objective-C++:
// included only by server/backend/ane/*.mm, never by C++ (ane_device_apple.h is the C++ side).
//
// Memory: both files are compiled with -fno-objc-arc; what these helpers return is autoreleased
// or a C++ value. Exceptions: none thrown; the callers wrap every framework message in @try.
#ifndef ANERD_SERVER_BACKEND_ANE_ANE_APPLE_OBJC_H_
#define ANERD_SERVER_BACKEND_ANE_ANE_APPLE_OBJC_H_

#import <Foundation/Foundation.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/backend/ane/ane_device.h"

namespace anerd::backend::ane {

// The private classes, resolved once by CreateAppleDevice (ane_device_apple.mm) from the names in
// private_api.txt. Not retained: classes live as long as the framework, which is never unloaded.
struct Classes {
  Class descriptor = nil;   // _ANEInMemoryModelDescriptor
  Class model = nil;        // _ANEInMemoryModel
  Class request = nil;      // _ANERequest
  Class surface = nil;      // _ANEIOSurfaceObject
  Class device_info = nil;  // _ANEDeviceInfo (optional: only for aneSubType)
  Class perf_stats = nil;   // _ANEPerformanceStats (optional: hardware execution time)
};

// UTF-8 copy of `s`; "" for nil.
inline std::string ToStd(NSString* s) {
  const char* utf8 = s == nil ? nullptr : [s UTF8String];
  return utf8 == nullptr ? std::string() : std::string(utf8);
}

// An NSError as a status with `code` and a DeviceError payload (ane_device.h); a NO without an
// error still fails, saying so.
inline absl::Status FromNSError(absl::StatusCode code, absl::string_view what, NSError* error) {
  if (error == nil) {
    return MakeDeviceError(
        code, what, DeviceError{"anerd.ane", 0, "the framework returned NO without an error"});
  }
  return MakeDeviceError(code, what,
                         DeviceError{ToStd([error domain]), static_cast<int64_t>([error code]),
                                     ToStd([error localizedDescription])});
}

// An NSException as INTERNAL with its name and reason.
inline absl::Status FromNSException(absl::string_view what, NSException* e) {
  return MakeDeviceError(absl::StatusCode::kInternal, what,
                         DeviceError{ToStd([e name]), 0, ToStd([e reason])});
}

// A framework call that returned nil: INVALID_ARGUMENT (the framework rejected what it was given).
inline absl::Status NilResult(absl::string_view what) {
  return MakeDeviceError(absl::StatusCode::kInvalidArgument, what,
                         DeviceError{"anerd.ane", 0, "the framework returned nil"});
}

}  // namespace anerd::backend::ane

#endif  // ANERD_SERVER_BACKEND_ANE_ANE_APPLE_OBJC_H_
