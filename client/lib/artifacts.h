// Artifact transfers for clients (issue 19): push a local file as a content-addressed artifact
// (hash it, skip the bytes when the daemon already has them for this caller, else stream them in
// chunks straight from the file), pull one back into a file (verified against its id), and
// resolve an id prefix; tokenize a text dataset on the daemon. Files are read and written in
// chunks, never held whole in memory.
//
// Thread-safety: functions are independent; `progress` is called on the calling thread.
#ifndef ANERD_CLIENT_LIB_ARTIFACTS_H_
#define ANERD_CLIENT_LIB_ARTIFACTS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/lib/client.h"

namespace anerd::client {

// Called with (bytes done, bytes total) as a transfer advances (and once at the end).
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

// Lowercase SHA-256 hex of the file at `path` (read in chunks); `progress` sees the hashing.
absl::StatusOr<std::string> HashFile(const std::string& path, const ProgressFn& progress = {});

struct PushResult {
  v1::ArtifactInfo info;
  uint64_t bytes_sent = 0;  // artifact bytes that crossed the wire (0 when the daemon had them)
};

// Uploads `path` as an artifact of `kind` named `name` ("" = the file's base name).
// `chunk_bytes` per message (at most 4 MiB, the daemon's limit).
absl::StatusOr<PushResult> PushFile(AnerdClient& client, const std::string& path,
                                    const std::string& kind, const std::string& name,
                                    const ProgressFn& progress = {},
                                    size_t chunk_bytes = size_t{1} << 20);

// Downloads artifact `id` into `out_path` (written as out_path.partial, checked against the id,
// then renamed). DATA_LOSS when the bytes do not hash to the id. Returns the bytes written.
absl::StatusOr<uint64_t> PullToFile(AnerdClient& client, const std::string& id,
                                    const std::string& out_path, const ProgressFn& progress = {});

// The full id of the one artifact the caller sees whose id starts with `prefix` (a full id is
// returned as is). NOT_FOUND when none does; INVALID_ARGUMENT naming the matches when several do.
absl::StatusOr<std::string> ResolveArtifactId(AnerdClient& client, const std::string& prefix);

// Runs TokenizeDataset (`request` names the artifacts by full id, or "byte" for the tokenizer) and
// returns its result; `progress` sees (text bytes done, total) as the daemon reports them.
// An error of the call, described (DescribeCallError); INTERNAL if the stream ends without one.
absl::StatusOr<v1::TokenizeDatasetResult> TokenizeDataset(AnerdClient& client,
                                                          const v1::TokenizeDatasetRequest& request,
                                                          const ProgressFn& progress = {});

}  // namespace anerd::client

#endif  // ANERD_CLIENT_LIB_ARTIFACTS_H_
