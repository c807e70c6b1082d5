// UploadSpool: where CompileKernel weight uploads wait on disk, and the daemon-wide bound on the
// bytes of unfinished uploads.
//
// An upload reserves the total its header declares (RESOURCE_EXHAUSTED naming the bytes already
// in flight, the limit and the flag when that would exceed the bound), then appends each chunk to
// a spooled file: a file created in the spool directory and unlinked at once, so its bytes are on
// disk rather than in the daemon's memory and nothing is left behind when the upload is
// cancelled, fails or the daemon dies. The reservation and the files are released when the last
// reference to the Upload goes (after the compile has read the bytes, or when the stream ends
// early).
//
// Thread-safety: UploadSpool is internally synchronised. One Upload is used by one stream at a
// time (gRPC serialises a reactor's callbacks); its files may then be read from another thread
// once writing has finished.
#ifndef ANERD_SERVER_SERVICE_UPLOAD_SPOOL_H_
#define ANERD_SERVER_SERVICE_UPLOAD_SPOOL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/regular_file.h"

namespace anerd::service {

// The bytes of one upload on disk: each weight file has its own region (one descriptor per
// upload, however many files it has). Not copyable; closed (and so freed) on destruction.
class SpooledFile {
 public:
  explicit SpooledFile(ScopedFd fd) : fd_(std::move(fd)) {}
  // Writes `data` at byte `offset`. The errno status (e.g. RESOURCE_EXHAUSTED for a full disk).
  absl::Status WriteAt(uint64_t offset, absl::string_view data);
  // `size` bytes from `offset` (allocates them); DATA_LOSS if fewer were written.
  absl::StatusOr<std::string> ReadAt(uint64_t offset, uint64_t size) const;

 private:
  ScopedFd fd_;
};

class UploadSpool : public std::enable_shared_from_this<UploadSpool> {
 public:
  // `dir` is created (0700) on first use; 0 `max_bytes_in_flight` = unlimited. Create it with
  // std::make_shared: every Upload keeps its spool alive.
  UploadSpool(std::string dir, uint64_t max_bytes_in_flight);
  UploadSpool(const UploadSpool&) = delete;
  UploadSpool& operator=(const UploadSpool&) = delete;

  // The bytes one upload reserved; returned to the spool on destruction.
  class Upload {
   public:
    ~Upload();
    Upload(const Upload&) = delete;
    Upload& operator=(const Upload&) = delete;
    // A new empty spooled file for this upload's bytes (the errno status naming the spool
    // directory if it cannot be created).
    absl::StatusOr<std::unique_ptr<SpooledFile>> NewFile();

   private:
    friend class UploadSpool;
    Upload(std::shared_ptr<UploadSpool> spool, uint64_t bytes)
        : spool_(std::move(spool)), bytes_(bytes) {}
    std::shared_ptr<UploadSpool> spool_;
    uint64_t bytes_;
  };

  // Reserves `declared_bytes` for one upload (see the file comment).
  absl::StatusOr<std::unique_ptr<Upload>> Reserve(uint64_t declared_bytes);
  // Bytes reserved by uploads not yet released.
  uint64_t bytes_in_flight() const;
  const std::string& dir() const { return dir_; }

 private:
  absl::StatusOr<ScopedFd> CreateFile();
  void Release(uint64_t bytes);

  const std::string dir_;
  const uint64_t max_bytes_;
  std::atomic<uint64_t> next_id_{0};
  mutable absl::Mutex mu_;
  uint64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool dir_ready_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_UPLOAD_SPOOL_H_
