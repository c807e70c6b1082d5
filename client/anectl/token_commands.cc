// anectl token create NAME [--file F] [--admin]: appends "NAME TOKEN" (a fresh random token; with
// --admin "NAME TOKEN admin") to the token file the daemon reads with --auth_tokens, and prints the
// token for the client (--token-file).
// Runs offline, on the daemon's machine.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/anectl/commands.h"
#include "common/paths.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

constexpr size_t kTokenBytes = 32;

absl::StatusOr<std::string> RandomToken() {
  std::string bytes(kTokenBytes, '\0');
  std::ifstream random("/dev/urandom", std::ios::binary);
  if (!random.read(bytes.data(), bytes.size())) {
    return absl::UnavailableError("cannot read /dev/urandom");
  }
  return absl::BytesToHexString(bytes);
}

// INVALID_ARGUMENT when `name` is unusable or already in `path`.
absl::Status CheckName(const std::string& path, const std::string& name) {
  if (name.empty() || name.find_first_of(" \t\r\n#") != std::string::npos) {
    return absl::InvalidArgumentError("token name must be one word without '#'");
  }
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (!f.empty() && f[0] == name) {
      return absl::InvalidArgumentError(
          absl::StrCat("token '", name, "' already exists in ", path));
    }
  }
  return absl::OkStatus();
}

absl::Status AppendLine(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::PermissionDeniedError("cannot open " + path);
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  return ok ? absl::OkStatus() : absl::DataLossError("cannot write " + path);
}

int Create(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string name;
  std::string file = DefaultStateDir() + "/tokens";
  bool admin = false;
  ArgParser p("anectl token create NAME [--file FILE] [--admin]",
              "Appends a new random bearer token named NAME to FILE (created 0600) and prints it. "
              "Start anerd with --auth_tokens FILE; give the token to the client (anectl "
              "--token-file, or the authorization metadata of any gRPC client). A token sees "
              "only the sessions, kernels and probe results it created; an --admin token sees "
              "and manages every client's, and may scrape the metrics endpoint.");
  p.AddPositional("NAME", &name, "a label for the token (who uses it)");
  p.AddString("file", &file, "token file (default: <state dir>/tokens)");
  p.AddBool("admin", &admin, "the token sees every client's objects");
  ArgParser::Result r = p.Parse(args);
  if (r != ArgParser::Result::kOk) return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  if (absl::Status s = CheckName(file, name); !s.ok()) return ctx.Fail(s);
  absl::StatusOr<std::string> token = RandomToken();
  if (!token.ok()) return ctx.Fail(token.status());
  if (absl::Status s =
          AppendLine(file, absl::StrCat(name, " ", *token, admin ? " admin" : "", "\n"));
      !s.ok()) {
    return ctx.Fail(s);
  }
  if (ctx.json()) {
    std::cout << nlohmann::ordered_json{{"schema_version", 1},
                                        {"name", name},
                                        {"file", file},
                                        {"admin", admin},
                                        {"token", *token}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << *token << "\n";
    std::fprintf(stderr, "added token '%s' to %s (restart anerd to load it)\n", name.c_str(),
                 file.c_str());
  }
  return kExitOk;
}

}  // namespace

int RunToken(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = new std::vector<Command>{
      {"create", "append a new random bearer token to a token file", Create},
  };
  return RunSubcommand(ctx, "token", *subcommands, args);
}

}  // namespace anerd::anectl
