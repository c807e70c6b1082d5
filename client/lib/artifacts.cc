#include "client/lib/artifacts.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "common/rpc/grpc_status.h"

namespace anerd::client {
namespace {

constexpr size_t kReadChunk = size_t{1} << 20;
constexpr size_t kMaxChunk = size_t{4} << 20;

absl::StatusOr<uint64_t> FileSize(std::ifstream& in, const std::string& path) {
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  in.seekg(0);
  if (end < 0) return absl::InvalidArgumentError(absl::StrCat("cannot size ", path));
  return static_cast<uint64_t>(end);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

absl::StatusOr<std::string> HashFile(const std::string& path, const ProgressFn& progress) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  absl::StatusOr<uint64_t> total = FileSize(in, path);
  if (!total.ok()) return total.status();
  Sha256 hash;
  std::string buf(kReadChunk, '\0');
  uint64_t done = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    hash.Update(absl::string_view(buf.data(), n));
    done += n;
    if (progress) progress(done, *total);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return hash.HexDigest();
}

absl::StatusOr<PushResult> PushFile(AnerdClient& client, const std::string& path,
                                    const std::string& kind, const std::string& name,
                                    const ProgressFn& progress, size_t chunk_bytes) {
  chunk_bytes = std::min(std::max<size_t>(chunk_bytes, 1), kMaxChunk);
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  absl::StatusOr<uint64_t> size = FileSize(in, path);
  if (!size.ok()) return size.status();
  absl::StatusOr<std::string> sha = HashFile(path);
  if (!sha.ok()) return sha.status();
  // Does the daemon already hold these bytes for us? Then the header alone completes the upload.
  v1::GetArtifactRequest get;
  get.set_id(*sha);
  v1::ArtifactInfo existing;
  auto get_context = client.NewContext();
  const bool have = client.stub()->GetArtifact(get_context.get(), get, &existing).ok();

  PushResult result;
  auto context = client.NewContext(client.options().timeout +
                                   absl::Seconds(60.0 * static_cast<double>(*size) / 1e8));
  std::unique_ptr<grpc::ClientWriter<v1::UploadArtifactRequest>> writer =
      client.stub()->UploadArtifact(context.get(), &result.info);
  v1::UploadArtifactRequest message;
  v1::ArtifactHeader* header = message.mutable_header();
  header->set_kind(kind);
  header->set_name(name.empty() ? BaseName(path) : name);
  header->set_size(*size);
  header->set_sha256(*sha);
  bool ok = writer->Write(message);
  if (!have) {
    v1::UploadArtifactRequest chunk;
    std::string* data = chunk.mutable_chunk()->mutable_data();  // read into, not copied
    while (ok && result.bytes_sent < *size) {
      data->resize(chunk_bytes);
      in.read(data->data(), static_cast<std::streamsize>(data->size()));
      const auto n = static_cast<size_t>(in.gcount());
      if (n == 0) break;  // the file shrank: the daemon refuses the short upload
      data->resize(n);
      chunk.mutable_chunk()->set_offset(result.bytes_sent);
      ok = writer->Write(chunk);
      if (ok) result.bytes_sent += n;
      if (progress) progress(result.bytes_sent, *size);
    }
  }
  writer->WritesDone();
  absl::Status status = FromGrpcStatus(writer->Finish());
  if (!status.ok()) return DescribeCallError(status, client.options());
  if (progress) progress(*size, *size);
  return result;
}

absl::StatusOr<uint64_t> PullToFile(AnerdClient& client, const std::string& id,
                                    const std::string& out_path, const ProgressFn& progress) {
  const std::string partial = out_path + ".partial";
  std::ofstream out(partial, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", partial));
  v1::DownloadArtifactRequest request;
  request.set_id(id);
  auto context = client.NewContext(absl::InfiniteDuration());
  std::unique_ptr<grpc::ClientReader<v1::DownloadArtifactChunk>> reader =
      client.stub()->DownloadArtifact(context.get(), request);
  v1::DownloadArtifactChunk chunk;
  Sha256 hash;
  uint64_t written = 0, total = 0;
  while (reader->Read(&chunk)) {
    if (chunk.total_bytes() != 0) total = chunk.total_bytes();
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    hash.Update(chunk.data());
    written += chunk.data().size();
    if (progress) progress(written, total);
  }
  absl::Status status = FromGrpcStatus(reader->Finish());
  out.close();
  if (status.ok() && !out) status = absl::DataLossError(absl::StrCat("cannot write ", partial));
  if (status.ok() && hash.HexDigest() != id) {
    status = absl::DataLossError(
        absl::StrCat("the ", written, " bytes received do not hash to artifact ", id));
  }
  if (!status.ok()) {
    std::remove(partial.c_str());
    return DescribeCallError(status, client.options());
  }
  if (std::rename(partial.c_str(), out_path.c_str()) != 0) {
    std::remove(partial.c_str());
    return absl::PermissionDeniedError(absl::StrCat("cannot rename ", partial, " to ", out_path));
  }
  return written;
}

absl::StatusOr<std::string> ResolveArtifactId(AnerdClient& client, const std::string& prefix) {
  if (prefix.empty()) return absl::InvalidArgumentError("an artifact id (or prefix) is required");
  if (IsSha256Hex(prefix)) return prefix;
  v1::ListArtifactsResponse list;
  auto context = client.NewContext();
  absl::Status status = FromGrpcStatus(client.stub()->ListArtifacts(context.get(), {}, &list));
  if (!status.ok()) return DescribeCallError(status, client.options());
  std::vector<std::string> matches;
  for (const v1::ArtifactInfo& a : list.artifacts()) {
    if (absl::StartsWith(a.id(), prefix)) matches.push_back(a.id());
  }
  if (matches.empty()) return absl::NotFoundError(absl::StrCat("artifact ", prefix, " not found"));
  if (matches.size() > 1) {
    for (std::string& m : matches) m = m.substr(0, 12);
    return absl::InvalidArgumentError(
        absl::StrCat("artifact prefix ", prefix, " is ambiguous: ", absl::StrJoin(matches, ", ")));
  }
  return matches.front();
}

absl::StatusOr<v1::TokenizeDatasetResult> TokenizeDataset(AnerdClient& client,
                                                          const v1::TokenizeDatasetRequest& request,
                                                          const ProgressFn& progress) {
  auto context = client.NewContext(absl::InfiniteDuration());
  std::unique_ptr<grpc::ClientReader<v1::TokenizeDatasetProgress>> reader =
      client.stub()->TokenizeDataset(context.get(), request);
  v1::TokenizeDatasetProgress message;
  std::optional<v1::TokenizeDatasetResult> result;
  while (reader->Read(&message)) {
    if (progress) progress(message.bytes_done(), message.bytes_total());
    if (message.has_result()) result = message.result();
  }
  absl::Status status = FromGrpcStatus(reader->Finish());
  if (!status.ok()) return DescribeCallError(status, client.options());
  if (!result) return absl::InternalError("TokenizeDataset ended without a result");
  return *std::move(result);
}

}  // namespace anerd::client
