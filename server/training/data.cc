#include "server/training/data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/regular_file.h"
#include "common/status_macros.h"

namespace anerd::training {
namespace {

constexpr int64_t kMaxTextBytes = int64_t{1} << 32;

absl::Status ErrnoStatus(const std::string& what, const std::string& path) {
  const int e = errno;
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == EACCES) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

// Length of the valid UTF-8 sequence at s[i], or 0 if invalid.
int Utf8Length(const unsigned char* s, size_t n, size_t i) {
  const unsigned char c = s[i];
  if (c < 0x80) return 1;
  int len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || c == 0xC0 || c == 0xC1 || c > 0xF4 || i + len > n) return 0;
  for (int k = 1; k < len; ++k) {
    if ((s[i + k] & 0xC0) != 0x80) return 0;
  }
  if (len == 3 && c == 0xE0 && s[i + 1] < 0xA0) return 0;   // overlong
  if (len == 3 && c == 0xED && s[i + 1] >= 0xA0) return 0;  // surrogates
  if (len == 4 && c == 0xF0 && s[i + 1] < 0x90) return 0;   // overlong
  if (len == 4 && c == 0xF4 && s[i + 1] >= 0x90) return 0;  // > U+10FFFF
  return len;
}

absl::Status CheckTokens(const uint16_t* tokens, int64_t n, int vocab, int seq,
                         const std::string& path) {
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("token data ", path, ": token ", tokens[i],
                                                     " at index ", i,
                                                     " is outside the vocabulary (", vocab, ")"));
    }
  }
  if (n < int64_t{seq} + 1) {
    return absl::InvalidArgumentError(absl::StrCat("token data ", path,
                                                   " is too short: need at least ", seq + 1,
                                                   " tokens (seq + 1), got ", n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TokenData::KeepFirst(int64_t n, int seq) {
  if (n > size_ || n < int64_t{seq} + 1) {
    return absl::InvalidArgumentError(absl::StrCat("train_tokens: ", n, " of ", size_,
                                                   " tokens; need at least seq + 1 = ", seq + 1,
                                                   " and at most all of them"));
  }
  size_ = n;
  return absl::OkStatus();
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

TokenData::~TokenData() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

absl::StatusOr<std::unique_ptr<TokenData>> TokenData::Open(const std::string& path,
                                                           absl::string_view format, int vocab,
                                                           int seq) {
  const bool tokens = format == "tokens" || (format.empty() && absl::EndsWith(path, ".bin"));
  std::unique_ptr<TokenData> d(new TokenData());
  if (!tokens) {
    if (vocab < 256) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text data needs a vocabulary of at least 256 (byte tokens); the model has ", vocab));
    }
    ANERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxTextBytes));
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    for (size_t i = 0; i < text.size();) {
      const int len = Utf8Length(s, text.size(), i);
      if (len == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("text data ", path, ": invalid UTF-8 at byte offset ", i));
      }
      i += len;
    }
    d->owned_.assign(s, s + text.size());
    d->tokens_ = d->owned_.data();
    d->size_ = static_cast<int64_t>(d->owned_.size());
  } else {
    ANERD_ASSIGN_OR_RETURN(RegularFile file, OpenRegularFile(path, "token data"));
    const struct stat& st = file.st;
    if (st.st_size % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat("token data ", path, " has an odd size (",
                                                     st.st_size,
                                                     " bytes); expected uint16 tokens"));
    }
    if (st.st_size > 0) {
      d->map_ = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, file.fd.get(), 0);
      if (d->map_ == MAP_FAILED) {
        d->map_ = nullptr;
        return ErrnoStatus("cannot map token data", path);
      }
      d->map_bytes_ = st.st_size;
    }
    d->tokens_ = static_cast<const uint16_t*>(d->map_);
    d->size_ = st.st_size / 2;
  }
  ANERD_RETURN_IF_ERROR(CheckTokens(d->tokens_, d->size_, vocab, seq, path));
  d->file_size_ = d->size_;
  return d;
}

int64_t TokenData::WindowStart(bool random, uint64_t seed, int64_t k, int seq) const {
  if (random) {
    const uint64_t span = static_cast<uint64_t>(size_ - seq);  // starts 0 .. n − S − 1
    return static_cast<int64_t>(
        SplitMix64(seed ^ (static_cast<uint64_t>(k) * 0xD1B54A32D192ED03ull)) % span);
  }
  const int64_t windows = (size_ - 1) / seq;
  return (k % windows) * seq;
}

std::vector<uint16_t> TokenData::UsedIds() const {
  std::vector<bool> seen(65536, false);
  for (int64_t i = 0; i < size_; ++i) seen[tokens_[i]] = true;
  std::vector<uint16_t> ids;
  for (int v = 0; v < 65536; ++v) {
    if (seen[v]) ids.push_back(static_cast<uint16_t>(v));
  }
  return ids;
}

}  // namespace anerd::training
