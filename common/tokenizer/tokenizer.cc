#include "common/tokenizer/tokenizer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "common/regular_file.h"
#include "common/status_macros.h"
#include "common/tokenizer/kinds.h"

namespace anerd::tokenizer {
namespace {

absl::Status CheckId(const Tokenizer& t, int32_t id, size_t index) {
  if (id < 0 || id >= t.vocab_size()) {
    return absl::InvalidArgumentError(absl::StrCat("token id ", id, " at index ", index,
                                                   " is outside the vocabulary (", t.vocab_size(),
                                                   ", tokenizer ", t.kind(), ")"));
  }
  return absl::OkStatus();
}

absl::Status AddSpecial(int32_t id, absl::string_view name, const Tokenizer& t,
                        std::vector<int32_t>* ids) {
  if (id < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ", t.kind(), " tokenizer has no ", name, " token"));
  }
  ids->push_back(id);
  return absl::OkStatus();
}

}  // namespace

std::string DetectTokenizerKind(absl::string_view bytes, absl::string_view source) {
  if (absl::EndsWith(source, ".json")) return "hf";
  if (absl::EndsWith(source, ".model")) return "sentencepiece";
  if (absl::EndsWith(source, ".bin")) return "llama2c";
  size_t i = 0;
  while (i < bytes.size() && absl::ascii_isspace(static_cast<unsigned char>(bytes[i]))) ++i;
  if (i < bytes.size() && bytes[i] == '{') return "hf";
  if (LoadLlama2cTokenizer(bytes, source).ok()) return "llama2c";
  // A ModelProto starts with field 1 (pieces), length-delimited: tag byte 0x0A.
  if (!bytes.empty() && bytes[0] == '\x0A') return "sentencepiece";
  return "";
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(absl::string_view text,
                                                       const EncodeOptions& options) const {
  if (!AcceptsAnyBytes()) ANERD_RETURN_IF_ERROR(CheckUtf8(text, "text"));
  std::vector<int32_t> ids;
  if (options.add_bos) ANERD_RETURN_IF_ERROR(AddSpecial(bos_id(), "bos", *this, &ids));
  ANERD_RETURN_IF_ERROR(EncodeText(text, &ids));
  if (options.add_eos) ANERD_RETURN_IF_ERROR(AddSpecial(eos_id(), "eos", *this, &ids));
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids) const {
  DecodeContext context;
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    ANERD_RETURN_IF_ERROR(CheckId(*this, ids[i], i));
    AppendTokenBytes(ids[i], &context, &bytes);
  }
  return SanitizeUtf8(bytes);
}

absl::StatusOr<std::string> StreamDecoder::Push(int32_t id) {
  ANERD_RETURN_IF_ERROR(CheckId(*tokenizer_, id, 0));
  std::string bytes;
  tokenizer_->AppendTokenBytes(id, &context_, &bytes);
  std::string text;
  assembler_.Push(bytes, &text);
  return text;
}

std::string StreamDecoder::Finish() {
  std::string text;
  assembler_.Finish(&text);
  context_ = DecodeContext();
  return text;
}

std::vector<std::string> TokenizerKinds() { return {"byte", "llama2c", "sentencepiece", "hf"}; }

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(absl::string_view kind,
                                                         absl::string_view bytes,
                                                         absl::string_view source_name) {
  if (static_cast<int64_t>(bytes.size()) > kMaxTokenizerFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer file ", source_name, " has ",
                                                   bytes.size(), " bytes; the limit is ",
                                                   kMaxTokenizerFileBytes));
  }
  std::string k(kind);
  if (k.empty()) k = DetectTokenizerKind(bytes, source_name);
  if (k == "byte") {
    if (!bytes.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("the byte tokenizer takes no file, but ",
                                                     source_name, " has ", bytes.size(), " bytes"));
    }
    return MakeByteTokenizer();
  }
  if (k == "llama2c") return LoadLlama2cTokenizer(bytes, source_name);
  if (k == "sentencepiece") return LoadSentencePieceTokenizer(bytes, source_name);
  if (k == "hf") return LoadHfTokenizer(bytes, source_name);
  if (kind.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot tell the tokenizer kind of ", source_name,
                     " (not tokenizer.json, a SentencePiece .model nor a llama2.c tokenizer.bin); "
                     "name it: one of ",
                     absl::StrJoin(TokenizerKinds(), ", ")));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown tokenizer kind \"", kind,
                                                 "\"; expected one of ",
                                                 absl::StrJoin(TokenizerKinds(), ", ")));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFile(absl::string_view kind,
                                                             const std::string& path) {
  ANERD_RETURN_IF_ERROR(CheckRegularFile(path, "tokenizer file"));
  absl::StatusOr<std::string> bytes = ReadFileToString(path, kMaxTokenizerFileBytes);
  if (absl::IsResourceExhausted(bytes.status())) {
    return absl::InvalidArgumentError(bytes.status().message());
  }
  if (!bytes.ok()) return bytes.status();
  return LoadTokenizer(kind, *bytes, path);
}

}  // namespace anerd::tokenizer
