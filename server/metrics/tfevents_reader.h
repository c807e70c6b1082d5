// Reads TFRecord-framed files such as TensorBoard event files (tfevents_writer.h), checking every
// masked CRC. Used by tests, fuzzing and tools; the daemon only writes.
//
// A file cut short inside its last record (a crash while appending) is not an error: the complete
// records are returned and `torn_tail` is set. A complete record whose length or data CRC does not
// match is DATA_LOSS naming the byte offset.
// Thread-safety: pure functions.
#ifndef ANERD_SERVER_METRICS_TFEVENTS_READER_H_
#define ANERD_SERVER_METRICS_TFEVENTS_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::metrics {

struct TfRecords {
  std::vector<std::string> records;  // the data of each complete record, in order
  bool torn_tail = false;            // the bytes ended inside a record
};

// Records larger than `max_record_bytes` are refused (INVALID_ARGUMENT) before any allocation.
absl::StatusOr<TfRecords> ParseTfRecords(absl::string_view bytes, uint64_t max_record_bytes);

// Reads the file at `path` (at most `max_file_bytes`, else INVALID_ARGUMENT) and parses it.
absl::StatusOr<TfRecords> ReadTfRecordsFile(const std::string& path, uint64_t max_file_bytes,
                                            uint64_t max_record_bytes);

}  // namespace anerd::metrics

#endif  // ANERD_SERVER_METRICS_TFEVENTS_READER_H_
