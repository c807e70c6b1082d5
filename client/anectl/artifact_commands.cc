// `anectl data|model push/ls/show/rm/pull`: artifacts on the daemon (issue 19). Both groups run
// the same verbs; the group fixes the kind that push stores and ls lists (`data push --kind
// tokenizer` stores a tokenizer). Ids may be given by any unambiguous prefix.
#include "client/anectl/artifact_commands.h"

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/anectl/progress.h"
#include "client/lib/artifacts.h"
#include "common/rpc/grpc_status.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;

Json ArtifactJson(const v1::ArtifactInfo& a) {
  Json j = {{"id", a.id()},
            {"kind", a.kind()},
            {"name", a.name()},
            {"size", a.size()},
            {"created_unix_ms", a.created_unix_ms()}};
  if (a.owners_size() > 0)
    j["owners"] = std::vector<std::string>(a.owners().begin(), a.owners().end());
  return j;
}

std::string Created(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixMillis(unix_ms), absl::LocalTimeZone());
}

int Push(CommandContext& ctx, const std::string& group, const std::string& default_kind,
         const std::vector<std::string>& args) {
  std::string file, name, kind = default_kind;
  ArgParser parser(absl::StrCat("anectl ", group, " push FILE [--name N] [--kind ", default_kind,
                                "|dataset|model|tokenizer]"),
                   "Uploads FILE to the daemon as an artifact (its id is the SHA-256 of the "
                   "bytes; bytes the daemon already has for you are not sent again).");
  parser.AddPositional("FILE", &file, "the file to upload");
  parser.AddString("name", &name,
                   "a label (default: the file's base name; for datasets a .bin "
                   "name means uint16 tokens, anything else UTF-8 text)");
  parser.AddString("kind", &kind, "dataset, model or tokenizer");
  if (int code = ParseOrExit(parser, args); code >= 0) return code;
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  absl::StatusOr<client::PushResult> pushed;
  {
    ProgressBar bar(absl::StrCat("push ", file));
    pushed = client::PushFile(**client, file, kind, name, bar.Callback());
  }
  if (!pushed.ok()) return ctx.Fail(pushed.status());
  if (ctx.json()) {
    Json out = {{"schema_version", 1},
                {"artifact", ArtifactJson(pushed->info)},
                {"bytes_sent", pushed->bytes_sent},
                {"deduplicated", pushed->info.deduplicated()}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << pushed->info.id() << "\n";
  std::fprintf(stderr, "%s %s (%s, %s)%s\n", pushed->bytes_sent > 0 ? "uploaded" : "stored",
               pushed->info.name().c_str(), pushed->info.kind().c_str(),
               FormatBytes(static_cast<double>(pushed->info.size())).c_str(),
               pushed->info.deduplicated() ? ", already on the daemon: no new bytes stored" : "");
  return kExitOk;
}

int List(CommandContext& ctx, const std::string& group, const std::string& kind,
         const std::vector<std::string>& args) {
  ArgParser parser(absl::StrCat("anectl ", group, " ls [--json]"),
                   absl::StrCat("Lists your ", kind, " artifacts on the daemon, newest first."));
  if (int code = ParseOrExit(parser, args); code >= 0) return code;
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::ListArtifactsRequest request;
  request.set_kind(kind);
  v1::ListArtifactsResponse list;
  auto context = (*client)->NewContext();
  absl::Status status =
      FromGrpcStatus((*client)->stub()->ListArtifacts(context.get(), request, &list));
  if (!status.ok()) return ctx.Fail(client::DescribeCallError(status, (*client)->options()));
  if (ctx.json()) {
    Json items = Json::array();
    for (const v1::ArtifactInfo& a : list.artifacts()) items.push_back(ArtifactJson(a));
    std::cout << Json{{"schema_version", 1}, {"artifacts", items}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-12s  %-9s  %10s  %-16s  %s\n", "ID", "KIND", "SIZE", "CREATED",
                               "NAME");
  for (const v1::ArtifactInfo& a : list.artifacts()) {
    std::cout << absl::StrFormat("%-12s  %-9s  %10s  %-16s  %s\n", a.id().substr(0, 12), a.kind(),
                                 FormatBytes(static_cast<double>(a.size())),
                                 Created(a.created_unix_ms()), a.name());
  }
  return kExitOk;
}

// The artifact a show/rm/pull names: the client to ask, and the full id its ID (any unambiguous
// prefix) resolved to.
struct ArtifactRef {
  client::AnerdClient* client = nullptr;
  std::string id;
};

absl::StatusOr<ArtifactRef> Resolve(CommandContext& ctx, const std::string& prefix) {
  absl::StatusOr<client::AnerdClient*> c = ctx.Client();
  if (!c.ok()) return c.status();
  absl::StatusOr<std::string> id = client::ResolveArtifactId(**c, prefix);
  if (!id.ok()) return id.status();
  return ArtifactRef{*c, *std::move(id)};
}

// Calls the unary artifact RPC `rpc` (e.g. &v1::Anerd::Stub::GetArtifact) with a request naming
// `ref.id`; a failure comes back described for the user (client::DescribeCallError).
template <typename Request, typename Response>
absl::Status CallOn(const ArtifactRef& ref,
                    grpc::Status (v1::Anerd::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                         Response*),
                    Response* response) {
  Request request;
  request.set_id(ref.id);
  auto context = ref.client->NewContext();
  absl::Status status =
      FromGrpcStatus((ref.client->stub()->*rpc)(context.get(), request, response));
  return status.ok() ? status : client::DescribeCallError(status, ref.client->options());
}

int Show(CommandContext& ctx, const std::string& group, const std::vector<std::string>& args) {
  std::string id;
  ArgParser parser(absl::StrCat("anectl ", group, " show ID [--json]"),
                   "Shows one artifact (ID or an unambiguous prefix).");
  parser.AddPositional("ID", &id, "artifact id or prefix");
  if (int code = ParseOrExit(parser, args); code >= 0) return code;
  absl::StatusOr<ArtifactRef> ref = Resolve(ctx, id);
  if (!ref.ok()) return ctx.Fail(ref.status());
  v1::ArtifactInfo a;
  if (absl::Status s = CallOn(*ref, &v1::Anerd::Stub::GetArtifact, &a); !s.ok()) return ctx.Fail(s);
  if (ctx.json()) {
    std::cout << Json{{"schema_version", 1}, {"artifact", ArtifactJson(a)}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << ctx.Bold(a.id()) << "\n"
            << absl::StrFormat("  %-8s %s\n  %-8s %s\n  %-8s %s (%d bytes)\n  %-8s %s\n", "name",
                               a.name(), "kind", a.kind(), "size",
                               FormatBytes(static_cast<double>(a.size())), a.size(), "created",
                               Created(a.created_unix_ms()));
  for (const std::string& o : a.owners()) std::cout << absl::StrFormat("  %-8s %s\n", "owner", o);
  return kExitOk;
}

int Remove(CommandContext& ctx, const std::string& group, const std::vector<std::string>& args) {
  std::string id;
  ArgParser parser(absl::StrCat("anectl ", group, " rm ID"),
                   "Deletes your artifact (the bytes go when no other client owns them).");
  parser.AddPositional("ID", &id, "artifact id or prefix");
  if (int code = ParseOrExit(parser, args); code >= 0) return code;
  absl::StatusOr<ArtifactRef> ref = Resolve(ctx, id);
  if (!ref.ok()) return ctx.Fail(ref.status());
  v1::DeleteArtifactResponse response;
  absl::Status status = CallOn(*ref, &v1::Anerd::Stub::DeleteArtifact, &response);
  if (!status.ok()) return ctx.Fail(status);
  if (!ctx.json()) std::fprintf(stderr, "deleted %s\n", ref->id.c_str());
  return kExitOk;
}

int Pull(CommandContext& ctx, const std::string& group, const std::vector<std::string>& args) {
  std::string id, out;
  ArgParser parser(absl::StrCat("anectl ", group, " pull ID -o FILE"),
                   "Downloads an artifact into FILE (checked against its id).");
  parser.AddPositional("ID", &id, "artifact id or prefix");
  parser.AddString("o", &out, "output file");
  parser.AddString("out", &out, "output file (same as -o)");
  if (int code = ParseOrExit(parser, args); code >= 0) return code;
  if (out.empty()) {
    std::fprintf(stderr, "anectl: -o FILE is required\n");
    return kExitUsage;
  }
  absl::StatusOr<ArtifactRef> ref = Resolve(ctx, id);
  if (!ref.ok()) return ctx.Fail(ref.status());
  absl::StatusOr<uint64_t> written;
  {
    ProgressBar bar(absl::StrCat("pull ", ref->id.substr(0, 12)));
    written = client::PullToFile(*ref->client, ref->id, out, bar.Callback());
  }
  if (!written.ok()) return ctx.Fail(written.status());
  if (!ctx.json()) {
    std::fprintf(stderr, "wrote %s to %s\n", FormatBytes(static_cast<double>(*written)).c_str(),
                 out.c_str());
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> ArtifactSubcommands(const std::string& group, const std::string& kind) {
  return {
      {"push", absl::StrCat("upload a file as a ", kind, " artifact"),
       [group, kind](CommandContext& ctx, const std::vector<std::string>& args) {
         return Push(ctx, group, kind, args);
       }},
      {"ls", absl::StrCat("list your ", kind, " artifacts"),
       [group, kind](CommandContext& ctx, const std::vector<std::string>& args) {
         return List(ctx, group, kind, args);
       }},
      {"show", "show one artifact",
       [group](CommandContext& ctx, const std::vector<std::string>& args) {
         return Show(ctx, group, args);
       }},
      {"rm", "delete an artifact",
       [group](CommandContext& ctx, const std::vector<std::string>& args) {
         return Remove(ctx, group, args);
       }},
      {"pull", "download an artifact into a file",
       [group](CommandContext& ctx, const std::vector<std::string>& args) {
         return Pull(ctx, group, args);
       }},
  };
}

int RunModel(CommandContext& ctx, const std::vector<std::string>& args) {
  static const auto* subcommands = new std::vector<Command>(ArtifactSubcommands("model", "model"));
  return RunSubcommand(ctx, "model", *subcommands, args);
}

}  // namespace anerd::anectl
