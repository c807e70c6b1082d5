#include "common/blocking_io_guard.h"

#include <atomic>
#include <deque>
#include <mutex>

#include "spdlog/spdlog.h"

namespace anerd {
namespace {

thread_local int device_thread_depth = 0;
std::atomic<uint64_t> violations{0};

struct Names {
  std::mutex mu;
  std::deque<std::string> names;
};
Names& TheNames() {
  static Names* names = new Names;  // never destroyed: usable from any thread at exit
  return *names;
}

}  // namespace

ScopedDeviceThread::ScopedDeviceThread() { ++device_thread_depth; }
ScopedDeviceThread::~ScopedDeviceThread() { --device_thread_depth; }

bool OnDeviceThread() { return device_thread_depth > 0; }

void NoteBlockingIo(const std::string& operation) {
  if (device_thread_depth == 0) return;
  violations.fetch_add(1, std::memory_order_relaxed);
  spdlog::debug("blocking I/O on a device executor thread: {}", operation);
  Names& n = TheNames();
  std::lock_guard<std::mutex> lock(n.mu);
  n.names.push_back(operation);
  if (n.names.size() > kMaxViolationNames) n.names.pop_front();
}

uint64_t BlockingIoViolations() { return violations.load(std::memory_order_relaxed); }

std::vector<std::string> BlockingIoViolationNames() {
  Names& n = TheNames();
  std::lock_guard<std::mutex> lock(n.mu);
  return {n.names.begin(), n.names.end()};
}

void ResetBlockingIoViolations() {
  Names& n = TheNames();
  std::lock_guard<std::mutex> lock(n.mu);
  n.names.clear();
  violations.store(0, std::memory_order_relaxed);
}

}  // namespace anerd
