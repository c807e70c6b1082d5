// anectl mil check, anectl mil fmt: offline MIL tools (no daemon; only `mil check --target ane
// --backend NAME` asks the daemon for the rules that backend has in force).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "common/mil/check.h"
#include "common/mil/parser.h"
#include "common/mil/printer.h"

namespace anerd::anectl {
namespace {

namespace fs = std::filesystem;

// Reads a file of at most `limit` bytes.
absl::StatusOr<std::string> ReadBounded(const fs::path& path, uint64_t limit) {
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path.string(), ": ", ec.message()));
  if (size > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is ", size, " bytes; the limit is ", limit));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) return absl::InternalError(absl::StrCat("cannot read ", path.string()));
  return ss.str();
}

// Every regular file directly in `dir`, keyed by file name (MIL's @model_path/weights/NAME).
absl::StatusOr<mil::WeightFiles> LoadWeights(const fs::path& dir) {
  mil::WeightFiles weights;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    auto bytes = ReadBounded(e.path(), uint64_t{16} << 30);
    if (!bytes.ok()) return bytes.status();
    absl::Status added = weights.Add(e.path().filename().string(), *std::move(bytes));
    if (!added.ok()) return added;
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir.string(), ": ", ec.message()));
  return weights;
}

void PrintDiagnostics(const std::string& file, const std::vector<mil::Diagnostic>& ds) {
  for (const mil::Diagnostic& d : ds) std::cerr << file << ":" << d.ToString() << "\n";
}

// The ANE rules `backend` has in force in the daemon (GetInfo's "ane_rule.*" facts: the table's
// values, or those a capability probe measured on this chip and OS build).
absl::StatusOr<mil::AneRules> DaemonRules(CommandContext& ctx, const std::string& backend) {
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<v1::GetInfoResponse> info = (*client)->GetInfo();
  if (!info.ok()) return info.status();
  for (const v1::BackendInfo& b : info->backends()) {
    if (b.name() != backend) continue;
    mil::AneRules rules;
    bool any = false;
    for (const auto& [key, value] : b.device_facts()) {
      mil::AneRuleRow row;
      if (!mil::DecodeAneRuleFact(key, value, &row)) continue;
      any = true;
      if (absl::Status s = mil::SetAneRule(row.id, row.value, &rules); !s.ok()) return s;
      if (row.origin != "table") rules.origins[row.id] = row.origin;
    }
    auto profile = b.device_facts().find("ane_rules_profile");
    if (profile != b.device_facts().end()) rules.profile = profile->second;
    if (!any) {
      return absl::FailedPreconditionError(
          absl::StrCat("the daemon's ", backend, " backend has no ANE rules"));
    }
    return rules;
  }
  return absl::NotFoundError(absl::StrCat("the daemon has no backend '", backend, "'"));
}

int Check(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string file, weights_dir, target = "any", chip, backend;
  bool json = false;
  ArgParser parser(
      "anectl mil check FILE.mil [--weights DIR] [--target ane [--chip NAME | --backend NAME]] "
      "[--json]",
      "Parse and verify a MIL program offline; print its entry signature, op count "
      "and weight bytes, or every error with line:column. --target ane also checks "
      "the ANE rules table: errors for what the ANE would reject, warnings for what "
      "anerd's lowering rewrites.");
  parser.AddPositional("FILE.mil", &file, "the MIL program text");
  parser.AddString("weights", &weights_dir,
                   "directory holding the @model_path/weights/ files (default: FILE's "
                   "sibling weights/ directory when it exists)");
  parser.AddString("target", &target, "\"any\" (default) or \"ane\": also check the ANE rules");
  parser.AddString("chip", &chip,
                   "with --target ane: the chip whose rules apply, e.g. \"Apple M1\" (default: "
                   "the table's default profile)");
  parser.AddString("backend", &backend,
                   "with --target ane: use the rules the daemon's backend (ane, ane-sim) has in "
                   "force, measured ones included (anectl doctor --probe)");
  parser.AddBool("json", &json, "print the report as JSON");
  ArgParser::Result r = parser.Parse(args);
  if (r == ArgParser::Result::kHelp) return kExitOk;
  if (r == ArgParser::Result::kError) return kExitUsage;
  json = json || ctx.json();
  if (target != "any" && target != "ane") {
    std::cerr << "anectl mil check: --target must be \"any\" or \"ane\", not \"" << target
              << "\"\n";
    return kExitUsage;
  }
  mil::AneRules rules = mil::AneRulesForChip(chip);
  if (!backend.empty()) {
    if (!chip.empty()) {
      std::cerr << "anectl mil check: give --chip or --backend, not both\n";
      return kExitUsage;
    }
    absl::StatusOr<mil::AneRules> in_force = DaemonRules(ctx, backend);
    if (!in_force.ok()) return ctx.Fail(in_force.status());
    rules = *std::move(in_force);
  }

  mil::ParseOptions options;
  auto text = ReadBounded(file, options.max_text_bytes);
  if (!text.ok()) return ctx.Fail(text.status());
  fs::path dir =
      weights_dir.empty() ? fs::path(file).parent_path() / "weights" : fs::path(weights_dir);
  mil::WeightFiles weights;
  if (!weights_dir.empty() || fs::is_directory(dir)) {
    auto loaded = LoadWeights(dir);
    if (!loaded.ok()) return ctx.Fail(loaded.status());
    weights = *std::move(loaded);
  }
  mil::CheckReport report =
      mil::CheckMilText(*text, weights, options, target == "ane" ? &rules : nullptr);
  if (json) {
    std::cout << mil::ReportToJson(report) << "\n";
    return report.ok ? kExitOk : kExitError;
  }
  PrintDiagnostics(file, report.diagnostics);
  if (!report.ok) return kExitError;
  std::cout << file << ": " << ctx.Green("ok") << "\n"
            << "  entry    " << report.entry_signature << "\n"
            << "  ops      " << report.op_count << "\n"
            << "  weights  " << FormatBytes(static_cast<double>(report.weight_bytes)) << " ("
            << report.weight_bytes << " bytes)\n";
  return kExitOk;
}

int Fmt(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string file;
  ArgParser parser("anectl mil fmt FILE.mil",
                   "Print a MIL program in canonical form (exact floats, canonical spacing).");
  parser.AddPositional("FILE.mil", &file, "the MIL program text");
  ArgParser::Result r = parser.Parse(args);
  if (r == ArgParser::Result::kHelp) return kExitOk;
  if (r == ArgParser::Result::kError) return kExitUsage;
  mil::ParseOptions options;
  auto text = ReadBounded(file, options.max_text_bytes);
  if (!text.ok()) return ctx.Fail(text.status());
  mil::Diagnostic error;
  auto program = mil::ParseProgram(*text, options, &error);
  if (!program.ok()) {
    PrintDiagnostics(file, {error});
    return kExitError;
  }
  std::cout << mil::PrintProgram(*program);
  return kExitOk;
}

}  // namespace

int RunMil(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = new std::vector<Command>{
      {"check", "parse and verify a MIL program offline", Check},
      {"fmt", "print a MIL program in canonical form", Fmt},
  };
  return RunSubcommand(ctx, "mil", *subcommands, args);
}

}  // namespace anerd::anectl
