// anerd's command-line conventions, applied before absl parses the flags (anerd_main.cc):
//   - flag names take hyphens or underscores (`--state-dir` == `--state-dir`);
//   - a configuration file of `name = value` lines (`--config FILE`, else
//     $XDG_CONFIG_HOME/anerd/anerd.conf or ~/.config/anerd/anerd.conf when it exists) supplies
//     flags the command line does not override;
//   - `--help` prints the user-facing flags (internal and test-only ones hidden) with their
//     defaults, and exits 0.
// Thread-safety: plain functions; ReadConfigFile does blocking file I/O (start-up only).
#ifndef ANERD_SERVER_DAEMON_DAEMON_FLAGS_H_
#define ANERD_SERVER_DAEMON_DAEMON_FLAGS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace anerd::daemon {

// Largest configuration file read (bytes); larger files are refused, not truncated.
inline constexpr int64_t kMaxConfigFileBytes = 1 << 20;

// `args` with every flag name spelled with underscores: "--state-dir=/x" -> "--state-dir=/x",
// "-log-level" -> "-log_level". Values (after '=' or in the next argument) are untouched, and
// nothing after a lone "--" changes.
std::vector<std::string> NormalizeFlagNames(const std::vector<std::string>& args);

// The config file a command line names: the value of --config (either spelling, "=" or the next
// argument), or "" when it names none. `found` tells whether --config was given at all (an empty
// value then means "no file, not even the default one").
std::string ConfigFlagValue(const std::vector<std::string>& args, bool* found);

// $XDG_CONFIG_HOME/anerd/anerd.conf, else $HOME/.config/anerd/anerd.conf ("" without a home).
std::string DefaultConfigPath();

// Parses a configuration file's text into "--name=value" arguments, in file order. Lines are
// `name = value`, `name=value`, `--name=value` or a bare `name` (a true bool); '#' starts a
// comment line; blank lines are skipped; values are taken verbatim after trimming (no quoting).
// INVALID_ARGUMENT naming `source` and the line for a line without a flag name, and for
// `config` (a file cannot name another).
absl::StatusOr<std::vector<std::string>> ParseConfigText(absl::string_view text,
                                                         absl::string_view source);

// Reads and parses `path` (bounded by kMaxConfigFileBytes). NOT_FOUND when it does not exist,
// INVALID_ARGUMENT naming the file for anything else.
absl::StatusOr<std::vector<std::string>> ReadConfigFile(const std::string& path);

// True when `args` ask for help (--help, -h, --helpfull, --helpshort).
bool WantsHelp(const std::vector<std::string>& args);

// One user-facing flag, as --help and `anectl status` show it.
struct FlagDescription {
  std::string name;  // hyphenated, without "--"
  std::string help;
  std::string default_value;
  std::string current_value;
};

// The flags defined in files whose path ends with `defining_file` (anerd_main.cc), sorted by
// name, without those whose help starts with "Internal:" or "Tests only:".
std::vector<FlagDescription> UserFlags(absl::string_view defining_file);

// The --help text: `usage`, then every user flag with its help and default.
std::string HelpText(absl::string_view usage, const std::vector<FlagDescription>& flags);

// "name=value" for each user flag whose value differs from its default (what `anectl status`
// reports as the daemon's effective configuration).
std::vector<std::pair<std::string, std::string>> NonDefaultFlags(
    const std::vector<FlagDescription>& flags);

}  // namespace anerd::daemon

#endif  // ANERD_SERVER_DAEMON_DAEMON_FLAGS_H_
