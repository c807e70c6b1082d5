// CompileCache: an in-memory LRU of compiled programs bounded by their byte size.
//
// Keys are opaque strings (the engine uses the kernel id, which already hashes the program text,
// weights, backend id + version and options). Entries are handed out as shared_ptr, so an entry a
// caller is using stays alive after it is evicted or erased; the cache only drops its own
// reference. Byte sizes are given by the caller (the engine passes what the backend planned for the
// program, CompiledProgram::memory_bytes) and drive eviction.
//
// Thread-safety: all methods may be called concurrently from any thread (one internal mutex; no
// program is destroyed while it is held — evicted references are released after unlocking).
#ifndef ANERD_SERVER_CACHE_COMPILE_CACHE_H_
#define ANERD_SERVER_CACHE_COMPILE_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/backend.h"

namespace anerd::cache {

struct CacheStats {
  uint64_t entries = 0, bytes = 0, capacity_bytes = 0, hits = 0, misses = 0, evictions = 0;
};

class CompileCache {
 public:
  explicit CompileCache(uint64_t capacity_bytes);
  CompileCache(const CompileCache&) = delete;
  CompileCache& operator=(const CompileCache&) = delete;

  // The program cached under `key` (and marks it most recently used; counts a hit), or nullptr
  // (counts a miss).
  std::shared_ptr<backend::CompiledProgram> Lookup(const std::string& key);
  // Inserts (replacing any entry with the key), then evicts least-recently-used entries until
  // within capacity. An entry larger than the capacity is not kept (the caller still holds
  // `program`); replacing or declining an entry does not count as an eviction.
  void Insert(const std::string& key, std::shared_ptr<backend::CompiledProgram> program,
              uint64_t bytes);
  // Drops the entry with `key`, if any (not counted as an eviction).
  void Erase(const std::string& key);
  // Whether `key` is cached, without touching LRU order or hit/miss counts.
  bool Contains(const std::string& key) const;
  CacheStats Stats() const;

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<backend::CompiledProgram> program;
    uint64_t bytes = 0;
  };
  using LruList = std::list<Entry>;  // front = most recently used

  // Unlinks `it`, moving its program reference into `*released` to be dropped unlocked.
  void RemoveLocked(LruList::iterator it,
                    std::vector<std::shared_ptr<backend::CompiledProgram>>* released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t capacity_bytes_;
  mutable absl::Mutex mu_;
  LruList lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, LruList::iterator> index_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace anerd::cache

#endif  // ANERD_SERVER_CACHE_COMPILE_CACHE_H_
