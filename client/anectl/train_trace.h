// `anectl train trace`: fetches a session's measured spans (GetSessionTrace) and writes them as a
// Chrome/Perfetto trace (JSON "traceEvents", microseconds): one track per daemon thread
// ("trainer", "dW worker"), complete slices as the daemon measured them (nested by time), plus
// loss counters from the step events.
#ifndef ANERD_CLIENT_ANECTL_TRAIN_TRACE_H_
#define ANERD_CLIENT_ANECTL_TRAIN_TRACE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "anerd/v1/anerd.pb.h"
#include "client/anectl/cli.h"
#include "nlohmann/json.hpp"

namespace anerd::anectl {

// Parses "--steps": "N" (the latest N steps: first = 0 - N) or "A-B" (steps A to B).
// INVALID_ARGUMENT naming the flag for anything else.
struct StepRange {
  int64_t first = 0;  // 0 with latest > 0: the latest `latest` steps
  int64_t last = 0;
  int64_t latest = 0;
};
absl::StatusOr<StepRange> ParseStepRange(const std::string& text);

// The Chrome/Perfetto trace of `trace` (times relative to its first span, in microseconds).
nlohmann::json TraceJson(const v1::SessionTrace& trace);

// Fetches session `id`'s spans for `range` and writes the trace to `out`; prints a summary line
// (or nothing with --json, which prints a JSON summary). Returns the exit code.
int WriteSessionTrace(CommandContext& ctx, const std::string& id, const StepRange& range,
                      const std::string& out);

}  // namespace anerd::anectl

#endif  // ANERD_CLIENT_ANECTL_TRAIN_TRACE_H_
