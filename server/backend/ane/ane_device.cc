#include "server/backend/ane/ane_device.h"

#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace anerd::backend::ane {
namespace {

constexpr char kPayloadUrl[] = "type.anerd.io/anerd.ane.DeviceError";

}  // namespace

absl::Status MakeDeviceError(absl::StatusCode code, absl::string_view what,
                             const DeviceError& error) {
  absl::Status status(code, absl::StrCat(what, ": ", error.description, " (", error.domain,
                                         " code ", error.code, ")"));
  // Payload: "domain\ncode\ndescription" (the description may itself contain newlines).
  status.SetPayload(kPayloadUrl, absl::Cord(absl::StrCat(error.domain, "\n", error.code, "\n",
                                                         error.description)));
  return status;
}

std::optional<DeviceError> GetDeviceError(const absl::Status& status) {
  auto payload = status.GetPayload(kPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  const std::string text(*payload);
  std::vector<std::string> parts = absl::StrSplit(text, absl::MaxSplits('\n', 2));
  if (parts.size() != 3) return std::nullopt;
  DeviceError error;
  error.domain = parts[0];
  if (!absl::SimpleAtoi(parts[1], &error.code)) return std::nullopt;
  error.description = parts[2];
  return error;
}

}  // namespace anerd::backend::ane
