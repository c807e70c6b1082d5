// UploadWriter: hashes, writes and commits one artifact upload on threads of its own, so that the
// RPC receiving the upload reads the next chunk while earlier ones are hashed and written (issue
// 19: on the RPC's own thread, receiving, SHA-256 and the disk took turns and an upload ran at a
// fifth of a raw stream's speed). Two threads share the queue: one hashes the chunks in order,
// the other writes them in order, so hashing (about 1.8 GB/s) and the disk overlap each other as
// well as the receiving; a chunk leaves the queue when both have passed it.
//
// Protocol (one producer, e.g. a gRPC reactor; the callbacks run on the writer's threads):
//   Start      creates the temporary upload file (ArtifactStore::Begin) and the threads.
//   Push       queues a chunk (moved, never copied) and returns whether there is room for more.
//              After a false, push nothing more until `on_room` has run: the queue holds at most
//              `max_queued_bytes` plus the chunk that filled it, so an upload's memory is bounded
//              whatever the client sends.
//   Finish     no more chunks: the threads hash and write what is queued, then
//              ArtifactStore::Commit checks the digest, syncs the file once and records it;
//              `on_done` gets the result.
//   on_room    runs on the hasher or the writer thread, whichever frees the room; after a write
//              error it may still run (until the writer is destroyed) and should then do nothing.
//   on_done    runs exactly once, on the writer thread: after Finish with Commit's result
//   (INVALID_ARGUMENT naming both
//              digests on a mismatch), or earlier with the first write error (chunks pushed after
//              it are dropped). When it runs, an uncommitted upload's file is already gone.
//   destroy    cancels: queued chunks are dropped, the threads are joined and the temporary file
//              is unlinked before the destructor returns (nothing half-stored); callbacks may
//              still run until then, never after. Must not be destroyed from its own callbacks.
//
// No exception leaves a thread (anything thrown becomes an INTERNAL `on_done`). Callbacks are
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
  enum class Consumer { kHasher, kWriter };
  void Run();
  void RunHasher();
  // The consumer's next chunk, waiting for one; null when none is to come (every chunk passed
  // after Finish, cancelled, or failed). The chunk stays in the queue, at a stable address, until
  // both consumers have released it.
  const std::string* Next(Consumer c);
  // The consumer is done with its chunk: advances it, drops the chunks both have passed and says
  // whether the producer should now hear `on_room`.
  bool Release(Consumer c);
  uint64_t& SeqOf(Consumer c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return c == Consumer::kHasher ? hash_seq_ : write_seq_;
  }
  bool ReadyFor(Consumer c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HashDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return hashed_all_ || cancelled_; }
  absl::StatusOr<ArtifactRecord> WriteAndCommit();

  ArtifactStore* const store_;                // not owned
  std::unique_ptr<PendingArtifact> pending_;  // only the writer thread touches it once started
  const uint64_t max_queued_bytes_;
  const RoomFn on_room_;
  const DoneFn on_done_;

  absl::Mutex mu_;
  // queue_[i] is chunk number front_seq_ + i; the hasher's next chunk is hash_seq_, the writer's
  // write_seq_ (both >= front_seq_). std::deque keeps element addresses across push_back and
  // pop_front of other elements, so a consumer reads its chunk outside the lock.
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t front_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hash_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t write_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool hashed_all_ ABSL_GUARDED_BY(mu_) = false;  // the hasher saw the end; digest_ is set
  std::string digest_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool room_wanted_ ABSL_GUARDED_BY(mu_) = false;  // a Push returned false
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;  // on_done has run (or is running) with an error
  ArtifactStore::NewArtifact meta_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;         // writes, then commits
  std::thread hasher_thread_;  // hashes
};

}  // namespace anerd::artifacts

#endif  // ANERD_SERVER_ARTIFACTS_UPLOAD_WRITER_H_
