// Writes a TensorBoard event file: TFRecord framing of anerd.tensorboard.Event records (field
// numbers as TensorFlow's), so `tensorboard --logdir DIR` shows the scalars.
//
// File: DIR/events.out.tfevents.<unix seconds>.<hostname>.<pid>.<sequence> (TensorBoard finds
// files by the "tfevents" in their name). The first record is Event{wall_time, file_version
// "brain.Event:2"}. Each record is
//   uint64 length (little-endian) · uint32 MaskCrc(Crc32c(length bytes)) · data ·
//   uint32 MaskCrc(Crc32c(data)).
// Records are appended with one write() each and flushed by the kernel's page cache, so a reader
// sees every completed record while the run goes on; a crash can leave at most one torn record at
// the end, which readers (tfevents_reader.h, TensorBoard) skip.
//
// Units: wall time in seconds since the Unix epoch (double), steps as the trainer counts them.
// A value that was not measured is not written (there is no "absent" scalar): callers omit it.
//
// Thread-safety: one writer per file, used by one thread at a time. Blocking file I/O: never call
// it on a device executor thread.
#ifndef ANERD_SERVER_METRICS_TFEVENTS_WRITER_H_
#define ANERD_SERVER_METRICS_TFEVENTS_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace anerd::metrics {

struct Scalar {
  std::string tag;  // e.g. "loss/train"; TensorBoard groups by the part before '/'
  float value = 0;
};

// TFRecord framing of one record (exposed for tests and fuzzing).
std::string FrameRecord(absl::string_view data);

class TfEventsWriter {
 public:
  // Creates `dir` if it does not exist (its parent must), opens a new event file there (0600,
  // never overwriting one) and writes the file_version record.
  static absl::StatusOr<std::unique_ptr<TfEventsWriter>> Create(const std::string& dir,
                                                                absl::Time now);
  ~TfEventsWriter();
  TfEventsWriter(const TfEventsWriter&) = delete;
  TfEventsWriter& operator=(const TfEventsWriter&) = delete;

  // Appends one Event at `step` holding `scalars` (nothing is written for an empty span).
  // Non-finite values are written as they are (TensorBoard shows them as gaps).
  absl::Status WriteScalars(int64_t step, absl::Time wall, absl::Span<const Scalar> scalars);

  const std::string& path() const { return path_; }

 private:
  TfEventsWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  absl::Status Append(absl::string_view data);

  int fd_;
  std::string path_;
};

}  // namespace anerd::metrics

#endif  // ANERD_SERVER_METRICS_TFEVENTS_WRITER_H_
