// anectl token create NAME [--file F] [--admin] [--out F]: appends "NAME TOKEN" (a fresh random
// token; with --admin "NAME TOKEN admin") to the token file the daemon reads with --auth-tokens,
// and prints the token for the client (--token-file) or writes it to --out (0600).
// anectl token ls: the names in the file (never the tokens); anectl token revoke NAME: removes one.
// Token files are always written 0600. Runs offline, on the daemon's machine.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/anectl/commands.h"
#include "common/atomic_file.h"
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

struct TokenLine {
  std::string name;
  bool admin = false;
  std::string text;  // the whole line as stored
};

// The token lines of `path` (comments and blank lines are kept out). NOT_FOUND when missing.
absl::StatusOr<std::vector<TokenLine>> ReadTokenLines(const std::string& path,
                                                      std::vector<std::string>* all_lines) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no token file ", path));
  std::vector<TokenLine> out;
  for (std::string line; std::getline(in, line);) {
    if (all_lines != nullptr) all_lines->push_back(line);
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.empty() || f[0][0] == '#') continue;
    out.push_back({f[0], f.size() > 2 && f[2] == "admin", line});
  }
  return out;
}

// Token files must be private: tighten one that is readable by others, and say so.
void EnsurePrivate(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    ::chmod(path.c_str(), 0600);
    std::fprintf(stderr, "anectl: %s was readable by others (mode %o); it is now 0600\n",
                 path.c_str(), st.st_mode & 0777);
  }
}

int List(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string file = DefaultStateDir() + "/tokens";
  ArgParser p("anectl token ls [--file FILE] [--json]",
              "Lists the token names in FILE and which are admin tokens (never the tokens).");
  p.AddString("file", &file, "token file (default: <state dir>/tokens)");
  ArgParser::Result r = p.Parse(args);
  if (r != ArgParser::Result::kOk) return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  absl::StatusOr<std::vector<TokenLine>> lines = ReadTokenLines(file, nullptr);
  if (!lines.ok()) return ctx.Fail(lines.status());
  if (ctx.json()) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const TokenLine& t : *lines) list.push_back({{"name", t.name}, {"admin", t.admin}});
    std::cout
        << nlohmann::ordered_json{{"schema_version", 1}, {"file", file}, {"tokens", list}}.dump(2)
        << "\n";
    return kExitOk;
  }
  std::cout << ctx.Bold(absl::StrFormat("%-24s %s", "NAME", "ADMIN")) << "\n";
  for (const TokenLine& t : *lines) {
    std::cout << absl::StrFormat("%-24s %s\n", t.name, t.admin ? "yes" : "no");
  }
  if (lines->empty()) std::cout << "(no tokens; add one with anectl token create NAME)\n";
  return kExitOk;
}

int Revoke(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string name;
  std::string file = DefaultStateDir() + "/tokens";
  ArgParser p("anectl token revoke NAME [--file FILE]",
              "Removes the token NAME from FILE (rewritten atomically, 0600). Restart anerd to "
              "stop accepting it.");
  p.AddPositional("NAME", &name, "the token's name");
  p.AddString("file", &file, "token file (default: <state dir>/tokens)");
  ArgParser::Result r = p.Parse(args);
  if (r != ArgParser::Result::kOk) return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  std::vector<std::string> all;
  absl::StatusOr<std::vector<TokenLine>> lines = ReadTokenLines(file, &all);
  if (!lines.ok()) return ctx.Fail(lines.status());
  std::string kept;
  bool found = false;
  for (const std::string& line : all) {
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (!f.empty() && f[0] == name) {
      found = true;
      continue;
    }
    absl::StrAppend(&kept, line, "\n");
  }
  if (!found) {
    return ctx.Fail(absl::NotFoundError(absl::StrCat("no token '", name, "' in ", file)));
  }
  if (absl::Status s = WriteFileAtomically(file, kept, 0600); !s.ok()) return ctx.Fail(s);
  std::fprintf(stderr, "revoked token '%s' in %s (restart anerd to apply)\n", name.c_str(),
               file.c_str());
  return kExitOk;
}

int Create(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string name;
  std::string file = DefaultStateDir() + "/tokens";
  std::string out_file;
  bool admin = false;
  ArgParser p("anectl token create NAME [--file FILE] [--admin]",
              "Appends a new random bearer token named NAME to FILE (created 0600) and prints it. "
              "Start anerd with --auth-tokens FILE; give the token to the client (anectl "
              "--token-file, or the authorization metadata of any gRPC client). A token sees "
              "only the sessions, kernels and probe results it created; an --admin token sees "
              "and manages every client's, and may scrape the metrics endpoint.");
  p.AddPositional("NAME", &name, "a label for the token (who uses it)");
  p.AddString("file", &file, "token file (default: <state dir>/tokens)");
  p.AddBool("admin", &admin, "the token sees every client's objects");
  p.AddString("out", &out_file, "also write the bare token to this file (0600) for --token-file");
  ArgParser::Result r = p.Parse(args);
  if (r != ArgParser::Result::kOk) return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  if (absl::Status s = CheckName(file, name); !s.ok()) return ctx.Fail(s);
  EnsurePrivate(file);
  absl::StatusOr<std::string> token = RandomToken();
  if (!token.ok()) return ctx.Fail(token.status());
  if (absl::Status s =
          AppendLine(file, absl::StrCat(name, " ", *token, admin ? " admin" : "", "\n"));
      !s.ok()) {
    return ctx.Fail(s);
  }
  if (!out_file.empty()) {
    if (absl::Status s = WriteFileAtomically(out_file, *token + "\n", 0600); !s.ok()) {
      return ctx.Fail(s);
    }
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
      {"ls", "list the token names in a token file", List},
      {"revoke", "remove a token from a token file", Revoke},
  };
  return RunSubcommand(ctx, "token", *subcommands, args);
}

}  // namespace anerd::anectl
