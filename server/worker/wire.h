// The front<->worker messages as native types, and their encoding: the only files that see the
// worker protobuf (proto/anerd/worker/v1/worker.proto), shared by the front (worker_backend.cc)
// and the worker (worker_host.cc), so each field is encoded and decoded in one place.
//
// Bulk bytes never travel in these messages: weights and tensors are Spans of the shared arena
// (channel.h). Both ends are the same binary; kProtocol in the Hello guards against a mismatch
// after an upgrade on disk.
// Thread-safety: pure functions over a Channel, which is not thread-safe (channel.h).
#ifndef ANERD_SERVER_WORKER_WIRE_H_
#define ANERD_SERVER_WORKER_WIRE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "server/backend/backend.h"
#include "server/worker/channel.h"

namespace anerd::worker::wire {

inline constexpr uint32_t kProtocol = 1;

// Bounds of a SupportsRequest (checked by both ends with QueryOutOfBounds): operands (inputs plus
// outputs), the rank of each, and the length of the op's and each operand's name. A query of a
// parsed program is far inside them (ParseOptions: rank <= 5); at the limits the message stays
// under 30 MB, inside kMaxFrameBytes.
inline constexpr size_t kMaxQueryOperands = 65536;
inline constexpr int kMaxQueryRank = 16;
inline constexpr size_t kMaxQueryNameBytes = 256;
// Most text the pass dumps of one compile may carry back (CompileResponse::pass_dumps).
inline constexpr size_t kMaxPassDumpBytes = size_t{16} << 20;

// A byte range of the current arena.
struct Span {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct WeightRef {
  std::string path;  // canonical "weights/x.bin"
  Span bytes;
};

struct TensorRef {
  std::string name;
  mil::TensorType type;
  Span bytes;
};

struct CompileRequest {
  std::string mil_text;
  std::vector<WeightRef> weights;
  // numerics, ignore_attn_mask, reference_mode, max_memory_bytes and qos travel; `stop` and
  // `pass_dumps` (a pointer) do not: `pass_dumps` below asks the worker to collect them.
  backend::CompileOptions options;
  bool pass_dumps = false;
};

// Backend::Supports asked of the worker's backend. `query.operation` does not travel (it is null
// in the worker): Supports decides from the op name and the operand types (backend.h). The answer
// is the Response's status; the Response has no kind.
struct SupportsRequest {
  backend::OpQuery query;
};

struct RunRequest {
  uint64_t handle = 0;
  std::vector<TensorRef> inputs;
  Span outputs;  // where the worker writes the outputs, in signature order, back to back
};

struct Shutdown {};

// Runs the backend's ANE capability probe (Backend::ProbeDeviceRules); answered by a
// backend::RuleProbeReport.
struct ProbeRulesRequest {};

struct Request {
  uint64_t id = 0;
  // Non-zero when this message carries a new arena descriptor of this many bytes.
  uint64_t new_arena_bytes = 0;
  std::vector<uint64_t> release;  // handles the front no longer needs
  std::variant<std::monostate, CompileRequest, RunRequest, Shutdown, SupportsRequest,
               ProbeRulesRequest>
      kind;
};

// The worker's first message, sent unprompted after start.
struct Hello {
  uint32_t protocol = kProtocol;
  bool available = false;
  std::string unavailable_reason;  // when !available
  backend::BackendDescription description;
  std::vector<std::string> supported_ops;
};

struct CompileResponse {
  uint64_t handle = 0;
  std::vector<backend::TensorSignature> inputs, outputs;
  uint64_t memory_bytes = 0;  // CompiledProgram::memory_bytes() in the worker
  // When CompileRequest::pass_dumps: the backend's dumps, cut by BoundPassDumps.
  std::vector<backend::PassDump> pass_dumps;
};

struct RunResponse {
  std::vector<Span> outputs;  // inside RunRequest::outputs, in signature order
  double total_us = 0;
  double compute_us = 0;
  std::optional<double> hardware_us;  // backend::RunTiming::hardware_us; unset travels unset
  bool hardware_simulated = false;    // backend::RunTiming::hardware_simulated
};

struct Response {
  uint64_t id = 0;
  absl::Status status;  // of the request; the kind is empty when not OK
  int64_t compiles_used = 0;
  std::variant<std::monostate, Hello, CompileResponse, RunResponse, backend::RuleProbeReport> kind;
};

// Why `query` cannot travel in a SupportsRequest (over a bound above, or an unknown dtype), or ""
// when it can.
std::string QueryOutOfBounds(const backend::OpQuery& query);

// Cuts `dumps` to at most kMaxPassDumpBytes of text in all (at a UTF-8 boundary): the dump that
// crosses the limit is cut and ends with a line saying how many bytes were dropped; later dumps
// keep their names and carry only that line.
void BoundPassDumps(std::vector<backend::PassDump>* dumps);

// Sends `request` with `pass_fd` (>= 0) attached. RESOURCE_EXHAUSTED, before anything is sent,
// when its encoding exceeds kMaxFrameBytes; otherwise as Channel::Send.
absl::Status Send(Channel& channel, const Request& request, int pass_fd = -1);
absl::Status Send(Channel& channel, const Response& response);
// As Channel::Receive.
absl::Status Receive(Channel& channel, Request* request, int* received_fd);
absl::Status Receive(Channel& channel, Response* response);

}  // namespace anerd::worker::wire

#endif  // ANERD_SERVER_WORKER_WIRE_H_
