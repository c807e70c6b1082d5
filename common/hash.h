// SHA-256 (FIPS 180-4) through OpenSSL's libcrypto, which gRPC already brings into the process and
// which uses the CPU's SHA extensions (about 10x faster than portable code: hashing 100 MB of
// weights on every compile request is on the cache-hit path).
//
// Used for content addressing (kernel ids, blob names). Digests are 64 lowercase hex characters.
// Thread-safety: a Sha256 object is not thread-safe (one thread at a time); Sha256Hex is a pure
// function and safe from any thread.
#ifndef ANERD_COMMON_HASH_H_
#define ANERD_COMMON_HASH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace anerd {

// Incremental SHA-256. Feed bytes with Update (any number of calls, any split), then call
// HexDigest once. After HexDigest the object is reset to the empty-message state, so it may be
// reused for a new message.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  // Appends `data` to the message being hashed.
  void Update(absl::string_view data);
  // Finishes the message and returns its digest as 64 lowercase hex characters; then resets.
  std::string HexDigest();
  // Same as HexDigest but returns the 32 raw digest bytes; then resets.
  std::array<uint8_t, 32> Digest();

 private:
  void Reset();
  void* ctx_;  // EVP_MD_CTX*, owned
};

// SHA-256 of `data` as 64 lowercase hex characters.
std::string Sha256Hex(absl::string_view data);

// True when `s` looks like a digest from Sha256Hex: exactly 64 characters of [0-9a-f].
bool IsSha256Hex(absl::string_view s);

}  // namespace anerd

#endif  // ANERD_COMMON_HASH_H_
