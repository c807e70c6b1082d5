// `anectl data tokenize TEXT --tokenizer TOK`: tokenizes a text dataset on the daemon into a new
// token dataset artifact (the TokenizeDataset RPC). TEXT and TOK are artifact ids (or unambiguous
// prefixes) or local files, which are pushed first (bytes the daemon already has are not sent
// again); TOK may also be "byte". Progress goes to stderr as a bar when it is a terminal; the new
// artifact's id to stdout (JSON with --json).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/anectl/artifact_commands.h"
#include "client/anectl/progress.h"
#include "client/lib/artifacts.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

// An artifact id for `value`: a readable local file is pushed as `kind`, anything else is resolved
// as an id prefix. Errors name `flag`.
absl::StatusOr<std::string> ArtifactFor(client::AnerdClient& client, const std::string& value,
                                        const std::string& kind, const std::string& flag) {
  if (::access(value.c_str(), R_OK) != 0) {
    absl::StatusOr<std::string> id = client::ResolveArtifactId(client, value);
    if (!id.ok()) {
      return absl::Status(id.status().code(), absl::StrCat(flag, ": ", id.status().message()));
    }
    return id;
  }
  absl::StatusOr<client::PushResult> pushed;
  {
    ProgressBar bar(absl::StrCat("push ", value));
    pushed = client::PushFile(client, value, kind, "", bar.Callback());
  }
  if (!pushed.ok()) {
    return absl::Status(pushed.status().code(),
                        absl::StrCat(flag, " ", value, ": ", pushed.status().message()));
  }
  std::fprintf(stderr, "%s %s as artifact %s\n",
               pushed->bytes_sent > 0 ? "uploaded" : "already on the daemon:", value.c_str(),
               pushed->info.id().substr(0, 12).c_str());
  return pushed->info.id();
}

}  // namespace

int DataTokenize(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string text, tok, name;
  bool bos = false, eos = false;
  ArgParser parser(
      "anectl data tokenize TEXT_ID|FILE --tokenizer TOK_ID|FILE|byte [--bos] [--eos] "
      "[--name N] [--json]",
      "Tokenizes a UTF-8 text dataset on the daemon into a new token dataset artifact (uint16 ids, "
      "named .tokens.bin; uint32 ids, named .tokens.u32.bin, for vocabularies over 65536) and "
      "prints its id. Local files are uploaded first.");
  parser.AddPositional("TEXT", &text, "text dataset artifact id (or prefix) or a local file");
  parser.AddString("tokenizer", &tok,
                   "tokenizer artifact id (or prefix), a local tokenizer file (tokenizer.json, "
                   "tokenizer.bin, .model), or 'byte'");
  parser.AddBool("bos", &bos, "begin every document with the tokenizer's bos id");
  parser.AddBool("eos", &eos, "end every document with the tokenizer's eos id");
  parser.AddString("name", &name, "the new artifact's name (default: TEXT's name + .tokens.bin)");
  switch (parser.Parse(args)) {
    case ArgParser::Result::kHelp:
      return kExitOk;
    case ArgParser::Result::kError:
      return kExitUsage;
    case ArgParser::Result::kOk:
      break;
  }
  if (tok.empty()) {
    std::fprintf(stderr, "anectl: --tokenizer is required (an id, a file or 'byte')\n");
    return kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::TokenizeDatasetRequest request;
  absl::StatusOr<std::string> text_id = ArtifactFor(**client, text, "dataset", "TEXT");
  if (!text_id.ok()) return ctx.Fail(text_id.status());
  request.set_text_artifact(*text_id);
  if (tok == "byte") {
    request.set_tokenizer_artifact("byte");
  } else {
    absl::StatusOr<std::string> tok_id = ArtifactFor(**client, tok, "tokenizer", "--tokenizer");
    if (!tok_id.ok()) return ctx.Fail(tok_id.status());
    request.set_tokenizer_artifact(*tok_id);
  }
  request.set_add_bos(bos);
  request.set_add_eos(eos);
  request.set_name(name);
  absl::StatusOr<v1::TokenizeDatasetResult> result;
  {
    ProgressBar bar(absl::StrCat("tokenize ", text_id->substr(0, 12)));
    result = client::TokenizeDataset(**client, request, bar.Callback());
  }
  if (!result.ok()) return ctx.Fail(result.status());
  const v1::ArtifactInfo& a = result->artifact();
  if (ctx.json()) {
    nlohmann::ordered_json out = {{"schema_version", 1},
                                  {"artifact",
                                   {{"id", a.id()},
                                    {"kind", a.kind()},
                                    {"name", a.name()},
                                    {"size", a.size()},
                                    {"created_unix_ms", a.created_unix_ms()}}},
                                  {"tokens", result->tokens()},
                                  {"documents", result->documents()},
                                  {"id_bytes", result->id_bytes()},
                                  {"vocab_size", result->vocab_size()}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << a.id() << "\n";
  std::fprintf(stderr, "tokenized into %s: %lld tokens (uint%d ids, vocab %d), %lld documents\n",
               a.name().c_str(), static_cast<long long>(result->tokens()), 8 * result->id_bytes(),
               result->vocab_size(), static_cast<long long>(result->documents()));
  return kExitOk;
}

}  // namespace anerd::anectl
