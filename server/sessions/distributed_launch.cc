#include "server/sessions/distributed_launch.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/sessions/mpi_launch.h"

namespace anerd::sessions {
namespace {

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

}  // namespace

std::string FindOnPath(absl::string_view name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (Executable(candidate)) return candidate;
  }
  return "";
}

std::string RankBinaryBeside(absl::string_view daemon_path) {
  const size_t slash = daemon_path.rfind('/');
  if (slash == absl::string_view::npos) return "";
  const std::string candidate = absl::StrCat(daemon_path.substr(0, slash + 1), "anerd-rank");
  return Executable(candidate) ? candidate : "";
}

absl::Status CheckDistributedSession(const training::TrainSpec& spec,
                                     absl::string_view daemon_path) {
  if (spec.ranks <= 1) return absl::OkStatus();
  if (RankBinaryBeside(daemon_path).empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ranks: ", spec.ranks, " needs anerd-rank beside ", daemon_path,
                     ", which this build lacks: it was built without MPI (install openmpi-bin and "
                     "libopenmpi-dev, or Homebrew open-mpi, and rebuild)"));
  }
  if (FindOnPath("mpirun").empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ranks: ", spec.ranks, " needs mpirun on the daemon's PATH (Open MPI)"));
  }
  if (!spec.hostfile.empty()) {
    absl::StatusOr<std::vector<std::string>> hosts = ParseHostfile(spec.hostfile);
    if (!hosts.ok()) return hosts.status();
  }
  return absl::OkStatus();
}

}  // namespace anerd::sessions
