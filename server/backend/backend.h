// The backend interface: a device that compiles verified MIL programs and runs them.
//
// Lifecycle: a Backend (created by the registry, registry.h) compiles a mil::VerifiedProgram —
// whose weight files travel with it — into a CompiledProgram, which is then run many times with
// named input tensors and returns named output tensors plus timing.
//
// Ownership: Compile returns a CompiledProgram owned by the caller. A CompiledProgram keeps what it
// needs from the VerifiedProgram (decoded weights, plan) and does not reference the Backend after
// Compile returns, so it may outlive it (the ANE backend may document a stricter rule).
//
// Thread-safety: Backend methods are safe to call concurrently from any thread.
// CompiledProgram::Run may be called from any thread; concurrent calls on the SAME CompiledProgram
// are serialised by the implementation (it owns scratch memory), so callers wanting parallel
// execution compile twice. Different CompiledPrograms are independent.
//
// Errors: Compile returns UNIMPLEMENTED naming the op and its source line for a program the backend
// cannot run, RESOURCE_EXHAUSTED when the backend's compile budget is used up, INVALID_ARGUMENT for
// bad options or unreadable weights. Run returns INVALID_ARGUMENT naming the input and its expected
// type for missing, extra, mis-shaped or mis-typed inputs.
#ifndef ANERD_SERVER_BACKEND_BACKEND_H_
#define ANERD_SERVER_BACKEND_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mil/ane_rules.h"
#include "common/mil/ir.h"
#include "common/mil/verifier.h"
#include "server/backend/tensor.h"

namespace anerd::backend {

// How values whose declared type is fp16 are computed.
enum class NumericsMode {
  // Every fp16-declared value is rounded to fp16 after each op (RNE, subnormals kept, overflow to
  // +/-inf); conv/matmul/reductions accumulate in fp32. Mirrors what the ANE stores.
  kAne,
  // fp16-declared values are kept in fp32 between ops (only inputs/outputs are fp16 bits).
  kFp32,
};
absl::string_view NumericsModeName(NumericsMode mode);  // "ane" / "fp32"

// Asked between chunks of long work (the steps of a run, the ops of a compile): OK to go on, or
// the reason to stop (CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE at shutdown), which the work
// returns. Empty = never stop. Called on the thread doing the work.
using StopCheck = std::function<absl::Status()>;

// Part of the RESOURCE_EXHAUSTED message of a compile refused by CompileOptions::max_memory_bytes
// (so that callers can tell it from a used-up compile budget).
inline constexpr absl::string_view kMemoryLimitMarker = "bytes of memory";

// The program as one compile stage left it, for debugging (`anectl kernel compile --dump-passes`):
// `name` is "NN-stage" (NN counting from 00 in pipeline order), `text` a readable listing.
struct PassDump {
  std::string name;
  std::string text;
};

struct CompileOptions {
  NumericsMode numerics = NumericsMode::kAne;
  // ANE quirk: scaled_dot_product_attention ignores `attn_mask` (docs/ANE_NOTES.md §1.8).
  bool ignore_attn_mask = false;
  // Disable planning: run op by op with materialised intermediates, no views, no fusion, no
  // transpose folding. Planned execution must equal this mode (bit-identical except GEMM
  // accumulation order); the conformance suite checks it.
  bool reference_mode = false;
  // The ANE's quality-of-service value for compile, load, evaluate and unload (0..63, the range
  // the seed sweeps; unset = 21, the seed's everywhere). Backends without QoS
  // (capabilities.qos false) refuse a set value with INVALID_ARGUMENT naming options.qos.
  std::optional<unsigned int> qos;
  // Not part of a kernel's identity (cache::EncodeCompileOptions ignores them):
  // Most memory the compiled program may hold (buffers, scratch, decoded constants), checked
  // before it is allocated: RESOURCE_EXHAUSTED naming both sizes. 0 = unlimited. Backends that
  // cannot tell their memory before allocating ignore it.
  uint64_t max_memory_bytes = 0;
  StopCheck stop;  // checked between the ops of a compile
  // When non-null, a backend with compile passes appends the program after each (PassDump);
  // others leave it alone. Not owned; used only during Compile.
  std::vector<PassDump>* pass_dumps = nullptr;
};

// An op as a backend is asked about it (as ggml's supports_op): its name and the types and shapes
// of its tensor operands. A query with no operands asks about the op name only ("can the backend
// run this op for some operands"). Plain data; `operation` is not owned and may be null.
struct OpQuery {
  std::string op;  // MIL op name, e.g. "conv"
  // Tensor operands by parameter name in the order written (each element of a tuple operand is
  // listed under the tuple's name); literal operands appear with their literal type.
  std::vector<std::pair<std::string, mil::TensorType>> inputs;
  std::vector<mil::TensorType> outputs;       // declared output types; empty when unknown
  const mil::Operation* operation = nullptr;  // the op itself (its constant parameters), if known

