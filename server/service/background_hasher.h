// BackgroundHasher: SHA-256 of a buffer that is still being filled, computed on its own thread so
// that hashing a large upload overlaps with receiving it (the receiving gRPC thread only appends
// and publishes). The buffer must have reserved its final size before the first Publish, so its
// data never moves, and must outlive Finish().
//
// Thread-safety: Publish and Finish are called from one producer thread at a time.
#ifndef ANERD_SERVER_SERVICE_BACKGROUND_HASHER_H_
#define ANERD_SERVER_SERVICE_BACKGROUND_HASHER_H_

#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"

namespace anerd::service {

class BackgroundHasher {
 public:
  explicit BackgroundHasher(const std::string* buffer);
  ~BackgroundHasher();  // joins (finishing the hash) if Finish was not called

  BackgroundHasher(const BackgroundHasher&) = delete;
  BackgroundHasher& operator=(const BackgroundHasher&) = delete;

  // Bytes [0, size) of the buffer are written and may be hashed.
  void Publish(size_t size);
  // Waits until every published byte is hashed; returns the hex digest of the published bytes.
  std::string Finish();

 private:
  void Loop();

  const char* data_;
  Sha256 sha_;
  absl::Mutex mu_;
  size_t published_ ABSL_GUARDED_BY(mu_) = 0;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  size_t hashed_ = 0;  // owned by the hashing thread until it exits
  std::thread thread_;
  std::string digest_;
};

}  // namespace anerd::service

#endif  // ANERD_SERVER_SERVICE_BACKGROUND_HASHER_H_
