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
  // numerics, ignore_attn_mask, reference_mode, max_memory_bytes and qos travel; `stop` does
  // not.
  backend::CompileOptions options;
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
  std::variant<std::monostate, CompileRequest, RunRequest, Shutdown, ProbeRulesRequest> kind;
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

// Sends `request` with `pass_fd` (>= 0) attached. RESOURCE_EXHAUSTED, before anything is sent,
// when its encoding exceeds kMaxFrameBytes; otherwise as Channel::Send.
absl::Status Send(Channel& channel, const Request& request, int pass_fd = -1);
absl::Status Send(Channel& channel, const Response& response);
// As Channel::Receive.
absl::Status Receive(Channel& channel, Request* request, int* received_fd);
absl::Status Receive(Channel& channel, Response* response);

}  // namespace anerd::worker::wire

#endif  // ANERD_SERVER_WORKER_WIRE_H_
