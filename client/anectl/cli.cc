#include "client/anectl/cli.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace anerd::anectl {

absl::StatusOr<Endpoint> CommandContext::ResolvedEndpoint() const {
  return ResolveClientEndpoint(options_.host);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError("cannot read --token-file " + path);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty() || fields[0][0] == '#') continue;
    // "TOKEN", or the daemon's own "NAME TOKEN [admin]" line.
    return fields.size() == 1 ? fields[0] : fields[1];
  }
  return absl::InvalidArgumentError("--token-file " + path + " holds no token");
}

namespace {

// The whole of the PEM file named by global flag `flag`.
absl::StatusOr<std::string> ReadPemFlag(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  std::stringstream pem;
  pem << in.rdbuf();
  if (!in || pem.str().empty())
    return absl::InvalidArgumentError("cannot read " + flag + " " + path);
  return pem.str();
}

// Fills the TLS fields of `options` from --tls-ca, --tls-cert and --tls-key.
absl::Status LoadTlsFiles(const GlobalOptions& flags, client::ClientOptions* options) {
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together (a client certificate and its private key)");
  }
  if (!flags.tls_ca.empty()) {
    ANERD_ASSIGN_OR_RETURN(options->tls_root_pem, ReadPemFlag("--tls-ca", flags.tls_ca));
  }
  if (!flags.tls_cert.empty()) {
    ANERD_ASSIGN_OR_RETURN(options->tls_cert_pem, ReadPemFlag("--tls-cert", flags.tls_cert));
    ANERD_ASSIGN_OR_RETURN(options->tls_key_pem, ReadPemFlag("--tls-key", flags.tls_key));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<client::AnerdClient*> CommandContext::Client() {
  if (client_ == nullptr) {
    absl::StatusOr<Endpoint> endpoint = ResolvedEndpoint();
    if (!endpoint.ok()) return endpoint.status();
    client::ClientOptions options;
    options.endpoint = *endpoint;
    options.timeout = absl::Seconds(options_.timeout_seconds);
    if (!options_.token_file.empty()) {
      absl::StatusOr<std::string> token = ReadTokenFile(options_.token_file);
      if (!token.ok()) return token.status();
      options.bearer_token = *token;
    }
    ANERD_RETURN_IF_ERROR(LoadTlsFiles(options_, &options));
    client_ = client::AnerdClient::Create(options);
  }
  return client_.get();
}

int CommandContext::Fail(const absl::Status& status) const {
  std::fprintf(stderr, "anectl: %s\n", std::string(status.message()).c_str());
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kDeadlineExceeded) {
    return kExitUnreachable;
  }
  return kExitError;
}

std::string CommandContext::Color(const char* code, const std::string& s) const {
  static const bool enabled = isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  if (!enabled || options_.json) return s;
  return absl::StrCat("\033[", code, "m", s, "\033[0m");
}
std::string CommandContext::Bold(const std::string& s) const { return Color("1", s); }
std::string CommandContext::Green(const std::string& s) const { return Color("32", s); }
std::string CommandContext::Red(const std::string& s) const { return Color("31", s); }
std::string CommandContext::Dim(const std::string& s) const { return Color("2", s); }

ArgParser::ArgParser(std::string usage, std::string description)
    : usage_(std::move(usage)), description_(std::move(description)) {}

void ArgParser::AddString(const std::string& name, std::string* out, const std::string& help) {
  flags_.push_back({name, Kind::kString, out, help, *out});
}
void ArgParser::AddInt(const std::string& name, int64_t* out, const std::string& help) {
  flags_.push_back({name, Kind::kInt, out, help, *out != 0 ? absl::StrCat(*out) : ""});
}
void ArgParser::AddDouble(const std::string& name, double* out, const std::string& help) {
  flags_.push_back({name, Kind::kDouble, out, help, *out != 0 ? absl::StrCat(*out) : ""});
}
void ArgParser::AddBool(const std::string& name, bool* out, const std::string& help) {
  flags_.push_back({name, Kind::kBool, out, help, ""});
}
void ArgParser::AddRepeated(const std::string& name, std::vector<std::string>* out,
                            const std::string& help) {
  flags_.push_back({name, Kind::kRepeated, out, help, ""});
}
void ArgParser::AddPositional(const std::string& name, std::string* out, const std::string& help,
                              bool required) {
  positionals_.push_back({name, out, help, required});
}

const ArgParser::Flag* ArgParser::FindFlag(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::Status ArgParser::SetFlag(const Flag& flag, const std::string& value) {
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.out) = value;
      return absl::OkStatus();
    case Kind::kRepeated:
      static_cast<std::vector<std::string>*>(flag.out)->push_back(value);
      return absl::OkStatus();
    case Kind::kInt:
      if (!absl::SimpleAtoi(value, static_cast<int64_t*>(flag.out))) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag.name, " wants an integer, got '", value, "'"));
      }
      return absl::OkStatus();
    case Kind::kDouble:
      if (!absl::SimpleAtod(value, static_cast<double*>(flag.out))) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag.name, " wants a number, got '", value, "'"));
      }
      return absl::OkStatus();
    case Kind::kBool:
      if (!absl::SimpleAtob(value, static_cast<bool*>(flag.out))) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag.name, " wants true or false, got '", value, "'"));
      }
      return absl::OkStatus();
  }
  return absl::InternalError("unreachable");
}

