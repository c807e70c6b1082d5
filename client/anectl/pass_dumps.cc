#include "client/anectl/pass_dumps.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"

namespace anerd::anectl {
namespace {

bool SafeName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-')) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> WritePassDumps(
    const std::string& dir, const google::protobuf::RepeatedPtrField<v1::PassDump>& dumps) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("--dump-passes ", dir, ": cannot create the directory: ", ec.message()));
  }
  std::vector<std::string> written;
  for (const v1::PassDump& d : dumps) {
    if (!SafeName(d.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat("the daemon sent a pass dump named '", d.name(), "' (want [0-9a-z-]+)"));
    }
    const std::string path = (std::filesystem::path(dir) / (d.name() + ".txt")).string();
    if (absl::Status s = WriteFileAtomically(path, d.text(), 0644); !s.ok()) return s;
    written.push_back(path);
  }
  return written;
}

}  // namespace anerd::anectl
