// Positional reads of a client-named file and atomic streaming writes, shared by the model-file
// readers and writers (model_io, safetensors).
//
// InFile opens through OpenRegularFile (a FIFO or device is refused, never blocked on) and reads
// exact byte ranges: a short file is DATA_LOSS naming the path. AtomicOutFile writes a temporary
// file next to its destination and renames it over the destination on Commit (fsync of the file
// and the directory); a file never committed is removed by the destructor.
// Thread-safety: one object per thread; distinct objects are independent.
#ifndef ANERD_SERVER_TRAINING_FILE_IO_H_
#define ANERD_SERVER_TRAINING_FILE_IO_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anerd::training {

class InFile {
 public:
  InFile() = default;
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  ~InFile();
  // `what` names the file in errors ("model file", "safetensors file").
  absl::Status Open(const std::string& path, absl::string_view what = "file");
  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Reads exactly `n` bytes at `offset`; DATA_LOSS naming the path at end of file.
  absl::Status Read(int64_t offset, void* dst, int64_t n) const;

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

class AtomicOutFile {
 public:
  AtomicOutFile() = default;
  AtomicOutFile(const AtomicOutFile&) = delete;
  AtomicOutFile& operator=(const AtomicOutFile&) = delete;
  ~AtomicOutFile();
  absl::Status Open(const std::string& path);
  absl::Status Write(const void* data, int64_t n);
  // fsync, rename over the destination, fsync the directory.
  absl::Status Commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace anerd::training

#endif  // ANERD_SERVER_TRAINING_FILE_IO_H_
