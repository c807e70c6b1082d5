// anectl service install|uninstall|start|stop|status: the launchd LaunchAgent (macOS) or the
// systemd user unit (Linux) that keeps anerd running.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "client/anectl/process.h"
#include "common/paths.h"
#include "common/version.h"
#include "launchd/service_templates.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;

enum class Manager { kLaunchd, kSystemd };

struct ServiceFlags {
  std::string manager;  // "", "launchd", "systemd"
  std::string anerd;
  bool dry_run = false;
  std::vector<std::string> daemon_flags;  // after "--": passed to anerd by the service
};

absl::StatusOr<Manager> ChooseManager(const std::string& name) {
  if (name.empty()) return kIsMacOS ? Manager::kLaunchd : Manager::kSystemd;
  if (name == "launchd") return Manager::kLaunchd;
  if (name == "systemd") return Manager::kSystemd;
  return absl::InvalidArgumentError("--manager wants launchd or systemd, got '" + name + "'");
}

std::string ConfigHome() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  return xdg != nullptr && *xdg != '\0' ? xdg : HomeDir() + "/.config";
}

std::string UnitPath(Manager m) {
  return m == Manager::kLaunchd
             ? absl::StrCat(HomeDir(), "/Library/LaunchAgents/", kLaunchdLabel, ".plist")
             : absl::StrCat(ConfigHome(), "/systemd/user/", kSystemdUnitName);
}

std::string XmlEscape(const std::string& s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

std::string SystemdQuote(const std::string& s) {
  // Inside systemd's double quotes: backslash and quote escaped, '%' doubled (specifiers).
  return absl::StrReplaceAll(s, {{"\\", "\\\\"}, {"\"", "\\\""}, {"%", "%%"}});
}

// Fills a template in. Paths and flags are escaped for the target format (XML for the plist;
// systemd's quoted ExecStart arguments).
std::string Render(Manager m, const std::string& binary, const std::vector<std::string>& flags) {
  std::string extra;
  if (m == Manager::kLaunchd) {
    for (const std::string& f : flags)
      absl::StrAppend(&extra, "\n    <string>", XmlEscape(f), "</string>");
    const std::string log_dir = HomeDir() + "/Library/Logs/anerd";
    return absl::StrReplaceAll(kLaunchdPlistTemplate, {{"{{ANERD_BINARY}}", XmlEscape(binary)},
                                                       {"{{LOG_DIR}}", XmlEscape(log_dir)},
                                                       {"{{DAEMON_FLAGS}}", extra}});
  }
  for (const std::string& f : flags) absl::StrAppend(&extra, " \"", SystemdQuote(f), "\"");
  return absl::StrReplaceAll(kSystemdUnitTemplate, {{"{{ANERD_BINARY}}", SystemdQuote(binary)},
                                                    {"{{DAEMON_FLAGS}}", extra}});
}

// Why the manager cannot be used here, or OK.
absl::Status CheckAvailable(Manager m) {
  if (m == Manager::kLaunchd) {
    if (!kIsMacOS || !InPath("launchctl")) {
      return absl::FailedPreconditionError(
          "launchd is not available on this machine (launchctl not found); run `anerd` in the "
          "foreground or use --manager systemd on Linux");
    }
    return absl::OkStatus();
  }
  if (!InPath("systemctl")) {
    return absl::FailedPreconditionError(
        "no user systemd here (systemctl not found); run `anerd` in the foreground instead");
  }
  ProcessResult r = RunProcess({"systemctl", "--user", "show-environment"});
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no user systemd here (`systemctl --user` failed: ", absl::StripAsciiWhitespace(r.output),
        "); run `anerd` in the foreground instead"));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string dir = path.substr(0, path.rfind('/'));
  if (absl::Status s = MakeDirs(dir, 0755); !s.ok()) return s;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.good()) return absl::PermissionDeniedError("cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError("cannot rename " + tmp + " to " + path);
  }
  return absl::OkStatus();
}

