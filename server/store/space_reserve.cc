#include "server/store/space_reserve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace anerd::store {
namespace {

std::string ReservePath(const std::string& state_dir) { return state_dir + "/space.reserve"; }

// Writes `bytes` bytes to `fd` (real blocks: a sparse file would reserve nothing).
bool FillFile(int fd, int64_t bytes) {
  const std::vector<char> chunk(64 << 10, '\0');
  for (int64_t done = 0; done < bytes;) {
    const size_t n = static_cast<size_t>(std::min<int64_t>(chunk.size(), bytes - done));
    const ssize_t w = ::pwrite(fd, chunk.data(), n, done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += w;
  }
  return ::fsync(fd) == 0;
}

}  // namespace

bool HasSpaceReserve(const std::string& state_dir) {
  struct stat st;
  return ::stat(ReservePath(state_dir).c_str(), &st) == 0;
}

bool EnsureSpaceReserve(const std::string& state_dir) {
  if (HasSpaceReserve(state_dir)) return true;
  const std::string path = ReservePath(state_dir);
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool filled = FillFile(fd, kSpaceReserveBytes);
  ::close(fd);
  if (!filled || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

bool ReleaseSpaceReserve(const std::string& state_dir) {
  return ::unlink(ReservePath(state_dir).c_str()) == 0;
}

bool ReleaseSpaceReserveIfLow(const std::string& state_dir) {
  struct statvfs fs;
  if (::statvfs(state_dir.c_str(), &fs) != 0) return false;
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free_bytes >= static_cast<uint64_t>(kSpaceReserveBytes)) return false;
  if (!ReleaseSpaceReserve(state_dir)) return false;
  spdlog::error(
      "the disk holding {} is full ({} bytes free): released the {} byte space reserve "
      "so that anerd can start; free space (delete kernels or sessions) soon",
      state_dir, free_bytes, kSpaceReserveBytes);
  return true;
}

bool IsOutOfSpace(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kResourceExhausted &&
      status.code() != absl::StatusCode::kInternal) {
    return false;
  }
  return absl::StrContains(status.message(), "disk is full") ||
         absl::StrContains(status.message(), "No space left") ||
         absl::StrContains(status.message(), "quota exceeded");
}

absl::Status RunWithSpaceReserve(const std::string& state_dir,
                                 const std::function<absl::Status()>& op) {
  absl::Status status = op();
  if (!IsOutOfSpace(status) || !ReleaseSpaceReserve(state_dir)) return status;
  spdlog::warn("out of disk space in {} ({}): released the space reserve to finish", state_dir,
               std::string(status.message()));
  status = op();
  if (!EnsureSpaceReserve(state_dir)) {
    spdlog::warn("the space reserve in {} cannot be re-created yet: the disk is still full",
                 state_dir);
  }
  return status;
}

}  // namespace anerd::store
