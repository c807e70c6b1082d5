// anerd's command-line conventions (daemon_flags.h).
#include "server/daemon/daemon_flags.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/regular_file.h"

namespace anerd::daemon {
namespace {

// "--state-dir=/a-b" -> "--state-dir=/a-b": only the name part (after the dashes, before '=').
std::string NormalizeOne(const std::string& arg) {
  const size_t start = arg.find_first_not_of('-');
  if (start == std::string::npos || start == 0 || start > 2) return arg;
  const size_t eq = arg.find('=');
  const size_t end = eq == std::string::npos ? arg.size() : eq;
  std::string out = arg;
  std::replace(out.begin() + start, out.begin() + end, '-', '_');
  return out;
}

std::string Hyphenated(absl::string_view name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

bool IsHidden(const std::string& help) {
  return absl::StartsWith(help, "Internal:") || absl::StartsWith(help, "Tests only:");
}

}  // namespace

std::vector<std::string> NormalizeFlagNames(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  out.reserve(args.size());
  bool after_terminator = false;
  for (const std::string& arg : args) {
    if (arg == "--") after_terminator = true;
    out.push_back(after_terminator ? arg : NormalizeOne(arg));
  }
  return out;
}

std::string ConfigFlagValue(const std::vector<std::string>& args, bool* found) {
  *found = false;
  std::string value;
  const std::vector<std::string> normal = NormalizeFlagNames(args);
  for (size_t i = 0; i < normal.size() && normal[i] != "--"; ++i) {
    const std::string& a = normal[i];
    for (absl::string_view prefix : {"--config", "-config"}) {
      if (a == prefix && i + 1 < normal.size()) {
        *found = true;
        value = normal[++i];
      } else if (absl::StartsWith(a, absl::StrCat(prefix, "="))) {
        *found = true;
        value = a.substr(prefix.size() + 1);
      }
    }
  }
  return value;
}

std::string DefaultConfigPath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && *xdg != '\0') return absl::StrCat(xdg, "/anerd/anerd.conf");
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return "";
  return absl::StrCat(home, "/.config/anerd/anerd.conf");
}

absl::StatusOr<std::vector<std::string>> ParseConfigText(absl::string_view text,
                                                         absl::string_view source) {
  std::vector<std::string> args;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    absl::string_view name = line, value;
    bool has_value = false;
    if (const size_t eq = line.find('='); eq != absl::string_view::npos) {
      name = absl::StripAsciiWhitespace(line.substr(0, eq));
      value = absl::StripAsciiWhitespace(line.substr(eq + 1));
      has_value = true;
    }
    while (absl::ConsumePrefix(&name, "-")) {
    }
    const std::string normal = absl::StrReplaceAll(name, {{"-", "_"}});
    if (normal.empty() || normal.find_first_of(" \t") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line_no, ": expected `name = value` (a flag of anerd without '--')"));
    }
    if (normal == "config") {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": a config file cannot name another (config)"));
    }
    args.push_back(has_value ? absl::StrCat("--", normal, "=", value) : absl::StrCat("--", normal));
  }
  return args;
}

absl::StatusOr<std::vector<std::string>> ReadConfigFile(const std::string& path) {
  absl::StatusOr<RegularFile> file = OpenRegularFile(path, "anerd config file");
  if (!file.ok()) return file.status();
  if (file->st.st_size > kMaxConfigFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("anerd config file ", path, " is ",
                                                   file->st.st_size, " bytes; the limit is ",
                                                   kMaxConfigFileBytes));
  }
  std::string text(static_cast<size_t>(file->st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(file->fd.get(), text.data() + done, text.size() - done);
    if (n < 0) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return ParseConfigText(text, path);
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : NormalizeFlagNames(args)) {
    if (a == "--") return false;
    if (a == "-h" || a == "--help" || a == "-help" || a == "--helpfull" || a == "--helpshort") {
      return true;
    }
  }
  return false;
}

std::vector<FlagDescription> UserFlags(absl::string_view defining_file) {
  std::vector<FlagDescription> out;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), defining_file)) continue;
    const std::string help = flag->Help();
    if (IsHidden(help)) continue;
    out.push_back({Hyphenated(name), help, flag->DefaultValue(), flag->CurrentValue()});
  }
  std::sort(out.begin(), out.end(),
            [](const FlagDescription& a, const FlagDescription& b) { return a.name < b.name; });
  return out;
}

std::string HelpText(absl::string_view usage, const std::vector<FlagDescription>& flags) {
  std::string out = absl::StrCat(usage,
                                 "\n\nFlags (`--name value` or `--name=value`; "
                                 "underscores work too):\n");
  for (const FlagDescription& f : flags) {
    absl::StrAppend(&out, "  --", f.name, "\n      ", f.help,
                    "\n      default: ", f.default_value.empty() ? "\"\"" : f.default_value, "\n");
  }
  absl::StrAppend(&out,
                  "\nA configuration file of `name = value` lines (--config FILE, else "
                  "$XDG_CONFIG_HOME/anerd/anerd.conf or ~/.config/anerd/anerd.conf when it "
                  "exists) sets flags the command line does not. --version prints the version.\n");
  return out;
}

std::vector<std::pair<std::string, std::string>> NonDefaultFlags(
    const std::vector<FlagDescription>& flags) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const FlagDescription& f : flags) {
    if (f.current_value != f.default_value) out.emplace_back(f.name, f.current_value);
  }
  return out;
}

}  // namespace anerd::daemon
