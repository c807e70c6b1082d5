// GenerationManager: limits, model and tokenizer loading, and one thread per generation
// (generation_manager.h).
#include "server/engine/generation_manager.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <new>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "server/engine/executor_decoder.h"
#include "server/generation/decoder.h"
#include "server/generation/make_decoder.h"
#include "server/training/model_io.h"
#include "spdlog/spdlog.h"

namespace anerd::engine {

struct GenerationManager::Loaded {
  training::ModelConfig config;
  std::shared_ptr<const std::vector<float>> params;
  bool trained_on_text = false;  // a session whose data was text: the byte tokenizer
};

namespace {

// A session trained on text used byte ids (training/data.h).
bool TrainedOnText(const training::TrainSpec& spec) {
  return spec.data_format == "text" ||
         (spec.data_format.empty() && !absl::EndsWith(spec.data_path, ".bin"));
}

training::ModelConfig ConfigOf(const training::TrainSpec& spec) {
  training::ModelConfig config = spec.model;
  config.residual_scale = training::ResidualAlpha(spec);  // "deepnet" is part of the function
  return config;
}

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizerFor(const GenerateCall& call,
                                                                       const std::string& file,
                                                                       bool trained_on_text) {
  absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok;
  if (!file.empty()) {
    tok = tokenizer::LoadTokenizerFile(call.tokenizer_kind, file);
  } else if (call.tokenizer_kind == "byte" || (call.tokenizer_kind.empty() && trained_on_text)) {
    tok = tokenizer::LoadTokenizer("byte", "", "byte");
  } else if (!call.tokenizer_kind.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer_kind: ", call.tokenizer_kind,
                                                   " needs a file (tokenizer_artifact or "
                                                   "tokenizer_path)"));
  } else {
    return nullptr;  // unknown: token ids only
  }
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat("tokenizer: ", tok.status().message()));
  }
  return tok;
}

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

absl::Status CheckGenerationLimits(const GenerationLimits& limits) {
  if (limits.max_concurrent < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-generations: must be >= 1, got ", limits.max_concurrent));
  }
  if (limits.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-generate-tokens: must be >= 1, got ", limits.max_tokens));
  }
  if (limits.max_context < 1 || limits.max_context > generation::kMaxDecoderContext) {
    return absl::InvalidArgumentError(absl::StrCat("--max-generate-context: must be in [1, ",
                                                   generation::kMaxDecoderContext, "], got ",
                                                   limits.max_context));
  }
  return absl::OkStatus();
}

std::vector<std::string> GenerationBackends(const backend::BackendRegistry* registry) {
  std::vector<std::string> names = {"cpu"};
  if (registry == nullptr) return names;
  for (const std::string& name : registry->names()) {
    if (name != "cpu") names.push_back(name);
  }
  return names;
}

absl::StatusOr<std::unique_ptr<generation::TokenDecoder>> MakeTokenDecoder(
    const std::string& backend, const backend::BackendRegistry* registry,
    const sessions::SubmitTask& submit, const training::ModelConfig& config,
    std::shared_ptr<const std::vector<float>> params, int64_t max_context,
    int64_t max_cache_bytes) {
  generation::MakeDecoderOptions options;
  options.decoder.max_context = max_context;
  options.decoder.max_cache_bytes = max_cache_bytes;
  if (backend.empty() || backend == "cpu") {
    return generation::MakeDecoder("cpu", nullptr, config, std::move(params), options);
  }
  backend::Backend* device =
      registry != nullptr && backend != "cpu" ? registry->Find(backend) : nullptr;
  if (device == nullptr || submit == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend: generation does not run on '", backend, "'; it runs on ",
                     absl::StrJoin(GenerationBackends(registry), ", ")));
  }
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<ExecutorDecoder> decoder,
      ExecutorDecoder::Create(submit, backend, [&, params = std::move(params)]() mutable {
        return generation::MakeDecoder(backend, device, config, std::move(params), options);
      }));
  return std::unique_ptr<generation::TokenDecoder>(std::move(decoder));
}

void Generation::Cancel() {
  cancelled_ = true;
  Release();
}

void Generation::Release() {
  if (!released_.exchange(true)) release_();
}

