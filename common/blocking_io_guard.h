// A guard for the rule "no blocking I/O on a device executor thread": the device executor marks
// its thread (ScopedDeviceThread), and the file helpers the daemon writes and reads its state with
// (WriteFileAtomically, the session event log, the TensorBoard writer, model and checkpoint files
// read and written through training/file_io.h, token data, the session rows in anerd.db) call
// NoteBlockingIo with the operation's name. A call on a marked thread is a violation: it is
// counted, its name kept (the last kMaxViolationNames, for tests and messages) and logged at debug
// level; the operation itself still runs. The count is exported as a metric
// (anerd_blocking_io_on_executor_total) and tests assert it stays zero.
//
// Thread-safety: all functions may be called from any thread. The mark is per thread and nests.
#ifndef ANERD_COMMON_BLOCKING_IO_GUARD_H_
#define ANERD_COMMON_BLOCKING_IO_GUARD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace anerd {

// Marks the calling thread as a device executor's for the guard's lifetime (nestable).
class ScopedDeviceThread {
 public:
  ScopedDeviceThread();
  ~ScopedDeviceThread();
  ScopedDeviceThread(const ScopedDeviceThread&) = delete;
  ScopedDeviceThread& operator=(const ScopedDeviceThread&) = delete;
};

// Whether the calling thread is marked.
bool OnDeviceThread();

// Records a violation when called on a marked thread; `operation` names the I/O ("event log
// append", "checkpoint write <path>", ...). Cheap when the thread is not marked.
void NoteBlockingIo(const std::string& operation);

// Violations since the process started (or the last ResetBlockingIoViolations).
uint64_t BlockingIoViolations();
inline constexpr size_t kMaxViolationNames = 64;
// The names of the latest violations, oldest first (at most kMaxViolationNames).
std::vector<std::string> BlockingIoViolationNames();
// For tests.
void ResetBlockingIoViolations();

}  // namespace anerd

#endif  // ANERD_COMMON_BLOCKING_IO_GUARD_H_
