#include "server/metrics/tfevents_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/blocking_io_guard.h"
#include "server/metrics/crc32c.h"
#include "tensorboard/event.pb.h"

namespace anerd::metrics {
namespace {

std::string LittleEndian(uint64_t v, int bytes) {
  std::string out(bytes, '\0');
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
  return out;
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

std::string FrameRecord(absl::string_view data) {
  const std::string length = LittleEndian(data.size(), 8);
  std::string out = length;
  out += LittleEndian(MaskCrc(Crc32c(length)), 4);
  out.append(data.data(), data.size());
  out += LittleEndian(MaskCrc(Crc32c(data)), 4);
  return out;
}

absl::StatusOr<std::unique_ptr<TfEventsWriter>> TfEventsWriter::Create(const std::string& dir,
                                                                       absl::Time now) {
  NoteBlockingIo("tensorboard create " + dir);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("create", dir);
  static std::atomic<int> sequence{0};
  const std::string path = absl::StrCat(dir, "/events.out.tfevents.", absl::ToUnixSeconds(now), ".",
                                        HostName(), ".", getpid(), ".", sequence.fetch_add(1));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open", path);
  std::unique_ptr<TfEventsWriter> writer(new TfEventsWriter(fd, path));
  tensorboard::Event event;
  event.set_wall_time(absl::ToDoubleSeconds(now - absl::UnixEpoch()));
  event.set_file_version("brain.Event:2");
  if (absl::Status s = writer->Append(event.SerializeAsString()); !s.ok()) return s;
  return writer;
}

TfEventsWriter::~TfEventsWriter() { close(fd_); }

absl::Status TfEventsWriter::WriteScalars(int64_t step, absl::Time wall,
                                          absl::Span<const Scalar> scalars) {
  if (scalars.empty()) return absl::OkStatus();
  tensorboard::Event event;
  event.set_wall_time(absl::ToDoubleSeconds(wall - absl::UnixEpoch()));
  event.set_step(step);
  for (const Scalar& scalar : scalars) {
    tensorboard::SummaryValue* value = event.mutable_summary()->add_value();
    value->set_tag(scalar.tag);
    value->set_simple_value(scalar.value);
  }
  return Append(event.SerializeAsString());
}

absl::Status TfEventsWriter::Append(absl::string_view data) {
  NoteBlockingIo("tensorboard append " + path_);
  const std::string record = FrameRecord(data);
  const off_t start = lseek(fd_, 0, SEEK_END);
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status error = ErrnoError("write", path_);
      // A torn record may only ever be the last one: cut it off so later records stay readable.
      if (start >= 0 && ftruncate(fd_, start) != 0) return ErrnoError("truncate", path_);
      return error;
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace anerd::metrics
