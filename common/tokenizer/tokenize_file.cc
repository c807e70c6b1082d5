#include "common/tokenizer/tokenize_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/regular_file.h"
#include "common/status_macros.h"

namespace anerd::tokenizer {
namespace {

constexpr size_t kBlockBytes = size_t{1} << 20;

absl::Status Errno(absl::string_view what, const std::string& path) {
  const int e = errno;
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  if (e == ENOENT) return absl::NotFoundError(msg);
  if (e == EACCES) return absl::PermissionDeniedError(msg);
  if (e == ENOSPC) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The token file being written: a temporary renamed over the destination by Commit, removed
// otherwise.
class TokenWriter {
 public:
  TokenWriter(std::string path, int id_bytes) : path_(std::move(path)), id_bytes_(id_bytes) {}
  ~TokenWriter() {
    if (fd_.get() >= 0) ::unlink(temp_.c_str());
  }
  absl::Status Open() {
    static std::atomic<uint64_t> counter{0};
    const size_t slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : path_.substr(0, slash + 1);
    const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    temp_ = absl::StrCat(dir, ".", base, kAtomicTempMarker, ::getpid(), ".", counter++);
    fd_ = ScopedFd(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd_.get() < 0) return Errno("cannot create token file", path_);
    return absl::OkStatus();
  }
  absl::Status Append(const std::vector<int32_t>& ids) {
    for (int32_t id : ids) {
      const auto v = static_cast<uint32_t>(id);
      for (int k = 0; k < id_bytes_; ++k) buffer_.push_back(static_cast<char>(v >> (8 * k)));
    }
    return buffer_.size() >= kBlockBytes ? Flush() : absl::OkStatus();
  }
  absl::Status Commit() {
    ANERD_RETURN_IF_ERROR(Flush());
    if (::fsync(fd_.get()) != 0) return Errno("cannot sync token file", path_);
    if (::rename(temp_.c_str(), path_.c_str()) != 0) return Errno("cannot write token file", path_);
    ScopedFd closed = std::move(fd_);
    return SyncDirectory(DirName(path_));
  }

 private:
  absl::Status Flush() {
    for (size_t done = 0; done < buffer_.size();) {
      const ssize_t n = ::write(fd_.get(), buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Errno("cannot write token file", path_);
      done += static_cast<size_t>(n);
    }
    buffer_.clear();
    return absl::OkStatus();
  }

  std::string path_;
  std::string temp_;
  int id_bytes_;
  ScopedFd fd_;
  std::string buffer_;
};

// End of the first document in `text` (0 when it may continue past the end of `text` and
// `final` is false). See the header for the rule.
size_t DocumentEnd(absl::string_view text, bool final, int64_t max_bytes, bool any_bytes) {
  for (size_t i = text.find("\n\n"); i != absl::string_view::npos; i = text.find("\n\n", i)) {
    if (static_cast<int64_t>(i) >= max_bytes) break;
    size_t end = i;
    while (end < text.size() && text[end] == '\n') ++end;
    if (end < text.size() || final) {
      if (static_cast<int64_t>(end) <= max_bytes) return end;
      break;
    }
    return 0;  // the newline run may go on in the next block
  }
  if (static_cast<int64_t>(text.size()) <= max_bytes) return final ? text.size() : 0;
  const absl::string_view head = text.substr(0, max_bytes);
  const size_t newline = head.rfind('\n');
  if (newline != absl::string_view::npos) return newline + 1;
  size_t cut = head.size();
  if (!any_bytes) {  // back off to a character boundary (at most 3 continuation bytes)
    for (int k = 0; k < 3 && cut > 1 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80;
         ++k) {
      --cut;
    }
  }
  return cut;
}

}  // namespace

absl::StatusOr<TokenizeFileResult> TokenizeFile(const Tokenizer& tokenizer,
                                                const std::string& text_path,
                                                const std::string& token_path,
                                                const TokenizeFileOptions& options,
                                                const TokenizeProgress& progress) {
  if (options.max_document_bytes < 1 || options.max_document_bytes > kMaxDocumentBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_document_bytes ", options.max_document_bytes, " is outside 1 .. ", kMaxDocumentBytes));
  }
  TokenizeFileResult result;
  using Width = TokenizeFileOptions::IdWidth;
  const bool fits16 = tokenizer.vocab_size() <= 65536;
  if (options.id_width == Width::kUint32) {
    result.id_bytes = 4;
  } else if (!fits16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", tokenizer.kind(), " tokenizer has ", tokenizer.vocab_size(),
        " ids, more than uint16 token files (the training data format) hold; ask for uint32 ids"));
  }
  ANERD_ASSIGN_OR_RETURN(RegularFile in, OpenRegularFile(text_path, "text data"));
  const int64_t total = in.st.st_size;
  TokenWriter out(token_path, result.id_bytes);
  ANERD_RETURN_IF_ERROR(out.Open());
  EncodeOptions encode{options.add_bos, options.add_eos};
  std::string pending;
  std::vector<char> block(kBlockBytes);
  int64_t doc_offset = 0;
  bool eof = false;
  while (!eof || !pending.empty()) {
    if (!eof) {
      const ssize_t n = ::read(in.fd.get(), block.data(), block.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("cannot read text data", text_path);
      eof = n == 0;
      pending.append(block.data(), static_cast<size_t>(n));
      result.bytes_read += n;
    }
    size_t start = 0;  // documents are taken from the front; erased once per block
    for (;;) {
      const absl::string_view rest = absl::string_view(pending).substr(start);
      const size_t end =
          DocumentEnd(rest, eof, options.max_document_bytes, tokenizer.AcceptsAnyBytes());
      if (end == 0) break;
      const absl::string_view doc = rest.substr(0, end);
      if (!tokenizer.AcceptsAnyBytes()) {
        ANERD_RETURN_IF_ERROR(CheckUtf8(doc, text_path, doc_offset));
      }
      absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(doc, encode);
      if (!ids.ok()) {
        return absl::Status(ids.status().code(),
                            absl::StrCat(text_path, ": document at byte offset ", doc_offset, ": ",
                                         ids.status().message()));
      }
      ANERD_RETURN_IF_ERROR(out.Append(*ids));
      result.tokens += static_cast<int64_t>(ids->size());
      ++result.documents;
      doc_offset += static_cast<int64_t>(end);
      start += end;
    }
    pending.erase(0, start);
    if (progress && !progress(result.bytes_read, total)) {
      return absl::CancelledError(absl::StrCat("tokenizing ", text_path, " was cancelled"));
    }
  }
  ANERD_RETURN_IF_ERROR(out.Commit());
  return result;
}

}  // namespace anerd::tokenizer
