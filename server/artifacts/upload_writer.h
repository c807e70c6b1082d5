// UploadWriter: hashes, writes and commits one artifact upload on a thread of its own, so that the
// RPC receiving the upload reads the next chunk while earlier ones are hashed and written (issue
// 19: on the RPC's own thread, receiving, SHA-256 and the disk took turns and an upload ran at a
// fifth of a raw stream's speed).
//
// Protocol (one producer, e.g. a gRPC reactor; the callbacks run on the writer thread):
//   Start      creates the temporary upload file (ArtifactStore::Begin) and the thread.
//   Push       queues a chunk (moved, never copied) and returns whether there is room for more.
//              After a false, push nothing more until `on_room` has run: the queue holds at most
//              `max_queued_bytes` plus the chunk that filled it, so an upload's memory is bounded
//              whatever the client sends.
//   Finish     no more chunks: the thread writes what is queued, then ArtifactStore::Commit checks
//              the digest, syncs the file once and records it; `on_done` gets the result.
//   on_done    runs exactly once: after Finish with Commit's result (INVALID_ARGUMENT naming both
//              digests on a mismatch), or earlier with the first write error (chunks pushed after
//              it are dropped). When it runs, an uncommitted upload's file is already gone.
//   destroy    cancels: queued chunks are dropped, the thread is joined and the temporary file is
//              unlinked before the destructor returns (nothing half-stored); callbacks may still
//              run until then, never after. Must not be destroyed from its own callbacks.
//
// No exception leaves the thread (anything thrown becomes an INTERNAL `on_done`). Callbacks are
// called without the writer's lock held, so they may take the producer's own lock.
//
// Thread-safety: Push and Finish are called by one producer thread at a time; the destructor
// must not race with them.
#ifndef ANERD_SERVER_ARTIFACTS_UPLOAD_WRITER_H_
#define ANERD_SERVER_ARTIFACTS_UPLOAD_WRITER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/artifacts/artifact_store.h"

namespace anerd::artifacts {

class UploadWriter {
 public:
  using DoneFn = std::function<void(absl::StatusOr<ArtifactRecord>)>;
  using RoomFn = std::function<void()>;

  // `store` must outlive the writer. Errors: Begin's (naming the directory), or UNAVAILABLE when
  // no thread can be started.
  static absl::StatusOr<std::unique_ptr<UploadWriter>> Start(ArtifactStore* store,
                                                             uint64_t max_queued_bytes,
                                                             RoomFn on_room, DoneFn on_done);
  ~UploadWriter();
  UploadWriter(const UploadWriter&) = delete;
  UploadWriter& operator=(const UploadWriter&) = delete;

  // Queues `chunk`; false when the queue is now full (wait for `on_room`).
  bool Push(std::string chunk);
  // Ends the upload: commit `meta` once every pushed chunk is written.
  void Finish(ArtifactStore::NewArtifact meta);

 private:
  UploadWriter(ArtifactStore* store, std::unique_ptr<PendingArtifact> pending,
               uint64_t max_queued_bytes, RoomFn on_room, DoneFn on_done);
  void Run();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<ArtifactRecord> WriteAndCommit();

  ArtifactStore* const store_;                // not owned
  std::unique_ptr<PendingArtifact> pending_;  // only the writer thread touches it once started
  const uint64_t max_queued_bytes_;
  const RoomFn on_room_;
  const DoneFn on_done_;

  absl::Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool room_wanted_ ABSL_GUARDED_BY(mu_) = false;  // a Push returned false
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;  // on_done has run (or is running) with an error
  ArtifactStore::NewArtifact meta_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace anerd::artifacts

#endif  // ANERD_SERVER_ARTIFACTS_UPLOAD_WRITER_H_
