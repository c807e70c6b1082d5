// `anectl data synth`: writes the synthetic story corpus (common/synth_stories.h) so training
// demos and tests need no download (offline; no daemon). `anectl data push|ls|show|rm|pull`:
// dataset artifacts on the daemon (artifact_commands.cc); `anectl data tokenize`
// (data_tokenize.cc).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/anectl/artifact_commands.h"
#include "client/anectl/commands.h"
#include "common/atomic_file.h"
#include "common/synth_stories.h"

namespace anerd::anectl {
namespace {

constexpr int64_t kMaxSynthBytes = int64_t{1} << 32;

int Synth(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string out;
  int64_t bytes = 1 << 20;
  int64_t seed = 1;
  ArgParser parser(
      "anectl data synth --out FILE [--bytes N] [--seed S]",
      "Write a synthetic corpus of short stories (UTF-8 text for byte-level training).");
  parser.AddString("out", &out, "output file (written atomically)");
  parser.AddInt("bytes", &bytes, "size in bytes (default 1 MiB)");
  parser.AddInt("seed", &seed, "generator seed (default 1)");
  if (int code = ParseOrExit(parser, args); code >= 0) return code;
  if (out.empty() || bytes <= 0 || bytes > kMaxSynthBytes) {
    std::fprintf(stderr, "anectl: --out is required and --bytes must be in [1, 2^32]\n");
    return kExitUsage;
  }
  const absl::Status s = WriteFileAtomically(
      out, SynthesizeStories(static_cast<uint64_t>(seed), static_cast<size_t>(bytes)), 0644);
  if (!s.ok()) return ctx.Fail(s);
  if (!ctx.json())
    std::printf("wrote %lld bytes to %s\n", static_cast<long long>(bytes), out.c_str());
  return kExitOk;
}

}  // namespace

int RunData(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = [] {
    auto* list = new std::vector<Command>{
        {"synth", "write a synthetic story corpus for training demos", Synth},
        {"tokenize", "tokenize a text dataset on the daemon into a token dataset", DataTokenize},
    };
    for (Command& c : ArtifactSubcommands("data", "dataset")) list->push_back(std::move(c));
    return list;
  }();
  return RunSubcommand(ctx, "data", *subcommands, args);
}

}  // namespace anerd::anectl