std::string LaunchdDomain() { return absl::StrCat("gui/", getuid()); }
std::string LaunchdTarget() { return absl::StrCat(LaunchdDomain(), "/", kLaunchdLabel); }

// Runs the manager's commands in order, printing each; stops at the first failure unless
// `tolerate_failure`.
absl::Status RunSteps(const std::vector<std::vector<std::string>>& steps, bool tolerate_failure) {
  for (const std::vector<std::string>& step : steps) {
    ProcessResult r = RunProcess(step);
    std::fprintf(stderr, "ran: %s -> exit %d\n", absl::StrJoin(step, " ").c_str(), r.exit_code);
    if (r.exit_code != 0 && !tolerate_failure) {
      return absl::FailedPreconditionError(absl::StrCat(
          absl::StrJoin(step, " "), " failed: ", absl::StripAsciiWhitespace(r.output)));
    }
  }
  return absl::OkStatus();
}

int Install(CommandContext& ctx, const std::vector<std::string>& all_args) {
  ServiceFlags flags;
  std::vector<std::string> args = all_args;
  if (auto dash = std::find(args.begin(), args.end(), "--"); dash != args.end()) {
    flags.daemon_flags.assign(dash + 1, args.end());
    args.erase(dash, args.end());
  }
  for (const std::string& f : flags.daemon_flags) {
    if (f.size() < 2 || f[0] != '-') {
      std::fprintf(stderr,
                   "anectl: after --, give anerd flags as --name=value (got '%s'; see anerd "
                   "--help)\n",
                   f.c_str());
      return kExitUsage;
    }
  }
  ArgParser parser(
      "anectl service install [--anerd PATH] [--manager launchd|systemd] [--dry-run] "
      "[-- ANERD FLAGS...]",
      "Writes the per-user service file for anerd and loads it (launchd LaunchAgent "
      "io.anerd.daemon on macOS, systemd user unit anerd.service on Linux). Flags after -- are "
      "passed to anerd, e.g. -- --data-root=$HOME/data --max-sessions=2 (or put them in "
      "~/.config/anerd/anerd.conf).");
  parser.AddString("anerd", &flags.anerd, "anerd binary (default: the one beside anectl)");
  parser.AddString("manager", &flags.manager, "launchd or systemd (default: this OS's)");
  parser.AddBool("dry-run", &flags.dry_run, "print the file that would be written; change nothing");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<Manager> manager = ChooseManager(flags.manager);
  if (!manager.ok()) {
    ctx.Fail(manager.status());
    return kExitUsage;
  }
  if (flags.anerd.empty()) {
    absl::StatusOr<std::string> found = SiblingBinary(ctx.options().argv0, "anerd");
    if (!found.ok()) return ctx.Fail(found.status());
    flags.anerd = *found;
  }
  const std::string path = UnitPath(*manager);
  const std::string content = Render(*manager, flags.anerd, flags.daemon_flags);
  if (flags.dry_run) {
    if (ctx.json()) {
      std::cout << Json{{"schema_version", 1}, {"path", path}, {"content", content}}.dump(2)
                << "\n";
    } else {
      std::fprintf(stderr, "would write %s:\n", path.c_str());
      std::cout << content;
    }
    return kExitOk;
  }
  if (absl::Status s = CheckAvailable(*manager); !s.ok()) return ctx.Fail(s);
  if (absl::Status s = WriteFileAtomically(path, content); !s.ok()) return ctx.Fail(s);
  std::fprintf(stderr, "wrote %s\n", path.c_str());
  absl::Status loaded =
      *manager == Manager::kLaunchd
          ? RunSteps({{"launchctl", "bootout", LaunchdTarget()}}, true).ok()
                ? RunSteps({{"launchctl", "bootstrap", LaunchdDomain(), path}}, false)
                : absl::OkStatus()
          : RunSteps({{"systemctl", "--user", "daemon-reload"},
                      {"systemctl", "--user", "enable", "--now", kSystemdUnitName}},
                     false);
  if (!loaded.ok()) return ctx.Fail(loaded);
  std::cout << "installed and started anerd (" << path << ")\n";
  return kExitOk;
}

