#include "server/engine/executor_decoder.h"

#include <utility>

#include "absl/synchronization/notification.h"

namespace anerd::engine {

absl::Status ExecutorDecoder::RunOnExecutor(const char* what, const std::function<void()>& fn) {
  absl::Notification ran;
  absl::Status admission;
  submit_(backend_, sessions::TaskClass::kInteractive, what,
          [&](absl::Status status, absl::Duration) {
            admission = status;
            if (status.ok()) fn();
            ran.Notify();
          });
  ran.WaitForNotification();
  return admission;
}

absl::StatusOr<std::unique_ptr<ExecutorDecoder>> ExecutorDecoder::Create(
    sessions::SubmitTask submit, std::string backend, Factory factory) {
  std::unique_ptr<ExecutorDecoder> decoder(
      new ExecutorDecoder(std::move(submit), std::move(backend)));
  absl::StatusOr<std::unique_ptr<generation::TokenDecoder>> made =
      absl::InternalError("generation decoder: not built");
  if (absl::Status s =
          decoder->RunOnExecutor("generation: build decoder", [&] { made = factory(); });
      !s.ok()) {
    return s;
  }
  if (!made.ok()) return made.status();
  decoder->inner_ = *std::move(made);
  return decoder;
}

ExecutorDecoder::~ExecutorDecoder() {
  if (inner_ == nullptr) return;
  // If the executor refuses (shutting down), the decoder is destroyed here instead.
  (void)RunOnExecutor("generation: release decoder", [this] { inner_.reset(); });
}

absl::StatusOr<absl::Span<const float>> ExecutorDecoder::Prefill(absl::Span<const int32_t> tokens) {
  absl::Status result;
  const absl::Status admission = RunOnExecutor("generation: prefill", [&] {
    absl::StatusOr<absl::Span<const float>> logits = inner_->Prefill(tokens);
    if (!logits.ok()) {
      result = logits.status();
      return;
    }
    logits_.assign(logits->begin(), logits->end());
  });
  if (!admission.ok()) return admission;
  if (!result.ok()) return result;
  return absl::Span<const float>(logits_);
}

void ExecutorDecoder::Reset() {
  // Forgetting positions touches no device state, so a refusal (shutdown) resets it here.
  if (!RunOnExecutor("generation: reset", [this] { inner_->Reset(); }).ok()) inner_->Reset();
}

}  // namespace anerd::engine