  static OpQuery Named(absl::string_view op);
  // The first operand named `name`, or null.
  const mil::TensorType* Input(absl::string_view name) const;
};

// The query for each op of `function`, in program order: operand types come from the function's
// inputs, earlier ops' declared outputs and literals. `function` must outlive the queries.
std::vector<OpQuery> OpQueriesFor(const mil::Function& function);

// The refusal a backend returns from Supports: UNIMPLEMENTED "op 'OP' is not supported by the
// BACKEND backend: WHY".
absl::Status OpNotSupported(absl::string_view backend, absl::string_view op, absl::string_view why);

struct BackendCapabilities {
  bool fp16_compute = false;     // computes fp16 natively (vs emulates rounding)
  bool honors_attn_mask = true;  // false when the device always ignores attn_mask
  bool multiple_inputs = true;   // more than one input/output tensor per program
  int64_t compile_budget = 0;    // compiles allowed per backend instance; 0 = unlimited
  bool pass_dumps = false;       // fills CompileOptions::pass_dumps
  bool qos = false;              // takes CompileOptions::qos (the ANE backends)
  // Where RunTiming::hardware_us comes from: "hardware" (the device's own counter), "simulated"
  // (a model of it), or "" (the backend has none: it is always unset).
  std::string hardware_time;
};

struct BackendDescription {
  std::string name;     // registry key, e.g. "cpu"
  std::string version;  // changes whenever compiled results may change (part of cache keys)
  std::string device;   // human-readable device description
  BackendCapabilities capabilities;
  // Device facts as (key, value) pairs for `GetInfo` / `anectl doctor` (ANE backends: "simulated",
  // "chip", "ane_subtype", "os_build", "framework", "classes", "device_compiles"); may be empty.
  std::vector<std::pair<std::string, std::string>> facts;
};

// The signature of one program input or output.
struct TensorSignature {
  std::string name;
  mil::TensorType type;
};

struct RunTiming {
  double total_us = 0;    // wall time inside Run, including input/output conversion
  double compute_us = 0;  // time spent executing ops
  // The device's own execution time of this run (us), when the backend has such a counter and
  // the device reported it: never a made-up 0. `hardware_simulated` when it is a model's value.
  std::optional<double> hardware_us;
  bool hardware_simulated = false;
};

struct RunResult {
  std::vector<NamedTensor> outputs;  // in the order of the function's `-> (...)` list
  RunTiming timing;
};

class CompiledProgram {
 public:
  virtual ~CompiledProgram() = default;
  virtual const std::vector<TensorSignature>& inputs() const = 0;
  virtual const std::vector<TensorSignature>& outputs() const = 0;
  // Runs the program. `inputs` must name every function input exactly once with its declared
  // dtype and shape (order free). See the file comment for errors and thread-safety.
  virtual absl::StatusOr<RunResult> Run(const std::vector<NamedTensor>& inputs) = 0;
  // As Run, checking `stop` between chunks of the work where the backend can (the default
  // checks it once, before running).
  virtual absl::StatusOr<RunResult> RunStoppable(const std::vector<NamedTensor>& inputs,
                                                 const StopCheck& stop);
  // Bytes of memory the program holds while it is loaded (its buffers, scratch and decoded
  // constants), as planned at compile time; 0 when the backend does not know.
  virtual uint64_t memory_bytes() const { return 0; }
};

// One rule as a device's capability probe measured it (issue 18 item 7): the rules table's value
// and what the device showed, each program's output checked against the CPU backend.
struct RuleMeasurement {
  std::string rule;      // an AneRuleRow id, or "width_channel_reshape" (no table row)
  std::string expected;  // the table's value
  std::string measured;  // what the device showed
  bool agrees = false;   // measured == expected
  std::string detail;    // the device's error text or the mismatch, when there is one
};

// A capability probe of the device a backend drives, with the key its results are kept under.
struct RuleProbeReport {
  std::string chip;      // DeviceInfo::chip ("ane-sim" for the simulator)
  std::string os_build;  // DeviceInfo::os_build ("simulated" for the simulator by default)
  bool simulated = false;
  std::vector<RuleMeasurement> rows;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendDescription Describe() const = 0;
  // Whether the backend can execute the op described by `query` with those operand types and
  // shapes: OK, or UNIMPLEMENTED whose message names the op and says why (OpNotSupported). A
  // name-only query (OpQuery::Named) answers for the op name alone. Compile refuses, with the same
  // reason, any program holding an op that Supports refuses.
  virtual absl::Status Supports(const OpQuery& query) const = 0;
  // Plans and prepares `program` for execution. See the file comment for errors.
  virtual absl::StatusOr<std::unique_ptr<CompiledProgram>> Compile(
      const mil::VerifiedProgram& program, const CompileOptions& options) = 0;
  // Compiles counted against the budget so far (successful ones; for the ANE backends every
  // attempt that reached the device, ane_backend.h).
  virtual int64_t compiles_used() const = 0;
  // Runs the ANE capability probe on the device (ANE backends; about 17 compile attempts, counted
  // against the budget: RESOURCE_EXHAUSTED when too few are left). Blocks for the probe's
  // duration: call it where device work runs (the backend's executor). Others:
  // FAILED_PRECONDITION naming the backend.
  virtual absl::StatusOr<RuleProbeReport> ProbeDeviceRules();
  // Makes `overrides` (measured rule values) the rules in force over the table's from now on:
  // the lowering, Supports and the "ane_rule.*" facts follow them. An empty set restores the
  // table. Others: FAILED_PRECONDITION naming the backend.
  virtual absl::Status UseMeasuredRules(const mil::AneRuleOverrides& overrides);
};

// Checks `inputs` against `signatures`: INVALID_ARGUMENT naming the input and the expected type for
// a missing, duplicated, unknown, mis-typed or mis-shaped input. Shared by backends.
absl::Status CheckInputs(const std::vector<TensorSignature>& signatures,
                         const std::vector<NamedTensor>& inputs);

}  // namespace anerd::backend

#endif  // ANERD_SERVER_BACKEND_BACKEND_H_