GenerationManager::GenerationManager(sessions::SessionManager* sessions, ClientPathRoots roots,
                                     GenerationLimits limits,
                                     const backend::BackendRegistry* registry,
                                     sessions::SubmitTask submit)
    : sessions_(sessions),
      registry_(registry),
      submit_(std::move(submit)),
      roots_(std::move(roots)),
      limits_(limits) {}

GenerationManager::~GenerationManager() { Shutdown(); }

int GenerationManager::active() const {
  absl::MutexLock lock(&mu_);
  return active_;
}

absl::Status GenerationManager::Check(const GenerateCall& call) const {
  const int sources =
      !call.session_id.empty() + !call.model_file.empty() + !call.model_blob.empty();
  if (sources != 1) {
    return absl::InvalidArgumentError(
        "session_id: name exactly one model source (session_id, model_artifact or model_path)");
  }
  if (!call.weights.empty() && call.weights != "latest" && call.weights != "live" &&
      call.weights != "best") {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: must be latest, best or live, got '", call.weights, "'"));
  }
  if (!call.weights.empty() && call.session_id.empty()) {
    return absl::InvalidArgumentError("weights: applies to a session_id only");
  }
  bool known = call.backend.empty();
  for (const std::string& b : GenerationBackends(registry_)) known |= b == call.backend;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend: generation does not run on '", call.backend, "'; it runs on ",
                     absl::StrJoin(GenerationBackends(registry_), ", ")));
  }
  if (call.spec.max_tokens < 1 || call.spec.max_tokens > limits_.max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be in [1, ", limits_.max_tokens,
                     "] (anerd --max-generate-tokens), got ", call.spec.max_tokens));
  }
  if (call.max_context < 0 || call.max_context > limits_.max_context) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_context: must be in [0, ", limits_.max_context,
                     "] (anerd --max-generate-context), got ", call.max_context));
  }
  return generation::ValidateSamplingParams(call.spec.sampling);
}

absl::StatusOr<std::shared_ptr<Generation>> GenerationManager::Start(GenerateCall call,
                                                                     TokenSink sink,
                                                                     GenerateDone done) {
  ANERD_RETURN_IF_ERROR(Check(call));
  std::shared_ptr<Generation> generation;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the daemon is shutting down");
    if (active_ >= limits_.max_concurrent) {
      return absl::ResourceExhaustedError(absl::StrCat("generations: ", active_,
                                                       " already running, the most at once (anerd "
                                                       "--max-generations ",
                                                       limits_.max_concurrent, ")"));
    }
    ++active_;
    ++threads_;
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [](const std::weak_ptr<Generation>& w) { return w.expired(); }),
                   running_.end());
    generation.reset(new Generation([this] {
      absl::MutexLock l(&mu_);
      --active_;
    }));
    running_.push_back(generation);
  }
  std::thread([this, call = std::move(call), generation, sink = std::move(sink),
               done = std::move(done)] {
    Run(call, generation.get(), sink, done);
    generation->Release();
    absl::MutexLock lock(&mu_);
    --threads_;
  }).detach();
  return generation;
}

void GenerationManager::Run(const GenerateCall& call, Generation* generation, const TokenSink& sink,
                            const GenerateDone& done) {
  absl::StatusOr<GenerateResult> result;
  try {
    result = Generate(call, generation, sink);
  } catch (const std::bad_alloc&) {
    result = absl::ResourceExhaustedError("generation: out of memory");
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("generation failed: ", e.what()));
  }
  // The slot is free before the client hears the outcome, so its next call finds it free.
  generation->Release();
  done(std::move(result));
}

absl::StatusOr<GenerateResult> GenerationManager::Generate(const GenerateCall& call,
                                                           Generation* generation,
                                                           const TokenSink& sink) {
  const auto t0 = std::chrono::steady_clock::now();
  ANERD_ASSIGN_OR_RETURN(Loaded model, LoadModel(call, generation));
  std::string tokenizer_file = call.tokenizer_blob;
  if (!call.tokenizer_file.empty()) {
    ANERD_ASSIGN_OR_RETURN(tokenizer_file,
                           ResolveUnderRoots("tokenizer_path", call.tokenizer_file, roots_));
  }
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                         LoadTokenizerFor(call, tokenizer_file, model.trained_on_text));
  int64_t context = call.max_context > 0 ? call.max_context : model.config.seq;
  context = std::min(context, limits_.max_context);
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<generation::TokenDecoder> decoder,
      MakeTokenDecoder(call.backend, registry_, submit_, model.config, std::move(model.params),
                       context, limits_.max_cache_bytes));
  ANERD_ASSIGN_OR_RETURN(
      std::unique_ptr<generation::GenerationJob> job,
      generation::GenerationJob::Create(std::move(decoder), tok.get(), call.spec));
  GenerateResult result;
  result.load_ms = MsSince(t0);
  result.backend = call.backend.empty() ? "cpu" : call.backend;
  if (generation->cancelled()) return absl::CancelledError("generation cancelled");
  ANERD_ASSIGN_OR_RETURN(result.summary, job->Run([&](const generation::TokenEvent& event) {
    return !generation->cancelled() && sink(event);
  }));
  return result;
}

