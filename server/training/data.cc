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
#include "common/blocking_io_guard.h"
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

// Every id < vocab, and at least seq + 1 of them.
absl::Status CheckTokens(const TokenData& d, int vocab, int seq, const std::string& path) {
  const int64_t n = d.size();
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t id = d.token(i);
    if (id >= static_cast<uint32_t>(vocab)) {
      return absl::InvalidArgumentError(absl::StrCat("token data ", path, ": token ", id,
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

absl::StatusOr<DataFormat> ResolveDataFormat(absl::string_view path, absl::string_view format) {
  if (format == "tokens") return DataFormat::kTokens16;
  if (format == "tokens32") return DataFormat::kTokens32;
  if (format == "text") return DataFormat::kText;
  if (!format.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_format: '", format, "' is not 'tokens', 'tokens32', 'text' or empty"));
  }
  if (absl::EndsWith(path, ".u32.bin")) return DataFormat::kTokens32;
  if (absl::EndsWith(path, ".bin")) return DataFormat::kTokens16;
  return DataFormat::kText;
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

absl::Status TokenData::MapTokens(const std::string& path, int id_bytes) {
  ANERD_ASSIGN_OR_RETURN(RegularFile file, OpenRegularFile(path, "token data"));
  const struct stat& st = file.st;
  if (st.st_size % id_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token data ", path, " has a size (", st.st_size, " bytes) that is not a multiple of ",
        id_bytes, "; expected ", id_bytes == 4 ? "uint32" : "uint16", " tokens"));
  }
  if (st.st_size > 0) {
    map_ = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, file.fd.get(), 0);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      return ErrnoStatus("cannot map token data", path);
    }
    map_bytes_ = st.st_size;
  }
  static const uint32_t kEmpty = 0;  // a valid pointer for an empty file
  if (id_bytes == 4) {
    wide_ = map_ != nullptr ? static_cast<const uint32_t*>(map_) : &kEmpty;
  } else {
    narrow_ = static_cast<const uint16_t*>(map_);
  }
  size_ = st.st_size / id_bytes;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TokenData>> TokenData::Open(const std::string& path,
                                                           absl::string_view format, int vocab,
                                                           int seq) {
  ANERD_ASSIGN_OR_RETURN(const DataFormat f, ResolveDataFormat(path, format));
  NoteBlockingIo("token data read " + path);
  std::unique_ptr<TokenData> d(new TokenData());
  d->vocab_ = vocab;
  if (f == DataFormat::kText) {
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
    d->narrow_ = d->owned_.data();
    d->size_ = static_cast<int64_t>(d->owned_.size());
  } else {
    ANERD_RETURN_IF_ERROR(d->MapTokens(path, f == DataFormat::kTokens32 ? 4 : 2));
  }
  ANERD_RETURN_IF_ERROR(CheckTokens(*d, vocab, seq, path));
  d->file_size_ = d->size_;
  return d;
}

void TokenData::Copy(int64_t p, int64_t n, uint32_t* out) const {
  if (wide_ != nullptr) {
    std::memcpy(out, wide_ + p, static_cast<size_t>(n) * sizeof(uint32_t));
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = narrow_[p + i];
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

std::vector<uint32_t> TokenData::UsedIds() const {
  // Every id is < vocab_ (checked at Open), and vocab_ is bounded by the model config.
  std::vector<bool> seen(static_cast<size_t>(vocab_), false);
  for (int64_t i = 0; i < size_; ++i) seen[token(i)] = true;
  std::vector<uint32_t> ids;
  for (int v = 0; v < vocab_; ++v) {
    if (seen[v]) ids.push_back(static_cast<uint32_t>(v));
  }
  return ids;
}

}  // namespace anerd::training
