// The session event log's record and its on-disk form (sessions/<id>/events.jsonl): one JSON object
// per line, `\n`-terminated, written by the session's EventLog (event_log.h) and read back on
// start.
//
// Record (schema kEventSchemaVersion = 2): {"v": 2, "seq", "ms", "kind" (0 step, 1 state,
// 2 checkpoint, 3 warning, 4 eval, 5 sample), then for steps "step": {NAMED FIELDS} (step, loss,
// lr, grad_norm, loss_scale, skipped, step_ms, tokens_per_s, flops, tflops, queued_ms and the phase
// times kernel_ms, io_ms, rms_ms, elem_ms, cls_ms, dw_wait_ms, optim_ms, and kernel_hw_ms (the
// device's own time, written only when measured) with hw_simulated, kernel_fwd_ms and
// kernel_bwd_ms, and the StepObservations — compile_ms, compile_share, peak_tflops, peak_source,
// device_utilization, energy_j, energy_j_per_token, power_w, energy_source, energy_unavailable,
// thermal_state — each written only when set; for data-parallel steps only ranks, allreduce_ms,
// allreduce_bytes, slowest_rank, slowest_rank_ms, fastest_rank_ms; StepEventFieldNames()), else
// "text" and "ckpt_step"; evaluations carry "eval": {step, loss, perplexity, sequences, tokens,
// source, eval_ms, best} and samples "sample": {step, prompt, text, tokens, sample_ms}}. Readers
// ignore named fields they do not know and give fields a record lacks their defaults (0, false);
// only "step" (the step number) is required. So adding a field to the step event is one line in the
// codec's field list, and logs written before it still load.
// kernel_fwd_ms and kernel_bwd_ms too are written only when measured (absent from logs written
// before they existed, which read them as unset).
//
// Schema 1 (anerd before issue 17, no "v"): "step" is a positional array [step, loss, lr,
// grad_norm, loss_scale, skipped, step_ms, tokens_per_s, flops, tflops, queued_ms] and "phases"
// an array [kernel, io, rms, elem, cls, dw_wait, optim] (ms); such lines are still read.
//
// JSON has no NaN or infinity: non-finite numbers are written as the strings "nan", "inf" and
// "-inf" (a skipped step's grad norm is NaN); `null`, which older logs hold for them, is read back
// as NaN.
//
// Reading never throws and never trusts the file: every field is type- and range-checked, lines
// are bounded (kMaxEventLineBytes) and errors name the file and the 1-based line.
// Thread-safety: pure functions, plus ReadEventLog's read of one file.
#ifndef ANERD_SERVER_SESSIONS_EVENT_CODEC_H_
#define ANERD_SERVER_SESSIONS_EVENT_CODEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/training/trainer.h"

namespace anerd::sessions {

// A held-out evaluation (issue 20 item 4): the loss of the weights after `step`.
struct EvalRecord {
  int64_t step = 0;
  training::EvalReport report;
  bool best = false;  // the lowest held-out loss so far: its checkpoint was written as best.bin
};

// A text sample generated from the weights after `step` (greedy, CPU decoder).
struct SampleRecord {
  int64_t step = 0;
  std::string prompt;
  std::string text;  // the continuation after the prompt (whole UTF-8)
  int64_t tokens = 0;
  double sample_ms = 0;  // generation time, off the device
};

// What the session measures around a training step besides the trainer's report (issue 21 items
// 2 and 3). Measured values only: a figure that was not measured is unset, never 0, and the
// energy fields say why they are missing.
struct StepObservations {
  // The trainer's kernel compile time (backend Compile calls, this run of the session) and its
  // share of the run's wall time so far: compile_ms / (compile_ms + the run's step times).
  std::optional<double> compile_ms;
  std::optional<double> compile_share;
  // Achieved FLOP rate over the backend's MEASURED peak (a stored peak probe of that backend):
  // tflops / peak_tflops; unset when no peak was measured on the backend.
  std::optional<double> peak_tflops;
  std::string peak_source;  // "probe <result id>"
  std::optional<double> device_utilization;
  // Energy of the step from the daemon's telemetry (server/telemetry): the average power of the
  // source's domains over the samples bracketing the step times the step's wall time.
  std::optional<double> energy_j;
  std::optional<double> energy_j_per_token;
  std::optional<double> power_w;
  std::string energy_source;       // "rapl", "ioreport" (set with energy_j)
  std::string energy_unavailable;  // why energy_j is unset ("" when set or not recorded)
  std::string thermal_state;       // "nominal" ... "critical" where the platform says (macOS)
};

struct SessionEventRecord {
  enum class Kind { kStep, kState, kCheckpoint, kWarning, kEval, kSample };
  uint64_t seq = 0;
  int64_t unix_ms = 0;
  Kind kind = Kind::kStep;
  training::StepReport step;  // kStep
  double queued_ms = 0;       // kStep: time the step waited for the device
  StepObservations observed;  // kStep
  std::string text;           // kState: state name; kCheckpoint: path; kWarning: message
  std::string detail;         // kState: why, when the state ended the run (the session's error)
  int64_t checkpoint_step = 0;
  EvalRecord eval;      // kEval
  SampleRecord sample;  // kSample
};

// What EncodeEventLine writes; readers accept any version (unknown fields are ignored).
inline constexpr int kEventSchemaVersion = 2;

// The named fields of a step event, in the order they are written.
std::vector<std::string> StepEventFieldNames();

// Longest line the reader accepts (a record is a few hundred bytes; warnings carry messages).
inline constexpr size_t kMaxEventLineBytes = 1 << 20;

// One line without its trailing newline. Never fails: invalid UTF-8 in `text` is replaced.
std::string EncodeEventLine(const SessionEventRecord& event);

// A warning event carrying `text` (seq and time are set when it is appended).
SessionEventRecord WarningEvent(std::string text);

// Parses one line (without its newline). INVALID_ARGUMENT naming the first bad field.
absl::StatusOr<SessionEventRecord> ParseEventLine(absl::string_view line);

struct EventLogContents {
  std::vector<SessionEventRecord> events;  // valid records in file order, seq renumbered 0, 1, ...
  // A torn tail: bytes after the last valid record that do not end in a valid record (a write
  // cut short by a crash or a full disk). `valid_bytes` is where the valid prefix ends.
  bool torn_tail = false;
  int64_t valid_bytes = 0;
  // Damage before the tail: "<path> line N: <why>" for the first bad line (records after it are
  // kept when valid); empty when the log is clean.
  std::string corruption;
};

// Reads the whole log at `path` (a missing file is an empty log). Records must have strictly
// increasing `seq` (gaps are allowed: an append that failed on a full disk leaves one); a record
// that breaks the order counts as a bad line. Errors only for I/O failures, naming the path.
absl::StatusOr<EventLogContents> ReadEventLog(const std::string& path);

// Parses the bytes of a whole log (what ReadEventLog does after reading); `path` names it in
// messages.
EventLogContents ParseEventLog(absl::string_view bytes, const std::string& path);

}  // namespace anerd::sessions

#endif  // ANERD_SERVER_SESSIONS_EVENT_CODEC_H_
