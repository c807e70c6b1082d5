#include "server/artifacts/tokenize_dataset.h"

#include <unistd.h>

#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer.h"

namespace anerd::artifacts {
namespace {

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadFor(ArtifactStore& store,
                                                              const TokenizeDatasetJob& job) {
  if (job.byte_tokenizer) return tokenizer::LoadTokenizer("byte", "", "byte");
  const std::string name = job.tokenizer.NameFor(job.owner);
  ANERD_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(store.BlobPath(job.tokenizer.id),
                                                             tokenizer::kMaxTokenizerFileBytes));
  const std::string kind = tokenizer::DetectTokenizerKind(bytes, name);
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> t =
      tokenizer::LoadTokenizer(kind, bytes, name);
  if (!t.ok()) {
    return absl::Status(t.status().code(), absl::StrCat("tokenizer_artifact ", job.tokenizer.id,
                                                        ": ", t.status().message()));
  }
  return t;
}

absl::Status CheckName(const std::string& name, int id_bytes) {
  const bool u32 = absl::EndsWith(name, ".u32.bin");
  if (absl::EndsWith(name, ".bin") && u32 == (id_bytes == 4)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "name: '", name, "' must end in ",
      id_bytes == 4 ? "'.u32.bin' (uint32 ids)" : "'.bin' (not '.u32.bin'; uint16 ids)",
      ", the suffix training reads the token width from"));
}

}  // namespace

std::string TokenFileName(absl::string_view text_name, int id_bytes) {
  absl::string_view base = text_name;
  if (absl::EndsWith(base, ".txt")) base.remove_suffix(4);
  if (base.empty()) base = "text";
  return absl::StrCat(base, id_bytes == 4 ? ".tokens.u32.bin" : ".tokens.bin");
}

absl::StatusOr<TokenizeDatasetOutcome> TokenizeDataset(
    ArtifactStore& store, const TokenizeDatasetJob& job,
    const tokenizer::TokenizeProgress& progress) {
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, LoadFor(store, job));
  tokenizer::TokenizeFileOptions options;
  options.add_bos = job.add_bos;
  options.add_eos = job.add_eos;
  const bool wide = tok->vocab_size() > 65536;
  options.id_width = wide ? tokenizer::TokenizeFileOptions::IdWidth::kUint32
                          : tokenizer::TokenizeFileOptions::IdWidth::kUint16;
  const int id_bytes = wide ? 4 : 2;
  const std::string text_name = job.text.NameFor(job.owner);
  const std::string name = job.name.empty() ? TokenFileName(text_name, id_bytes) : job.name;
  ANERD_RETURN_IF_ERROR(CheckName(name, id_bytes));

  const std::string blob = store.BlobPath(job.text.id);
  const std::string temp = store.NewTempPath();
  absl::StatusOr<tokenizer::TokenizeFileResult> file =
      tokenizer::TokenizeFile(*tok, blob, temp, options, progress);
  if (!file.ok()) {
    ::unlink(temp.c_str());
    // Errors name the blob's path: name the artifact instead (a client never sees the state dir).
    return absl::Status(
        file.status().code(),
        absl::StrReplaceAll(
            file.status().message(),
            {{blob, absl::StrCat("text_artifact ", job.text.id, " (", text_name, ")")}}));
  }
  std::string sha256;
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<PendingArtifact> pending, store.Adopt(temp, &sha256));
  ArtifactStore::NewArtifact meta{"dataset", name, sha256, job.owner, job.quota};
  TokenizeDatasetOutcome out;
  ANERD_ASSIGN_OR_RETURN(out.artifact, store.Commit(std::move(pending), meta));
  out.file = *file;
  out.vocab_size = tok->vocab_size();
  return out;
}

}  // namespace anerd::artifacts
