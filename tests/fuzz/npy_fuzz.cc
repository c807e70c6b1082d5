// libFuzzer target for .npy parsing (common/npy.h): any bytes must parse or fail cleanly, within
// the data bound, and whatever parses must validate and serialise back to an image that parses
// to the same array.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kMaxDataBytes = 1 << 20;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<anerd::NpyArray> array = anerd::ParseNpy(bytes, kMaxDataBytes);
  if (!array.ok()) return 0;
  if (static_cast<int64_t>(array->data.size()) > kMaxDataBytes) std::abort();
  if (!anerd::ValidateNpyArray(*array).ok()) std::abort();
  absl::StatusOr<anerd::NpyArray> again = anerd::ParseNpy(anerd::SerializeNpy(*array));
  if (!again.ok() || again->descr != array->descr || again->shape != array->shape ||
      again->data != array->data) {
    std::abort();
  }
  return 0;
}