absl::Status ArgParser::ParseInto(const std::vector<std::string>& args, bool* help) {
  size_t next_positional = 0;
  bool only_positionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!only_positionals && (arg == "-h" || arg == "--help")) {
      *help = true;
      return absl::OkStatus();
    }
    if (!only_positionals && arg == "--") {
      only_positionals = true;
      continue;
    }
    // A one-letter flag may be given with one dash ("-o FILE" for a flag named "o").
    const bool short_flag = !only_positionals && arg.size() == 2 && arg[0] == '-' &&
                            arg[1] != '-' && FindFlag(arg.substr(1)) != nullptr;
    if (short_flag || (!only_positionals && absl::StartsWith(arg, "--"))) {
      std::string name = arg.substr(short_flag ? 1 : 2);
      std::string value;
      const size_t eq = name.find('=');
      const bool has_value = eq != std::string::npos;
      if (has_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      const Flag* flag = FindFlag(name);
      if (flag == nullptr) return absl::InvalidArgumentError("unknown flag --" + name);
      if (flag->kind == Kind::kBool && !has_value) value = "true";
      if (flag->kind != Kind::kBool && !has_value) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError("--" + name + " needs a value");
        value = args[++i];
      }
      if (absl::Status s = SetFlag(*flag, value); !s.ok()) return s;
      continue;
    }
    if (next_positional >= positionals_.size()) {
      return absl::InvalidArgumentError("unexpected argument '" + arg + "'");
    }
    *positionals_[next_positional++].out = arg;
  }
  for (size_t p = next_positional; p < positionals_.size(); ++p) {
    if (positionals_[p].required) {
      return absl::InvalidArgumentError("missing " + positionals_[p].name);
    }
  }
  return absl::OkStatus();
}

ArgParser::Result ArgParser::Parse(const std::vector<std::string>& args) {
  bool help = false;
  absl::Status status = ParseInto(args, &help);
  if (help) {
    std::cout << Help();
    return Result::kHelp;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "anectl: %s\nusage: %s\n(see --help)\n",
                 std::string(status.message()).c_str(), usage_.c_str());
    return Result::kError;
  }
  return Result::kOk;
}

std::string ArgParser::Help() const {
  std::string out = absl::StrCat("usage: ", usage_, "\n\n", description_, "\n");
  if (!positionals_.empty()) {
    absl::StrAppend(&out, "\narguments:\n");
    for (const Positional& p : positionals_) {
      absl::StrAppend(&out, absl::StrFormat("  %-22s %s\n", p.name, p.help));
    }
  }
  absl::StrAppend(&out, "\nflags:\n");
  for (const Flag& f : flags_) {
    const std::string spelled =
        f.kind == Kind::kBool ? "--" + f.name : absl::StrCat("--", f.name, " VALUE");
    const bool states_default = absl::StrContains(absl::AsciiStrToLower(f.help), "default");
    const std::string help = f.default_text.empty() || states_default
                                 ? f.help
                                 : absl::StrCat(f.help, " (default ", f.default_text, ")");
    absl::StrAppend(&out, absl::StrFormat("  %-22s %s\n", spelled, help));
  }
  absl::StrAppend(
      &out, absl::StrFormat("  %-22s %s\n", "-h, --help", "show this help"),
      "\nglobal flags: --host unix:PATH|HOST:PORT, --token-file F, --tls-ca PEM, --tls-cert PEM, "
      "--tls-key PEM, --timeout SECONDS, --json\n");
  return out;
}

int ParseOrExit(ArgParser& parser, const std::vector<std::string>& args) {
  const ArgParser::Result r = parser.Parse(args);
  if (r == ArgParser::Result::kOk) return -1;
  return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
}

int RunSubcommand(CommandContext& ctx, const std::string& group,
                  const std::vector<Command>& subcommands, const std::vector<std::string>& args) {
  const bool want_help = args.empty() || args[0] == "-h" || args[0] == "--help";
  if (!want_help) {
    for (const Command& c : subcommands) {
      if (c.name == args[0]) {
        return c.run(ctx, std::vector<std::string>(args.begin() + 1, args.end()));
      }
    }
  }
  std::string help = absl::StrCat("usage: anectl ", group, " <command> [flags]\n\ncommands:\n");
  for (const Command& c : subcommands) {
    absl::StrAppend(&help, absl::StrFormat("  %-12s %s\n", c.name, c.summary));
  }
  if (want_help) {
    std::cout << help;
    return args.empty() ? kExitUsage : kExitOk;
  }
  std::fprintf(stderr, "anectl: unknown command '%s %s'\n%s", group.c_str(), args[0].c_str(),
               help.c_str());
  return kExitUsage;
}

std::string FormatDuration(double seconds) {
  if (seconds < 60) return absl::StrFormat("%.1fs", seconds);
  const int64_t s = static_cast<int64_t>(seconds);
  if (s < 3600) return absl::StrFormat("%dm %ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh %dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd %dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f %s", bytes, units[u])
                : absl::StrFormat("%.1f %s", bytes, units[u]);
}

}  // namespace anerd::anectl