int Uninstall(CommandContext& ctx, const std::vector<std::string>& args) {
  ServiceFlags flags;
  ArgParser parser("anectl service uninstall [--manager launchd|systemd]",
                   "Stops anerd's service and removes its service file.");
  parser.AddString("manager", &flags.manager, "launchd or systemd (default: this OS's)");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<Manager> manager = ChooseManager(flags.manager);
  if (!manager.ok()) return ctx.Fail(manager.status());
  if (absl::Status s = CheckAvailable(*manager); !s.ok()) return ctx.Fail(s);
  const std::string path = UnitPath(*manager);
  if (*manager == Manager::kLaunchd) {
    (void)RunSteps({{"launchctl", "bootout", LaunchdTarget()}}, true);
  } else {
    (void)RunSteps({{"systemctl", "--user", "disable", "--now", kSystemdUnitName}}, true);
  }
  const bool existed = ::unlink(path.c_str()) == 0;
  if (*manager == Manager::kSystemd) {
    (void)RunSteps({{"systemctl", "--user", "daemon-reload"}}, true);
  }
  std::cout << (existed ? "removed " + path : "no service file at " + path) << "\n";
  return kExitOk;
}

// start / stop / status share their shape: one manager command each.
int ManagerAction(CommandContext& ctx, const std::vector<std::string>& args,
                  const std::string& action) {
  ServiceFlags flags;
  ArgParser parser(absl::StrCat("anectl service ", action, " [--manager launchd|systemd]"),
                   absl::StrCat("Asks the service manager to ", action, " anerd."));
  parser.AddString("manager", &flags.manager, "launchd or systemd (default: this OS's)");
  if (ArgParser::Result r = parser.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<Manager> manager = ChooseManager(flags.manager);
  if (!manager.ok()) return ctx.Fail(manager.status());
  if (absl::Status s = CheckAvailable(*manager); !s.ok()) return ctx.Fail(s);
  std::vector<std::string> cmd;
  if (*manager == Manager::kLaunchd) {
    if (action == "start") cmd = {"launchctl", "kickstart", LaunchdTarget()};
    if (action == "stop") cmd = {"launchctl", "kill", "SIGTERM", LaunchdTarget()};
    if (action == "status") cmd = {"launchctl", "print", LaunchdTarget()};
  } else {
    cmd = {"systemctl", "--user", action, kSystemdUnitName};
  }
  ProcessResult r = RunProcess(cmd);
  std::cout << r.output;
  if (action == "status") {
    struct stat st {};
    std::cout << "service file: " << UnitPath(*manager)
              << (::stat(UnitPath(*manager).c_str(), &st) == 0 ? "" : " (not installed)") << "\n";
  }
  if (r.exit_code != 0) {
    return ctx.Fail(absl::FailedPreconditionError(
        absl::StrCat(absl::StrJoin(cmd, " "), " exited with ", r.exit_code)));
  }
  return kExitOk;
}

}  // namespace

int RunService(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = new std::vector<Command>{
      {"install", "write and load the service file", Install},
      {"uninstall", "stop the service and remove its file", Uninstall},
      {"start", "start anerd through the service manager",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return ManagerAction(c, a, "start");
       }},
      {"stop", "stop anerd through the service manager",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return ManagerAction(c, a, "stop");
       }},
      {"status", "show the service manager's view of anerd",
       [](CommandContext& c, const std::vector<std::string>& a) {
         return ManagerAction(c, a, "status");
       }},
  };
  return RunSubcommand(ctx, "service", *subcommands, args);
}

}  // namespace anerd::anectl
