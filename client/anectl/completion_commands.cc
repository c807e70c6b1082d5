// anectl completion bash|zsh|fish: shell completion scripts. The scripts ask anectl itself for
// candidates (`anectl __complete WORD...`), which reads them from the commands' own help text, so
// completions never drift from the commands.
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"

namespace anerd::anectl {
namespace {

constexpr char kBash[] = R"SH(# anectl bash completion: eval "$(anectl completion bash)"
_anectl() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local words=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
  COMPREPLY=($(compgen -W "$(anectl __complete "${
  words[@]}" 2>/dev/null)" -- "$cur"))
  [ ${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _anectl anectl
)SH";

constexpr char kZsh[] = R"SH(#compdef anectl
# anectl zsh completion: eval "$(anectl completion zsh)"
_anectl() {
  local - a candidates candidates =
      (${(f) "$(anectl __complete ${words[2,CURRENT-1]} 2>/dev/null)"}) if ((${#candidates}));
  then compadd-- $candidates;
  else _files;
  fi
}
compdef _anectl anectl
)SH";

constexpr char kFish[] = R"SH(# anectl fish completion: anectl completion fish | source
complete -c anectl -f -a '(anectl __complete (commandline -opc)[2..-1] 2>/dev/null)'
)SH";

// Accepted anywhere on the command line (main.cc).
constexpr const char* kGlobalFlags[] = {"--host",    "--token-file", "--tls-ca", "--tls-cert",
                                        "--tls-key", "--timeout",    "--json"};

// What `args --help` prints, without printing it.
std::string CapturedHelp(CommandContext& ctx, const Command& command,
                         std::vector<std::string> args) {
  args.push_back("--help");
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  command.run(ctx, args);
  std::cout.rdbuf(old);
  return captured.str();
}

// Subcommand names (lines under "commands:") and flags ("  --name ...") of a help text.
std::vector<std::string> CandidatesIn(const std::string& help) {
  std::vector<std::string> out;
  bool in_commands = false;
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    if (line == "commands:") {
      in_commands = true;
      continue;
    }
    if (!absl::StartsWith(line, "  ")) {
      in_commands = false;
      continue;
    }
    absl::string_view word = absl::StripLeadingAsciiWhitespace(line);
    word = word.substr(0, word.find_first_of(" ,"));
    if (in_commands || absl::StartsWith(word, "--")) out.emplace_back(word);
  }
  return out;
}

int Complete(CommandContext& ctx, const std::vector<std::string>& words) {
  if (words.empty()) {
    for (const Command& c : CommandTable()) std::cout << c.name << "\n";
    std::cout << "help\n";
    return kExitOk;
  }
  for (const Command& c : CommandTable()) {
    if (c.name != words[0] || c.name == "completion") continue;
    // Positionals and flag values do not change the candidates: keep the command words only.
    std::vector<std::string> path;
    for (size_t i = 1; i < words.size() && !absl::StartsWith(words[i], "-"); ++i) {
      path.push_back(words[i]);
    }
    while (true) {
      const std::vector<std::string> found = CandidatesIn(CapturedHelp(ctx, c, path));
      if (!found.empty() || path.empty()) {
        for (const std::string& w : found) std::cout << w << "\n";
        for (const char* global : kGlobalFlags) std::cout << global << "\n";
        return kExitOk;
      }
      path.pop_back();  // a positional argument, not a subcommand
    }
  }
  if (words[0] == "help" || words[0] == "completion") {
    if (words[0] == "completion") std::cout << "bash\nzsh\nfish\n";
    if (words[0] == "help") {
      for (const Command& c : CommandTable()) std::cout << c.name << "\n";
    }
  }
  return kExitOk;
}

}  // namespace

int RunCompletion(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string shell;
  ArgParser p("anectl completion bash|zsh|fish",
              "Prints a shell completion script. bash: eval \"$(anectl completion bash)\" in "
              "~/.bashrc; zsh: eval \"$(anectl completion zsh)\" in ~/.zshrc (after compinit); "
              "fish: anectl completion fish > ~/.config/fish/completions/anectl.fish.");
  p.AddPositional("SHELL", &shell, "bash, zsh or fish");
  if (ArgParser::Result r = p.Parse(args); r != ArgParser::Result::kOk) {
    return r == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  if (shell == "bash") {
    std::cout << kBash;
  } else if (shell == "zsh") {
    std::cout << kZsh;
  } else if (shell == "fish") {
    std::cout << kFish;
  } else {
    std::fprintf(stderr, "anectl: completion wants bash, zsh or fish, got '%s'\n", shell.c_str());
    return kExitUsage;
  }
  return kExitOk;
}

int RunComplete(CommandContext& ctx, const std::vector<std::string>& args) {
  return Complete(ctx, args);
}

}  // namespace anerd::anectl
