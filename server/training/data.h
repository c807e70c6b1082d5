// Training data (docs/ANE_NOTES.md §5.8): pretokenized token files, memory-mapped — uint16 ids
// (raw little-endian, no header, the llama2.c/TinyStories format) or uint32 ids (raw little-endian,
// no header, for vocabularies over 65536 such as Qwen3's or Llama 3's: `anectl data tokenize`
// writes them) — or UTF-8 text with a byte-level tokenizer (token = byte value, vocab 256). The
// width of a token file is never guessed from its bytes: it is the format "tokens32", or the name
// suffix ".u32.bin" (any other ".bin" is uint16), so a llama2.c file is always read as uint16.
// Every token is checked against the vocabulary when the data is opened.
//
// Sampling of micro-step k (0-based over the whole run, S = seq):
//   sequential: inputs tokens[p, p+S), targets tokens[p+1, p+S+1) with p = (k mod W)·S and
//               W = floor((n − 1) / S) windows, i.e. windows back to back from the start, wrapping
//               to the start when the next window would run past the end of the file.
//   random:     p = SplitMix64(seed ⊕ k·golden) mod (n − S) — a pure function of (seed, k), so
//               resuming at any micro-step reproduces the run.
// Thread-safety: immutable after Open; const methods are thread-safe.
#ifndef ANERD_SERVER_TRAINING_DATA_H_
#define ANERD_SERVER_TRAINING_DATA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::training {

enum class DataFormat { kText, kTokens16, kTokens32 };

// `format` "tokens" (uint16) | "tokens32" (uint32) | "text" | "" (by the path's suffix:
// ".u32.bin" = uint32 tokens, other ".bin" = uint16 tokens, else text). INVALID_ARGUMENT naming
// `format` when it is none of these.
absl::StatusOr<DataFormat> ResolveDataFormat(absl::string_view path, absl::string_view format);

class TokenData {
 public:
  // `format` as ResolveDataFormat takes it. Errors:
  // NOT_FOUND / errno statuses naming the path; INVALID_ARGUMENT for anything but a regular file
  // (a FIFO is refused without blocking; common/regular_file.h), a token file whose size is not a
  // multiple of its id width, a
  // token id >= vocab (naming the offset and id), invalid UTF-8 (naming the byte offset), text
  // with vocab < 256, or fewer than seq + 1 tokens ("too short").
  static absl::StatusOr<std::unique_ptr<TokenData>> Open(const std::string& path,
                                                         absl::string_view format, int vocab,
                                                         int seq);
  ~TokenData();
  TokenData(const TokenData&) = delete;
  TokenData& operator=(const TokenData&) = delete;

  int64_t size() const { return size_; }
  // Tokens the file holds (size() before KeepFirst); [0, file_size()) stay readable through
  // Copy, which is how the held-out tail is evaluated (training/evaluate.h).
  int64_t file_size() const { return file_size_; }
  // Keeps only the first `n` tokens (held-out data, training/validation_split.h): sampling and
  // UsedIds never see the rest. INVALID_ARGUMENT when fewer than seq + 1 would remain or `n` is
  // more than there are.
  absl::Status KeepFirst(int64_t n, int seq);
  // Token i (0 <= i < size()).
  uint32_t token(int64_t i) const {
    return wide_ != nullptr ? wide_[i] : static_cast<uint32_t>(narrow_[i]);
  }
  // Copies tokens [p, p + n) into out[0, n) (0 <= p, p + n <= file_size()).
  void Copy(int64_t p, int64_t n, uint32_t* out) const;
  // 2 (uint16 files and text) or 4 (uint32 files).
  int id_bytes() const { return wide_ != nullptr ? 4 : 2; }
  // Start p of micro-step k's window (see the file comment); `random` selects the sampling.
  int64_t WindowStart(bool random, uint64_t seed, int64_t k, int seq) const;
  // Sorted distinct token ids present (for vocabulary compaction).
  std::vector<uint32_t> UsedIds() const;

 private:
  TokenData() = default;
  absl::Status MapTokens(const std::string& path, int id_bytes);
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  std::vector<uint16_t> owned_;  // text: one id per byte
  const uint16_t* narrow_ = nullptr;
  const uint32_t* wide_ = nullptr;
  int64_t size_ = 0;
  int64_t file_size_ = 0;
  int vocab_ = 0;
};

// SplitMix64 finaliser (pure).
uint64_t SplitMix64(uint64_t x);

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_DATA_H_
