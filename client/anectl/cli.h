// The anectl command-line framework: a small flag parser, the command table entry type, exit codes
// and the per-invocation context (global flags, lazily created client, output helpers).
// Data goes to stdout, messages to stderr; colour only on a TTY and never with NO_COLOR.
#ifndef ANERD_CLIENT_ANECTL_CLI_H_
#define ANERD_CLIENT_ANECTL_CLI_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/lib/client.h"

namespace anerd::anectl {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // the command ran and failed
  kExitUsage = 2,        // bad command line
  kExitUnreachable = 3,  // the daemon could not be reached
};

struct GlobalOptions {
  std::string host;        // --host / ANERD_HOST; empty = default socket
  std::string token_file;  // --token-file: bearer token ("TOKEN" or "NAME TOKEN" line)
  std::string tls_ca;      // --tls-ca: PEM CA certificate for a TLS --host
  std::string tls_cert;    // --tls-cert: PEM client certificate (mutual TLS); needs tls_key
  std::string tls_key;     // --tls-key: PEM private key of tls_cert
  double timeout_seconds = 30;
  bool json = false;  // --json: machine-readable output
  std::string argv0;  // how anectl was invoked (to find the sibling anerd binary)
};

class CommandContext {
 public:
  explicit CommandContext(GlobalOptions options) : options_(std::move(options)) {}

  const GlobalOptions& options() const { return options_; }
  bool json() const { return options_.json; }
  // The client for the resolved endpoint; INVALID_ARGUMENT for a malformed --host.
  absl::StatusOr<client::AnerdClient*> Client();
  absl::StatusOr<Endpoint> ResolvedEndpoint() const;

  // Prints "anectl: MESSAGE" to stderr and returns the exit code for the status
  // (kExitUnreachable for UNAVAILABLE/DEADLINE_EXCEEDED, kExitError otherwise).
  int Fail(const absl::Status& status) const;
  // Colour helpers: wrap text in an ANSI colour when stdout is a TTY and NO_COLOR is unset.
  std::string Bold(const std::string& s) const;
  std::string Green(const std::string& s) const;
  std::string Red(const std::string& s) const;
  std::string Dim(const std::string& s) const;

 private:
  std::string Color(const char* code, const std::string& s) const;
  GlobalOptions options_;
  std::unique_ptr<client::AnerdClient> client_;
};

// A command's entry point: `args` excludes the command name(s) and global flags.
using CommandFn = std::function<int(CommandContext& ctx, const std::vector<std::string>& args)>;

struct Command {
  std::string name;     // e.g. "status", "service"
  std::string summary;  // one line for `anectl --help`
  CommandFn run;
};

// Flag parser for one command. Accepts `--name value`, `--name=value`, `-x value` for a one-letter
// flag `x`, `-h`/`--help`, and `--`. Help() shows each flag's default: the variable's value when
// the flag is added (a non-empty string, a non-zero number), unless the help text already states
// one ("default ...").
class ArgParser {
 public:
  ArgParser(std::string usage, std::string description);

  void AddString(const std::string& name, std::string* out, const std::string& help);
  void AddInt(const std::string& name, int64_t* out, const std::string& help);
  void AddDouble(const std::string& name, double* out, const std::string& help);
  void AddBool(const std::string& name, bool* out, const std::string& help);
  void AddRepeated(const std::string& name, std::vector<std::string>* out, const std::string& help);
  // Positionals are filled in order; optional ones must come last.
  void AddPositional(const std::string& name, std::string* out, const std::string& help,
                     bool required = true);

  enum class Result { kOk, kHelp, kError };
  // Parses `args`. On kHelp the help text was printed to stdout; on kError a message and the usage
  // line were printed to stderr (callers return kExitUsage).
  Result Parse(const std::vector<std::string>& args);
  std::string Help() const;

 private:
  enum class Kind { kString, kInt, kDouble, kBool, kRepeated };
  struct Flag {
    std::string name;
    Kind kind;
    void* out;
    std::string help;
    std::string default_text;  // the value at Add time when it means something ("" = none)
  };
  struct Positional {
    std::string name;
    std::string* out;
    std::string help;
    bool required;
  };
  absl::Status SetFlag(const Flag& flag, const std::string& value);
  const Flag* FindFlag(const std::string& name) const;
  absl::Status ParseInto(const std::vector<std::string>& args, bool* help);

  std::string usage_;
  std::string description_;
  std::vector<Flag> flags_;
  std::vector<Positional> positionals_;
};

// Parses a command's `args`: -1 when the command goes on, otherwise the exit code to return at once
// (kExitOk after --help, kExitUsage after a bad command line; Parse has printed either):
//   if (int code = ParseOrExit(parser, args); code >= 0) return code;
int ParseOrExit(ArgParser& parser, const std::vector<std::string>& args);

// Runs a subcommand group: args[0] names the subcommand. Prints the group's help for -h/--help or
// no subcommand, and a usage error for an unknown one.
int RunSubcommand(CommandContext& ctx, const std::string& group,
                  const std::vector<Command>& subcommands, const std::vector<std::string>& args);

// The bearer token in `path`: the last field of the first line that is not blank or a '#'
// comment (so both a bare "TOKEN" file and the daemon's "NAME TOKEN" lines work).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Formats seconds as "3d 4h", "5m 3s", "12.3s".
std::string FormatDuration(double seconds);
// Formats a byte count as "1.5 MiB".
std::string FormatBytes(double bytes);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_CLI_H_
