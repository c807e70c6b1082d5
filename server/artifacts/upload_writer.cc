#include "server/artifacts/upload_writer.h"

#include <algorithm>
#include <exception>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace anerd::artifacts {

absl::StatusOr<std::unique_ptr<UploadWriter>> UploadWriter::Start(ArtifactStore* store,
                                                                  uint64_t max_queued_bytes,
                                                                  RoomFn on_room, DoneFn on_done) {
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<PendingArtifact> pending, store->Begin());
  std::unique_ptr<UploadWriter> writer(new UploadWriter(store, std::move(pending),
                                                        std::max<uint64_t>(max_queued_bytes, 1),
                                                        std::move(on_room), std::move(on_done)));
  try {
    writer->thread_ = std::thread([raw = writer.get()] { raw->Run(); });
  } catch (const std::system_error& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot start a thread to store the upload (", e.what(), "); retry"));
  }
  return writer;
}

UploadWriter::UploadWriter(ArtifactStore* store, std::unique_ptr<PendingArtifact> pending,
                           uint64_t max_queued_bytes, RoomFn on_room, DoneFn on_done)
    : store_(store),
      pending_(std::move(pending)),
      max_queued_bytes_(max_queued_bytes),
      on_room_(std::move(on_room)),
      on_done_(std::move(on_done)) {}

UploadWriter::~UploadWriter() {
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  if (thread_.joinable()) thread_.join();
  pending_.reset();  // unlinks the file when the thread never ran
}

bool UploadWriter::Push(std::string chunk) {
  absl::MutexLock lock(&mu_);
  if (failed_ || finishing_ || cancelled_) return true;  // dropped: on_done ends the upload
  queued_bytes_ += chunk.size();
  queue_.push_back(std::move(chunk));
  if (queued_bytes_ < max_queued_bytes_) return true;
  room_wanted_ = true;
  return false;
}

void UploadWriter::Finish(ArtifactStore::NewArtifact meta) {
  absl::MutexLock lock(&mu_);
  meta_ = std::move(meta);
  finishing_ = true;
}

bool UploadWriter::HasWork() const { return !queue_.empty() || finishing_ || cancelled_; }

absl::StatusOr<ArtifactRecord> UploadWriter::WriteAndCommit() {
  while (true) {
    std::string chunk;
    bool room = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &UploadWriter::HasWork));
      if (cancelled_) return absl::CancelledError("the upload was cancelled");
      if (queue_.empty()) break;  // finishing, and every chunk is written
      chunk = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= chunk.size();
      if (room_wanted_ && queued_bytes_ < max_queued_bytes_) {
        room_wanted_ = false;
        room = true;
      }
    }
    if (room) on_room_();  // the next chunk is received while this one is written
    ANERD_RETURN_IF_ERROR(pending_->Append(chunk));
  }
  ArtifactStore::NewArtifact meta;
  {
    absl::MutexLock lock(&mu_);
    meta = std::move(meta_);
  }
  return store_->Commit(std::move(pending_), meta);
}

void UploadWriter::Run() {
  absl::StatusOr<ArtifactRecord> result = absl::InternalError("storing the upload failed");
  try {
    result = WriteAndCommit();
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("storing the upload failed: ", e.what()));
  } catch (...) {
    result = absl::InternalError("storing the upload failed: an unknown exception");
  }
  pending_.reset();  // an uncommitted file is gone before anyone hears of the end
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    if (!result.ok()) {
      failed_ = true;
      queue_.clear();
      queued_bytes_ = 0;
    }
  }
  try {
    on_done_(std::move(result));
  } catch (...) {
    spdlog::error("an upload's completion callback threw");
  }
}

}  // namespace anerd::artifacts
