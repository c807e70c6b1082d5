// anectl eval: the Evaluate RPC — loss and perplexity of a session's checkpoint (latest or best)
// or of a model (a daemon-readable file or an artifact) on token data.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "client/lib/artifacts.h"
#include "common/rpc/grpc_status.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;

// A local file becomes its absolute path (the daemon reads it under its data roots); anything
// else is an artifact id or prefix. Sets exactly one of *path and *artifact.
absl::Status FileOrArtifact(client::AnerdClient& client, const std::string& arg, std::string* path,
                            std::string* artifact) {
  std::error_code ec;
  if (std::filesystem::exists(arg, ec)) {
    *path = std::filesystem::absolute(arg, ec).lexically_normal().string();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> id = client::ResolveArtifactId(client, arg);
  if (!id.ok()) {
    return absl::Status(id.status().code(),
                        absl::StrCat("'", arg, "' is neither a local file nor an artifact: ",
                                     id.status().message()));
  }
  *artifact = *id;
  return absl::OkStatus();
}

}  // namespace

int RunEval(CommandContext& ctx, const std::vector<std::string>& args) {
  std::string session, model, data, format, backend, numerics;
  int64_t batches = 0;
  bool best = false;
  ArgParser p(
      "anectl eval (--session ID [--best] | --model FILE|ARTIFACT) [--data FILE|ARTIFACT] "
      "[--batches N] [--json]",
      "Loss and perplexity of a model on token data, computed by the daemon with the training "
      "engine's forward pass over the first N sequences of the data (for a session without "
      "--data: its held-out data, as its eval events).");
  p.AddString("session", &session, "a session (id, unique prefix or name): its latest checkpoint");
  p.AddBool("best", &best, "with --session: its best-validation checkpoint");
  p.AddString("model", &model, "a model file the daemon can read, or a model artifact id");
  p.AddString("data", &data, "a token (.bin) or text file the daemon can read, or a dataset id");
  p.AddString("format", &format, "tokens | text (default: by the data's name)");
  p.AddInt("batches", &batches, "sequences to evaluate (default 8)");
  p.AddString("backend", &backend, "backend (default: the session's, else the daemon's)");
  p.AddString("numerics", &numerics, "fp32 | ane (default: the session's, else fp32)");
  ArgParser::Result parsed = p.Parse(args);
  if (parsed != ArgParser::Result::kOk) {
    return parsed == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  if (session.empty() == model.empty()) {
    std::fprintf(stderr, "anectl: give one of --session and --model\n");
    return kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  v1::EvaluateRequest r;
  if (!session.empty()) {
    absl::StatusOr<std::string> id = ResolveSessionId(ctx, session);
    if (!id.ok()) return ctx.Fail(id.status());
    r.set_session_id(*id);
    r.set_checkpoint(best ? "best" : "latest");
  } else if (absl::Status s =
                 FileOrArtifact(**client, model, r.mutable_model(), r.mutable_model_artifact());
             !s.ok()) {
    return ctx.Fail(s);
  }
  if (!data.empty()) {
    if (absl::Status s =
            FileOrArtifact(**client, data, r.mutable_data(), r.mutable_data_artifact());
        !s.ok()) {
      return ctx.Fail(s);
    }
  }
  r.set_data_format(format);
  r.set_batches(static_cast<int32_t>(std::clamp<int64_t>(batches, -1, INT32_MAX)));
  r.set_backend(backend);
  r.set_numerics(numerics);
  v1::EvaluateResponse out;
  auto context = (*client)->NewContext(absl::Minutes(30));
  grpc::Status st = (*client)->stub()->Evaluate(context.get(), r, &out);
  if (!st.ok()) {
    return ctx.Fail(client::DescribeCallError(FromGrpcStatus(st), (*client)->options()));
  }
  if (ctx.json()) {
    std::cout << Json{{"schema_version", 1},
                      {"loss", out.loss()},
                      {"perplexity", out.perplexity()},
                      {"sequences", out.sequences()},
                      {"tokens", out.tokens()},
                      {"seq", out.seq()},
                      {"source", out.source()},
                      {"step", out.step()},
                      {"checkpoint", out.checkpoint()},
                      {"backend", out.backend()},
                      {"eval_ms", out.eval_ms()}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("loss %.4f  perplexity %.3f  (%d sequences of %d tokens from %s",
                               out.loss(), out.perplexity(), out.sequences(), out.seq(),
                               out.source())
            << (out.step() > 0 ? absl::StrFormat(", step %d", out.step()) : "")
            << absl::StrFormat(", %.0f ms on %s)\n", out.eval_ms(), out.backend());
  return kExitOk;
}

}  // namespace anerd::anectl
