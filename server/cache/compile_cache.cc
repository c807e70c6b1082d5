#include "server/cache/compile_cache.h"

#include <utility>
#include <vector>

namespace anerd::cache {

using Program = std::shared_ptr<backend::CompiledProgram>;

CompileCache::CompileCache(uint64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}

Program CompileCache::Lookup(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, found->second);  // iterators stay valid
  return found->second->program;
}

void CompileCache::RemoveLocked(LruList::iterator it, std::vector<Program>* released) {
  bytes_ -= it->bytes;
  released->push_back(std::move(it->program));
  index_.erase(it->key);
  lru_.erase(it);
}

void CompileCache::Insert(const std::string& key, Program program, uint64_t bytes) {
  std::vector<Program> released;  // destroyed after the lock is released
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found != index_.end()) RemoveLocked(found->second, &released);
  if (bytes > capacity_bytes_) return;
  lru_.push_front(Entry{key, std::move(program), bytes});
  index_[key] = lru_.begin();
  bytes_ += bytes;
  while (bytes_ > capacity_bytes_) {
    RemoveLocked(std::prev(lru_.end()), &released);
    ++evictions_;
  }
}

void CompileCache::Erase(const std::string& key) {
  std::vector<Program> released;
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found != index_.end()) RemoveLocked(found->second, &released);
}

bool CompileCache::Contains(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  return index_.contains(key);
}

CacheStats CompileCache::Stats() const {
  absl::MutexLock lock(&mu_);
  CacheStats stats;
  stats.entries = lru_.size();
  stats.bytes = bytes_;
  stats.capacity_bytes = capacity_bytes_;
  stats.hits = hits_;
  stats.misses = misses_;
  stats.evictions = evictions_;
  return stats;
}

}  // namespace anerd::cache
