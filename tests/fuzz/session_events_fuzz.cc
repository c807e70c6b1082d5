// Fuzzes the session event-log reader (server/sessions/event_codec.h) on arbitrary file bytes:
// it must never throw or crash, and every record it accepts must re-encode to a line that parses
// back to the same record (non-finite numbers included).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/sessions/event_codec.h"

namespace {

bool Same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

bool SameRecord(const anerd::sessions::SessionEventRecord& a,
                const anerd::sessions::SessionEventRecord& b) {
  const auto &x = a.step, &y = b.step;
  return a.seq == b.seq && a.unix_ms == b.unix_ms && a.kind == b.kind && a.text == b.text &&
         a.checkpoint_step == b.checkpoint_step && x.step == y.step && Same(x.loss, y.loss) &&
         Same(x.lr, y.lr) && Same(x.grad_norm, y.grad_norm) && Same(x.loss_scale, y.loss_scale) &&
         x.skipped == y.skipped && Same(x.step_ms, y.step_ms) &&
         Same(x.tokens_per_s, y.tokens_per_s) && Same(x.flops, y.flops) &&
         Same(x.tflops, y.tflops) && Same(a.queued_ms, b.queued_ms) &&
         Same(x.phases.kernel_ms, y.phases.kernel_ms) && Same(x.phases.optim_ms, y.phases.optim_ms);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace anerd::sessions;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const EventLogContents log = ParseEventLog(bytes, "fuzz");
  if (log.valid_bytes < 0 || static_cast<size_t>(log.valid_bytes) > size) std::abort();
  for (const SessionEventRecord& e : log.events) {
    auto back = ParseEventLine(EncodeEventLine(e));
    if (!back.ok()) std::abort();
    // Texts with invalid UTF-8 are repaired on encoding; compare only valid ones exactly.
    if (back->text == e.text && !SameRecord(*back, e)) std::abort();
  }
  return 0;
}
