// Logging setup: the one place that configures spdlog. Every binary calls InitLogging once at
// start-up, before any thread is created; after that, use spdlog's free functions
// (spdlog::info, ...) from any thread.
#ifndef ANERD_COMMON_LOGGING_H_
#define ANERD_COMMON_LOGGING_H_

#include <string>

#include "absl/status/status.h"

namespace anerd {

struct LoggingOptions {
  // trace, debug, info, warn, error, critical, off.
  std::string level = "info";
  // When non-empty, also log to this file (rotating: max_file_bytes, max_files kept).
  std::string file_path;
  size_t max_file_bytes = 10 * 1024 * 1024;
  size_t max_files = 5;
  // Program name shown in each line.
  std::string program = "anerd";
};

// Installs the default logger (stderr, plus the rotating file when asked). Returns
// INVALID_ARGUMENT for an unknown level and the error of opening the file otherwise.
absl::Status InitLogging(const LoggingOptions& options);

// Flushes and drops every logger. Call last during shutdown.
void ShutdownLogging();

}  // namespace anerd

#endif  // ANERD_COMMON_LOGGING_H_
