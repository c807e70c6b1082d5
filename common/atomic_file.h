// Durable whole-file I/O shared by the .npy writer and the kernel store.
//
// WriteFileAtomically writes to a uniquely named temporary file in the destination's directory,
// fsyncs it, renames it over the destination and fsyncs the directory: readers see either the old
// file or the complete new one, never a torn file, and no temporary survives a failed call.
// Thread-safety: all functions are safe to call concurrently (temporary names are unique per
// process and call).
#ifndef ANERD_COMMON_ATOMIC_FILE_H_
#define ANERD_COMMON_ATOMIC_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd {

// Replaces `path` with `bytes` atomically (see file comment); the file gets permission `mode`.
// Errors: the errno-derived status (e.g. NOT_FOUND when the directory is missing,
// PERMISSION_DENIED) with a message naming the path.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes, int mode = 0600);

// Reads the whole of `path`. NOT_FOUND if it does not exist; RESOURCE_EXHAUSTED (checked before
// allocating) when it is larger than `max_bytes`; other errno-derived statuses naming the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path, int64_t max_bytes);

// fsyncs directory `dir` so that a rename or unlink inside it is durable.
absl::Status SyncDirectory(const std::string& dir);

// Prefix of the temporary files WriteFileAtomically creates next to their destination
// (".<name>.tmp."), so that tools can recognise and clean up leftovers after a crash.
inline constexpr absl::string_view kAtomicTempMarker = ".tmp.";

}  // namespace anerd

#endif  // ANERD_COMMON_ATOMIC_FILE_H_
