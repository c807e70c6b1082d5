// The AppleNeuralEngine.framework device (ane_device_apple.mm, built only on macOS): dlopens the
// private framework and drives it exactly as docs/ANE_NOTES.md §1 describes. C++ only; the
// Objective-C lives in the .mm.
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
