// ExecutorDecoder: a TokenDecoder whose every call runs as one task on a backend's device
// executor, so a device-program decoder (generation::ProgramDecoder on ane-sim or ane) obeys the
// device-owner rule while the generation itself runs on its own thread. Generation tasks queue in
// the interactive class (ahead of training steps, run between a step's kernels; device_queue.h),
// one at a time per generation, so a generation never holds the device for more than one Prefill
// (at most one bucket of positions).
//
// Ownership: owns the inner decoder; it is created, used and destroyed on the executor only.
// Threads: Prefill/Reset block the calling thread (never an executor thread) until the task ran.
#ifndef ANERD_SERVER_ENGINE_EXECUTOR_DECODER_H_
#define ANERD_SERVER_ENGINE_EXECUTOR_DECODER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/generation/token_decoder.h"
#include "server/sessions/session_manager.h"

namespace anerd::engine {

class ExecutorDecoder final : public generation::TokenDecoder {
 public:
  using Factory = std::function<absl::StatusOr<std::unique_ptr<generation::TokenDecoder>>()>;

  // Runs `factory` on `backend`'s executor (through `submit`) and wraps what it made. The
  // executor's admission error, or the factory's, is returned.
  static absl::StatusOr<std::unique_ptr<ExecutorDecoder>> Create(sessions::SubmitTask submit,
                                                                 std::string backend,
                                                                 Factory factory);
  ~ExecutorDecoder() override;  // destroys the inner decoder on the executor

  absl::StatusOr<absl::Span<const float>> Prefill(absl::Span<const int32_t> tokens) override;
  void Reset() override;
  int64_t position() const override { return inner_->position(); }
  int64_t max_context() const override { return inner_->max_context(); }
  const training::ModelConfig& config() const override { return inner_->config(); }

 private:
  ExecutorDecoder(sessions::SubmitTask submit, std::string backend)
      : submit_(std::move(submit)), backend_(std::move(backend)) {}
  // Runs fn on the executor and waits; the admission error when the executor refused it.
  absl::Status RunOnExecutor(const char* what, const std::function<void()>& fn);

  sessions::SubmitTask submit_;
  std::string backend_;
  std::unique_ptr<generation::TokenDecoder> inner_;
  std::vector<float> logits_;
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_EXECUTOR_DECODER_H_
