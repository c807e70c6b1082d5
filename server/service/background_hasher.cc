#include "server/service/background_hasher.h"

namespace anerd::service {

BackgroundHasher::BackgroundHasher(const std::string* buffer) : data_(buffer->data()) {
  thread_ = std::thread([this] { Loop(); });
}

BackgroundHasher::~BackgroundHasher() {
  if (thread_.joinable()) Finish();
}

void BackgroundHasher::Publish(size_t size) {
  absl::MutexLock lock(&mu_);
  published_ = size;
}

void BackgroundHasher::Loop() {
  while (true) {
    size_t target = 0;
    bool finishing = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](BackgroundHasher* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(h->mu_) {
            return h->finishing_ || h->published_ > h->hashed_;
          },
          this));
      target = published_;
      finishing = finishing_;
    }
    if (target > hashed_) {
      sha_.Update(absl::string_view(data_ + hashed_, target - hashed_));
      hashed_ = target;
    }
    if (finishing && hashed_ == target) return;
  }
}

std::string BackgroundHasher::Finish() {
  {
    absl::MutexLock lock(&mu_);
    finishing_ = true;
  }
  thread_.join();
  digest_ = sha_.HexDigest();
  return digest_;
}

}  // namespace anerd::service