absl::StatusOr<GenerationManager::Loaded> GenerationManager::LoadModel(const GenerateCall& call,
                                                                       Generation* generation) {
  Loaded model;
  if (call.session_id.empty()) {
    std::string path = call.model_blob;
    if (!call.model_file.empty()) {
      ANERD_ASSIGN_OR_RETURN(path, ResolveUnderRoots("model_path", call.model_file, roots_));
    }
    absl::StatusOr<training::LoadedModel> loaded = training::LoadModelFile(path);
    if (!loaded.ok()) {
      const char* field = call.model_file.empty() ? "model_artifact" : "model_path";
      return absl::Status(loaded.status().code(),
                          absl::StrCat(field, ": ", loaded.status().message()));
    }
    model.config = loaded->config;
    model.params = std::make_shared<const std::vector<float>>(std::move(loaded->params));
    return model;
  }
  if (call.weights == "live") return CopyLive(call.session_id, generation);
  ANERD_ASSIGN_OR_RETURN(sessions::SessionSnapshot session, sessions_->Get(call.session_id));
  if (call.weights == "best" && session.best_checkpoint_path.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "weights: session ", call.session_id,
        " has no best-validation checkpoint (it is written by evaluations: start the run with "
        "--eval-every N)"));
  }
  if (session.checkpoint_path.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session_id: session ", call.session_id, " has no checkpoint yet (",
        sessions::SessionStateName(session.state), "); wait for one, or ask for weights=live"));
  }
  ANERD_ASSIGN_OR_RETURN(training::Checkpoint ckpt,
                         training::ReadCheckpoint(call.weights == "best"
                                                      ? session.best_checkpoint_path
                                                      : session.checkpoint_path));
  model.config = ConfigOf(ckpt.spec);
  model.params = std::make_shared<const std::vector<float>>(std::move(ckpt.params));
  model.trained_on_text = TrainedOnText(ckpt.spec);
  return model;
}

absl::StatusOr<GenerationManager::Loaded> GenerationManager::CopyLive(const std::string& session_id,
                                                                      Generation* generation) {
  struct Reply {
    absl::Mutex mu;
    bool ready ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<sessions::SessionWeights> weights ABSL_GUARDED_BY(mu);
  };
  auto reply = std::make_shared<Reply>();
  sessions_->CopyLiveWeights(session_id, [reply](absl::StatusOr<sessions::SessionWeights> w) {
    absl::MutexLock lock(&reply->mu);
    reply->weights = std::move(w);
    reply->ready = true;
  });
  absl::MutexLock lock(&reply->mu);
  while (!reply->ready) {
    if (generation->cancelled()) return absl::CancelledError("generation cancelled");
    reply->mu.AwaitWithTimeout(absl::Condition(&reply->ready), absl::Milliseconds(100));
  }
  ANERD_RETURN_IF_ERROR(reply->weights.status());
  Loaded model;
  model.config = ConfigOf(reply->weights->spec);
  model.params = reply->weights->params;
  model.trained_on_text = TrainedOnText(reply->weights->spec);
  return model;
}

void GenerationManager::Shutdown() {
  std::vector<std::shared_ptr<Generation>> running;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (const std::weak_ptr<Generation>& w : running_) {
      if (std::shared_ptr<Generation> g = w.lock()) running.push_back(std::move(g));
    }
    running_.clear();
  }
  for (const std::shared_ptr<Generation>& g : running) g->Cancel();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* threads) { return *threads == 0; }, &threads_));
}

}  // namespace anerd::engine
