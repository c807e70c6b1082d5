#include "server/artifacts/upload_writer.h"

#include <algorithm>
#include <exception>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
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
    writer->hasher_thread_ = std::thread([raw = writer.get()] { raw->RunHasher(); });
    writer->thread_ = std::thread([raw = writer.get()] { raw->Run(); });
  } catch (const std::system_error& e) {
    // The destructor stops and joins a hasher that did start.
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
  if (hasher_thread_.joinable()) hasher_thread_.join();
  pending_.reset();  // unlinks the file when the writer thread never ran
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

bool UploadWriter::ReadyFor(Consumer c) {
  return cancelled_ || failed_ || finishing_ || SeqOf(c) < front_seq_ + queue_.size();
}

const std::string* UploadWriter::Next(Consumer c) {
  absl::MutexLock lock(&mu_);
  struct Arg {
    UploadWriter* self;
    Consumer c;
  } arg{this, c};
  mu_.Await(absl::Condition(
      +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS { return a->self->ReadyFor(a->c); }, &arg));
  if (cancelled_ || failed_) return nullptr;
  const uint64_t seq = SeqOf(c);
  if (seq < front_seq_ + queue_.size()) return &queue_[seq - front_seq_];
  return nullptr;  // finishing, and every chunk is passed
}

bool UploadWriter::Release(Consumer c) {
  absl::MutexLock lock(&mu_);
  ++SeqOf(c);
  const uint64_t passed = std::min(hash_seq_, write_seq_);
  while (!queue_.empty() && front_seq_ < passed) {
    queued_bytes_ -= queue_.front().size();
    queue_.pop_front();
    ++front_seq_;
  }
  if (!room_wanted_ || queued_bytes_ >= max_queued_bytes_) return false;
  room_wanted_ = false;
  return true;  // the next chunk is received while this one is hashed and written
}

void UploadWriter::RunHasher() {
  Sha256 hash;
  bool ok = true;
  try {
    while (const std::string* chunk = Next(Consumer::kHasher)) {
      hash.Update(*chunk);
      if (Release(Consumer::kHasher)) on_room_();
    }
  } catch (...) {
    ok = false;  // the writer reports it
  }
  absl::MutexLock lock(&mu_);
  if (cancelled_ || failed_) return;
  digest_ = ok ? hash.HexDigest() : "";
  hashed_all_ = true;
}

absl::StatusOr<ArtifactRecord> UploadWriter::WriteAndCommit() {
  while (const std::string* chunk = Next(Consumer::kWriter)) {
    ANERD_RETURN_IF_ERROR(pending_->Write(*chunk));
    if (Release(Consumer::kWriter)) on_room_();
  }
  ArtifactStore::NewArtifact meta;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &UploadWriter::HashDone));
    if (cancelled_) return absl::CancelledError("the upload was cancelled");
    if (digest_.empty()) return absl::InternalError("hashing the upload failed");
    pending_->SetDigest(std::move(digest_));
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
    // The hasher stops at its next chunk; the queue is freed when the writer is destroyed (the
    // hasher may still be reading a chunk now).
    if (!result.ok()) failed_ = true;
  }
  try {
    on_done_(std::move(result));
  } catch (...) {
    spdlog::error("an upload's completion callback threw");
  }
}

}  // namespace anerd::artifacts
