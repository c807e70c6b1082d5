#include "server/service/upload_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/paths.h"

namespace anerd::service {
namespace {

constexpr size_t kMaxIo = size_t{1} << 30;

absl::Status ErrnoError(absl::string_view what) {
  return absl::ErrnoToStatus(errno, std::string(what));
}

}  // namespace

absl::Status SpooledFile::WriteAt(uint64_t offset, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n =
        ::pwrite(fd_.get(), data.data(), std::min(data.size(), kMaxIo), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot spool an upload to disk");
    offset += static_cast<uint64_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SpooledFile::ReadAt(uint64_t offset, uint64_t size) const {
  std::string out(size, '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::pread(fd_.get(), out.data() + got, std::min(out.size() - got, kMaxIo),
                              static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read a spooled upload back");
    if (n == 0) return absl::DataLossError("a spooled upload is shorter than what was written");
    got += static_cast<size_t>(n);
  }
  return out;
}

UploadSpool::UploadSpool(std::string dir, uint64_t max_bytes_in_flight)
    : dir_(std::move(dir)), max_bytes_(max_bytes_in_flight) {}

UploadSpool::Upload::~Upload() { spool_->Release(bytes_); }

absl::StatusOr<std::unique_ptr<SpooledFile>> UploadSpool::Upload::NewFile() {
  absl::StatusOr<ScopedFd> fd = spool_->CreateFile();
  if (!fd.ok()) return fd.status();
  return std::make_unique<SpooledFile>(*std::move(fd));
}

absl::StatusOr<std::unique_ptr<UploadSpool::Upload>> UploadSpool::Reserve(uint64_t declared_bytes) {
  absl::MutexLock lock(&mu_);
  if (max_bytes_ > 0 && (declared_bytes > max_bytes_ || in_flight_ > max_bytes_ - declared_bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the daemon is already receiving ", in_flight_, " bytes of weight uploads; ",
        declared_bytes, " more would exceed its limit of ", max_bytes_,
        " (retry when other uploads finish, or raise anerd --max-upload-bytes-in-flight)"));
  }
  in_flight_ += declared_bytes;
  return std::unique_ptr<Upload>(new Upload(shared_from_this(), declared_bytes));
}

uint64_t UploadSpool::bytes_in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

void UploadSpool::Release(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  in_flight_ -= bytes;
}

absl::StatusOr<ScopedFd> UploadSpool::CreateFile() {
  {
    absl::MutexLock lock(&mu_);
    if (!dir_ready_) {
      if (absl::Status s = MakeDirs(dir_, 0700); !s.ok()) return s;
      dir_ready_ = true;
    }
  }
  const std::string path =
      absl::StrCat(dir_, "/upload-", getpid(), "-", next_id_.fetch_add(1), ".tmp");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot create an upload file in ", dir_));
  ::unlink(path.c_str());  // the bytes live as long as the descriptor, and no longer
  return ScopedFd(fd);
}

}  // namespace anerd::service
