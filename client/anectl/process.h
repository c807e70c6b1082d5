// Running helper programs (systemctl, launchctl) and locating binaries.
#ifndef ANERD_CLIENT_ANECTL_PROCESS_H_
#define ANERD_CLIENT_ANECTL_PROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace anerd::anectl {

struct ProcessResult {
  int exit_code = -1;  // -1 if the program could not be started or was killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] (searched in PATH) with its stdin at /dev/null and waits for it.
ProcessResult RunProcess(const std::vector<std::string>& argv);

// True when `name` is an executable in PATH.
bool InPath(const std::string& name);

// The absolute path of the anerd binary beside this anectl (resolved from argv0 and PATH), or
// NOT_FOUND saying where it looked.
absl::StatusOr<std::string> SiblingBinary(const std::string& argv0, const std::string& name);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_PROCESS_H_
