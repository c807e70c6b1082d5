// anectl: the anerd command-line client. Global flags (--host, --token-file, --tls-ca, --tls-cert,
// --tls-key, --timeout, --json) may appear anywhere; the first other word names the command. Exit
// codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "common/memory_trim.h"

namespace anerd::anectl {
namespace {

void PrintTopHelp() {
  std::cout << "usage: anectl [--host unix:PATH|HOST:PORT] [--token-file F] [--tls-ca PEM] "
               "[--tls-cert PEM --tls-key PEM] [--timeout SECONDS] [--json] "
               "<command> [args]\n\nanectl talks to anerd, the Apple Neural Engine daemon.\n\n"
               "commands:\n";
  for (const Command& c : CommandTable()) {
    std::cout << absl::StrFormat("  %-10s %s\n", c.name, c.summary);
  }
  std::cout << "\nRun `anectl <command> --help` for a command's flags. The daemon is found at "
               "--host, else $ANERD_HOST, else the default per-user socket. A TCP --host needs "
               "--token-file; --tls-ca turns on TLS, and --tls-cert/--tls-key present a client "
               "certificate to a daemon that requires one (--tls-client-ca).\n";
}

// Removes global flags from `args` into `options`. Returns false (after printing) on a bad value.
bool ExtractGlobalFlags(std::vector<std::string>* args, GlobalOptions* options) {
  std::vector<std::string> rest;
  for (size_t i = 0; i < args->size(); ++i) {
    std::string arg = (*args)[i];
    std::string value;
    auto take = [&](const std::string& name) -> bool {
      if (arg == "--" + name) {
        if (i + 1 >= args->size()) return false;
        value = (*args)[++i];
        return true;
      }
      if (arg.rfind("--" + name + "=", 0) == 0) {
        value = arg.substr(name.size() + 3);
        return true;
      }
      return false;
    };
    if (take("host")) {
      options->host = value;
    } else if (take("token-file")) {
      options->token_file = value;
    } else if (take("tls-ca")) {
      options->tls_ca = value;
    } else if (take("tls-cert")) {
      options->tls_cert = value;
    } else if (take("tls-key")) {
      options->tls_key = value;
    } else if (take("timeout")) {
      if (!absl::SimpleAtod(value, &options->timeout_seconds) || options->timeout_seconds <= 0) {
        std::fprintf(stderr, "anectl: --timeout wants a positive number of seconds\n");
        return false;
      }
    } else if (arg == "--json") {
      options->json = true;
    } else if (arg == "--host" || arg == "--timeout" || arg == "--token-file" ||
               arg == "--tls-ca" || arg == "--tls-cert" || arg == "--tls-key") {
      std::fprintf(stderr, "anectl: %s needs a value\n", arg.c_str());
      return false;
    } else {
      rest.push_back(arg);
    }
  }
  *args = std::move(rest);
  return true;
}

int Main(int argc, char** argv) {
  TuneAllocatorForStreaming();  // uploads and downloads stream 1 MiB chunks: common/memory_trim.h
  std::vector<std::string> args(argv + 1, argv + argc);
  GlobalOptions options;
  options.argv0 = argc > 0 ? argv[0] : "anectl";
  if (!ExtractGlobalFlags(&args, &options)) return kExitUsage;
  if (!args.empty() && args[0] == "__complete") {
    CommandContext ctx(options);
    return RunComplete(ctx, std::vector<std::string>(args.begin() + 1, args.end()));
  }
  // `anectl help train start` is `anectl train start --help`.
  if (args.size() > 1 && args[0] == "help") {
    args.erase(args.begin());
    args.push_back("--help");
  }
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    PrintTopHelp();
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "--version") args[0] = "version";
  for (const Command& command : CommandTable()) {
    if (command.name != args[0]) continue;
    CommandContext ctx(options);
    return command.run(ctx, std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::fprintf(stderr, "anectl: unknown command '%s' (see anectl --help)\n", args[0].c_str());
  return kExitUsage;
}

}  // namespace
}  // namespace anerd::anectl

int main(int argc, char** argv) { return anerd::anectl::Main(argc, argv); }
