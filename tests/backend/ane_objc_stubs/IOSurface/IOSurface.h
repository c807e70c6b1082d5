// Stub of <IOSurface/IOSurface.h> and the CoreFoundation pieces it brings (macOS SDK), for
// compiling ane_device_apple.mm against GNUstep on Linux. Like the SDK's IOSurfaceRef.h, the
// functions are CF-audited (CF_IMPLICIT_BRIDGING_ENABLED is this pragma): IOSurfaceCreate follows
// the Create rule, so clang's analyzer tracks the +1 surface and reports it if it leaks.
#pragma once
#include <stdint.h>
typedef const void* CFTypeRef;
typedef const struct __CFString* CFStringRef;
typedef const struct __CFDictionary* CFDictionaryRef;
typedef struct __IOSurface* IOSurfaceRef;
typedef int kern_return_t;
typedef uint32_t IOSurfaceLockOptions;
enum { kIOSurfaceLockReadOnly = 0x00000001, kIOSurfaceLockAvoidSync = 0x00000002 };
extern "C" {
#pragma clang arc_cf_code_audited begin
extern const CFStringRef kIOSurfaceWidth;
extern const CFStringRef kIOSurfaceHeight;
extern const CFStringRef kIOSurfaceBytesPerElement;
extern const CFStringRef kIOSurfaceBytesPerRow;
extern const CFStringRef kIOSurfaceAllocSize;
extern const CFStringRef kIOSurfacePixelFormat;
IOSurfaceRef IOSurfaceCreate(CFDictionaryRef properties);
kern_return_t IOSurfaceLock(IOSurfaceRef buffer, IOSurfaceLockOptions options, uint32_t* seed);
kern_return_t IOSurfaceUnlock(IOSurfaceRef buffer, IOSurfaceLockOptions options, uint32_t* seed);
void* IOSurfaceGetBaseAddress(IOSurfaceRef buffer);
void CFRelease(CFTypeRef cf);
#pragma clang arc_cf_code_audited end
}
