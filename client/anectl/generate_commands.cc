// anectl generate: text from a session's weights or a model (issue 20 item 3). Tokens are printed
// as the daemon streams them; a closing line on stderr gives the prefill and decode speeds. With
// --json, one JSON object per token and one for the summary.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/anectl/cli.h"
#include "client/anectl/commands.h"
#include "client/lib/artifacts.h"
#include "common/rpc/grpc_status.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {
namespace {

using Json = nlohmann::ordered_json;

struct GenerateFlags {
  std::string session, weights, model, tokenizer, prompt, tokens, stop, backend;
  double temperature = 1.0, top_p = 0.9, repetition_penalty = 1.0;
  int64_t top_k = 0, seed = 0, max_tokens = 128, max_context = 0;
  bool truncate = false;
};

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& flag, const std::string& list) {
  std::vector<int32_t> ids;
  if (list.empty()) return ids;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", part, "' is not a token id (want 1,2,3)"));
    }
    ids.push_back(id);
  }
  return ids;
}

bool IsLocalPath(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

std::string Absolute(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : path;
}

// --model / --tokenizer: a local file (named to the daemon by path) or an artifact id (prefix).
absl::Status SetSource(client::AnerdClient& client, const std::string& flag,
                       const std::string& value, std::string* path, std::string* artifact) {
  if (value.empty()) return absl::OkStatus();
  if (IsLocalPath(value)) {
    *path = Absolute(value);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> id = client::ResolveArtifactId(client, value);
  if (!id.ok()) {
    return absl::Status(
        id.status().code(),
        absl::StrCat("--", flag, " ", value, ": not a readable file, and ", id.status().message()));
  }
  *artifact = *id;
  return absl::OkStatus();
}

absl::StatusOr<v1::GenerateRequest> BuildRequest(CommandContext& ctx, client::AnerdClient& client,
                                                 const GenerateFlags& f) {
  v1::GenerateRequest r;
  if (f.session.empty() == f.model.empty()) {
    return absl::InvalidArgumentError("give one of --session ID and --model FILE|ARTIFACT");
  }
  if (!f.session.empty()) {
    absl::StatusOr<std::string> id = ResolveSessionId(ctx, f.session);
    if (!id.ok()) return id.status();
    r.set_session_id(*id);
    r.set_weights(f.weights);
  }
  if (absl::Status s =
          SetSource(client, "model", f.model, r.mutable_model_path(), r.mutable_model_artifact());
      !s.ok()) {
    return s;
  }
  if (f.tokenizer == "byte") {
    r.set_tokenizer_kind("byte");
  } else if (absl::Status s = SetSource(client, "tokenizer", f.tokenizer,
                                        r.mutable_tokenizer_path(), r.mutable_tokenizer_artifact());
             !s.ok()) {
    return s;
  }
  r.set_prompt(f.prompt);
  absl::StatusOr<std::vector<int32_t>> tokens = ParseIds("tokens", f.tokens);
  if (!tokens.ok()) return tokens.status();
  r.mutable_prompt_tokens()->Add(tokens->begin(), tokens->end());
  absl::StatusOr<std::vector<int32_t>> stop = ParseIds("stop", f.stop);
  if (!stop.ok()) return stop.status();
  r.mutable_stop_tokens()->Add(stop->begin(), stop->end());
  r.set_truncate_prompt(f.truncate);
  r.set_temperature(static_cast<float>(f.temperature));
  r.set_top_p(static_cast<float>(f.top_p));
  r.set_top_k(static_cast<int32_t>(f.top_k));
  r.set_repetition_penalty(static_cast<float>(f.repetition_penalty));
  if (f.seed != 0) r.set_seed(static_cast<uint64_t>(f.seed));
  r.set_max_tokens(static_cast<int32_t>(f.max_tokens));
  r.set_max_context(f.max_context);
  r.set_backend(f.backend);
  return r;
}

Json TokenJson(const v1::GeneratedToken& t) {
  return Json{{"type", "token"},  {"index", t.index()},     {"id", t.id()},
              {"text", t.text()}, {"logprob", t.logprob()}, {"ms", t.ms()}};
}

Json SummaryJson(const v1::GenerateSummary& s) {
  return Json{{"type", "summary"},
              {"prompt_tokens", s.prompt_tokens()},
              {"generated_tokens", s.generated_tokens()},
              {"stop_reason", s.stop_reason()},
              {"load_ms", s.load_ms()},
              {"prefill_ms", s.prefill_ms()},
              {"decode_ms", s.decode_ms()},
              {"prefill_tokens_per_s", s.prefill_tokens_per_s()},
              {"decode_tokens_per_s", s.decode_tokens_per_s()},
              {"backend", s.backend()},
              {"seed", s.seed()},
              {"dropped_prompt_tokens", s.dropped_prompt_tokens()},
              {"text", s.text()}};
}

void Print(const v1::GenerateEvent& e, bool json) {
  if (json) {
    const Json j = e.has_token() ? TokenJson(e.token()) : SummaryJson(e.summary());
    std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
  } else if (e.has_token()) {
    std::fputs(e.token().text().c_str(), stdout);
  } else {
    const v1::GenerateSummary& s = e.summary();
    std::printf("%s\n", s.text_tail().c_str());
    std::fflush(stdout);  // the text ends before the closing line on stderr
    std::fprintf(stderr,
                 "[%d prompt tokens at %.1f tok/s, %d generated at %.1f tok/s (%s; %s); "
                 "seed %llu]\n",
                 s.prompt_tokens(), s.prefill_tokens_per_s(), s.generated_tokens(),
                 s.decode_tokens_per_s(), s.backend().c_str(), s.stop_reason().c_str(),
                 static_cast<unsigned long long>(s.seed()));
  }
  std::fflush(stdout);
}

}  // namespace

int RunGenerate(CommandContext& ctx, const std::vector<std::string>& args) {
  GenerateFlags f;
  ArgParser p(
      "anectl generate (--session ID | --model FILE|ARTIFACT) [--prompt TEXT | --tokens 1,2,3]",
      "Generates text on the daemon and prints it as it is produced; a closing line on stderr "
      "gives tokens/s. With --json: one JSON object per token, then a summary object.");
  p.AddString("session", &f.session, "a training session (id, prefix or name)");
  p.AddString("weights", &f.weights,
              "with --session: latest (its last checkpoint, default) | best (its best-validation "
              "checkpoint, with --eval-every) | live (the running trainer's weights)");
  p.AddString("model", &f.model,
              "a model file or directory the daemon can read (llama2.c .bin, anerd checkpoint, "
              "Hugging Face dir) or a model artifact id");
  p.AddString("tokenizer", &f.tokenizer,
              "byte | a tokenizer file (tokenizer.bin, tokenizer.json) | a tokenizer artifact id "
              "(default: the session's; byte for a session trained on text)");
  p.AddString("prompt", &f.prompt, "prompt text (the tokenizer's bos is prepended)");
  p.AddString("tokens", &f.tokens, "prompt as token ids, comma-separated");
  p.AddDouble("temperature", &f.temperature, "0 = greedy (default 1.0)");
  p.AddDouble("top-p", &f.top_p, "nucleus sampling in (0, 1]; 1 = off (default 0.9)");
  p.AddInt("top-k", &f.top_k, "keep the k most likely tokens; 0 = off (default 0)");
  p.AddDouble("repetition-penalty", &f.repetition_penalty, "> 0; 1 = off (default 1.0)");
  p.AddInt("seed", &f.seed, "sampler seed; same seed, same tokens (default: from the clock)");
  p.AddInt("max-tokens", &f.max_tokens, "tokens to generate at most (default 128)");
  p.AddString("stop", &f.stop,
              "token ids that end the generation, comma-separated "
              "(the model's eos always does)");
  p.AddInt("max-context", &f.max_context, "context positions (default: the model's seq)");
  p.AddBool("truncate-prompt", &f.truncate,
            "drop the prompt's first tokens when it does not fit (default: an error)");
  p.AddString("backend", &f.backend, "cpu (default cpu)");
  ArgParser::Result parsed = p.Parse(args);
  if (parsed != ArgParser::Result::kOk) {
    return parsed == ArgParser::Result::kHelp ? kExitOk : kExitUsage;
  }
  absl::StatusOr<client::AnerdClient*> client = ctx.Client();
  if (!client.ok()) return ctx.Fail(client.status());
  absl::StatusOr<v1::GenerateRequest> request = BuildRequest(ctx, **client, f);
  if (!request.ok()) return ctx.Fail(request.status());
  auto context = (*client)->NewContext(absl::InfiniteDuration());
  auto reader = (*client)->stub()->Generate(context.get(), *request);
  v1::GenerateEvent event;
  while (reader->Read(&event)) Print(event, ctx.json());
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    return ctx.Fail(client::DescribeCallError(FromGrpcStatus(s), (*client)->options()));
  }
  return kExitOk;
}

}  // namespace anerd::anectl
