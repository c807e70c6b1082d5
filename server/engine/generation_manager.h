// GenerationManager: the daemon's text generations (issue 20 item 1), below the service and above
// server/generation/. It resolves the model (a session's latest checkpoint or live weights, or a
// model file), the tokenizer and the decoder backend (MakeTokenDecoder, the one factory), bounds
// every generation by the daemon's limits, and runs each on its own thread.
//
// Threads: Start returns at once; loading (file I/O), the prefill and the token loop run on a
// thread of the generation's own, never on a gRPC thread nor on a device executor (the CPU
// decoder computes with BLAS on that thread). Live weights are copied by one task queued on the
// session's executor between two of its steps. `sink` and `done` run on the generation's thread;
// `sink` may block (the stream's flow control) and returns false to stop.
// Slots: at most limits.max_concurrent generations hold a slot; Start refuses with
// RESOURCE_EXHAUSTED beyond. Cancel frees the slot at once (the thread stops at its next token and
// ends on its own); a generation's end frees it before `done` runs.
// Thread-safety: all public methods may be called from any thread. Shutdown (or the destructor)
// cancels every generation and waits for their threads.
#ifndef ANERD_SERVER_ENGINE_GENERATION_MANAGER_H_
#define ANERD_SERVER_ENGINE_GENERATION_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/paths.h"
#include "server/generation/generation_job.h"
#include "server/generation/token_decoder.h"
#include "server/sessions/session_manager.h"

namespace anerd::engine {

struct GenerationLimits {
  int max_concurrent = 2;      // --max-generations
  int max_tokens = 4096;       // --max-generate-tokens: per generation
  int64_t max_context = 8192;  // --max-generate-context: positions of one decoder's cache
  int64_t max_cache_bytes = int64_t{1} << 30;  // one decoder's KV cache
};

// OK, or INVALID_ARGUMENT naming the flag (--max-generations ...) of a limit below 1 (or a
// context above generation::kMaxDecoderContext).
absl::Status CheckGenerationLimits(const GenerationLimits& limits);

// The backends generation runs on: "cpu" (the fp32 Decoder on the generation's own thread) and
// every other backend of `registry` (a ProgramDecoder whose calls run on that backend's executor,
// ExecutorDecoder). `registry` may be null (cpu only).
std::vector<std::string> GenerationBackends(const backend::BackendRegistry* registry);
// The decoder of `backend` ("" = cpu) over `params`. INVALID_ARGUMENT "backend: ..." for a name
// not in GenerationBackends(registry); the decoder's own errors (decoder.h, program_decoder.h)
// otherwise. `submit` queues device work for the program decoders.
absl::StatusOr<std::unique_ptr<generation::TokenDecoder>> MakeTokenDecoder(
    const std::string& backend, const backend::BackendRegistry* registry,
    const sessions::SubmitTask& submit, const training::ModelConfig& config,
    std::shared_ptr<const std::vector<float>> params, int64_t max_context, int64_t max_cache_bytes);

struct GenerateCall {
  // The model: exactly one of session_id, model_file (a client's path, checked against the data
  // roots) and model_blob (an artifact's stored file, already authorised).
  std::string session_id;
  std::string weights;  // for session_id: "" or "latest" | "live"
  std::string model_file;
  std::string model_blob;
  // The tokenizer: tokenizer_file (checked) or tokenizer_blob, of tokenizer_kind ("" = detect);
  // kind "byte" needs no file; none = the session's (byte when it trained on text), else none.
  std::string tokenizer_kind;
  std::string tokenizer_file;
  std::string tokenizer_blob;
  generation::GenerationSpec spec;
  std::string backend;      // "" = cpu
  int64_t max_context = 0;  // 0 = the model's seq (at most limits.max_context)
};

struct GenerateResult {
  generation::GenerationSummary summary;
  double load_ms = 0;
  std::string backend;
};

using TokenSink = std::function<bool(const generation::TokenEvent&)>;
using GenerateDone = std::function<void(absl::StatusOr<GenerateResult>)>;

// One running generation.
class Generation {
 public:
  // Stops it at the next token and frees its slot now. Idempotent.
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class GenerationManager;
  explicit Generation(std::function<void()> release) : release_(std::move(release)) {}
  void Release();
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> released_{false};
  std::function<void()> release_;
};

class GenerationManager {
 public:
  // `sessions` is not owned and must outlive the manager.
  // `registry` (not owned, may be null: cpu only) and `submit` give the device decoders their
  // backends and executors.
  GenerationManager(sessions::SessionManager* sessions, ClientPathRoots roots,
                    GenerationLimits limits, const backend::BackendRegistry* registry = nullptr,
                    sessions::SubmitTask submit = nullptr);
  ~GenerationManager();  // Shutdown()

  // Checks what needs no model (INVALID_ARGUMENT naming the field: the source, weights, backend,
  // max_tokens, max_context, sampling; RESOURCE_EXHAUSTED with every slot taken), takes a slot
  // and starts the generation. Its outcome goes to `done` (once, unless Start fails).
  absl::StatusOr<std::shared_ptr<Generation>> Start(GenerateCall call, TokenSink sink,
                                                    GenerateDone done);
  // Generations holding a slot.
  int active() const;
  void Shutdown();

 private:
  struct Loaded;
  absl::Status Check(const GenerateCall& call) const;
  void Run(const GenerateCall& call, Generation* generation, const TokenSink& sink,
           const GenerateDone& done);
  absl::StatusOr<GenerateResult> Generate(const GenerateCall& call, Generation* generation,
                                          const TokenSink& sink);
  // The model's config and weights, and the session's spec when it came from one.
  absl::StatusOr<Loaded> LoadModel(const GenerateCall& call, Generation* generation);
  absl::StatusOr<Loaded> CopyLive(const std::string& session_id, Generation* generation);

  sessions::SessionManager* sessions_;
  const backend::BackendRegistry* registry_;
  sessions::SubmitTask submit_;
  const ClientPathRoots roots_;
  const GenerationLimits limits_;
  mutable absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;   // slots taken
  int threads_ ABSL_GUARDED_BY(mu_) = 0;  // threads not yet ended
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::weak_ptr<Generation>> running_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_GENERATION_MANAGER_H_
