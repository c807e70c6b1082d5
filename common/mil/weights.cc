#include "common/mil/weights.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace anerd::mil {
namespace {

constexpr absl::string_view kModelPathPrefix = "@model_path/";
constexpr absl::string_view kWeightsDir = "weights/";

absl::Status BadPath(absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("weight file path \"", path, "\": ", why));
}

// Checks one '/'-separated component of a relative path.
bool IsSafeComponent(absl::string_view part) {
  if (part.empty() || part == "." || part == "..") return false;
  for (char c : part) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\' || c == ':') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> CanonicalWeightPath(absl::string_view path) {
  const absl::string_view original = path;
  if (path.empty()) return BadPath(original, "empty");
  if (path.front() == '/') return BadPath(original, "absolute paths are not allowed");
  bool had_prefix = absl::ConsumePrefix(&path, kModelPathPrefix);
  if (!absl::ConsumePrefix(&path, kWeightsDir)) {
    // A bare file name ("w.bin") means "weights/w.bin"; anything else lies outside weights/.
    if (had_prefix || absl::StrContains(path, '/')) {
      return BadPath(original, "must lie under weights/");
    }
  }
  if (path.empty()) return BadPath(original, "empty file name");
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  for (absl::string_view part : parts) {
    if (!IsSafeComponent(part)) {
      return BadPath(original, "empty, '.', '..' or invalid characters in a path component");
    }
  }
  return absl::StrCat(kWeightsDir, path);
}

absl::Status WeightFiles::Add(absl::string_view path, std::string bytes) {
  auto key = CanonicalWeightPath(path);
  if (!key.ok()) return key.status();
  if (files_.count(*key) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("weight file \"", *key, "\" added twice"));
  }
  total_bytes_ += bytes.size();
  files_.emplace(std::move(*key), std::make_shared<const std::string>(std::move(bytes)));
  return absl::OkStatus();
}

const std::string* WeightFiles::Find(absl::string_view path) const {
  auto key = CanonicalWeightPath(path);
  if (!key.ok()) return nullptr;
  auto it = files_.find(*key);
  return it == files_.end() ? nullptr : it->second.get();
}

}  // namespace anerd::mil
