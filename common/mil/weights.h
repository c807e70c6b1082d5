// WeightFiles: the named weight files that accompany a MIL program (the contents of the
// `@model_path/weights/` directory the ANE compiler sees). Immutable once handed to the verifier.
// Thread-safety: const methods are safe concurrently; Add is not.
#ifndef ANERD_COMMON_MIL_WEIGHTS_H_
#define ANERD_COMMON_MIL_WEIGHTS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::mil {

// Maps a path as written in MIL ("@model_path/weights/w.bin") or as supplied by a client
// ("weights/w.bin", "w.bin") to the canonical key "weights/w.bin". Returns INVALID_ARGUMENT for
// absolute paths, "..", empty names and paths outside "weights/".
absl::StatusOr<std::string> CanonicalWeightPath(absl::string_view path);

class WeightFiles {
 public:
  // Adds a file under its canonical key; ALREADY_EXISTS if present, INVALID_ARGUMENT for a bad
  // path.
  absl::Status Add(absl::string_view path, std::string bytes);
  // The bytes of a file by any accepted spelling of its path, or nullptr.
  const std::string* Find(absl::string_view path) const;
  size_t size() const { return files_.size(); }
  uint64_t total_bytes() const { return total_bytes_; }
  // Canonical key -> bytes, sorted by key.
  const std::map<std::string, std::shared_ptr<const std::string>>& files() const { return files_; }

 private:
  std::map<std::string, std::shared_ptr<const std::string>> files_;
  uint64_t total_bytes_ = 0;
};

}  // namespace anerd::mil

#endif  // ANERD_COMMON_MIL_WEIGHTS_H_
