#include "server/worker/worker_host.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/mil/op_registry.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "server/backend/backend.h"
#include "server/worker/channel.h"
#include "server/worker/process.h"
#include "server/worker/wire.h"
#include "spdlog/spdlog.h"

namespace anerd::worker {
namespace {

// Identity program that aborts or hangs when run (test-only ops).
class TestOpProgram : public backend::CompiledProgram {
 public:
  TestOpProgram(std::vector<backend::TensorSignature> inputs,
                std::vector<backend::TensorSignature> outputs, bool abort)
      : inputs_(std::move(inputs)), outputs_(std::move(outputs)), abort_(abort) {}
  const std::vector<backend::TensorSignature>& inputs() const override { return inputs_; }
  const std::vector<backend::TensorSignature>& outputs() const override { return outputs_; }
  absl::StatusOr<backend::RunResult> Run(const std::vector<backend::NamedTensor>&) override {
    if (abort_) {
      spdlog::error("anerd_test_abort: aborting the worker on purpose");
      spdlog::default_logger()->flush();
      std::abort();
    }
    spdlog::error("anerd_test_hang: hanging the worker on purpose");
    for (;;) pause();
  }

 private:
  std::vector<backend::TensorSignature> inputs_, outputs_;
  bool abort_;
};

// Which test-only op `program` uses: "" when none.
std::string TestOpIn(const mil::Function& main) {
  for (const mil::Operation& op : main.ops) {
    if (op.op == "anerd_test_abort" || op.op == "anerd_test_hang") return op.op;
  }
  return "";
}

std::unique_ptr<backend::CompiledProgram> MakeTestOpProgram(const mil::Function& main,
                                                            const std::string& op) {
  std::vector<backend::TensorSignature> inputs, outputs;
  for (const mil::NamedType& in : main.inputs) inputs.push_back({in.name, in.type});
  for (const std::string& name : main.outputs) {
    for (const mil::Operation& o : main.ops) {
      for (const mil::NamedType& t : o.outputs) {
        if (t.name == name) outputs.push_back({name, t.type});
      }
    }
  }
  return std::make_unique<TestOpProgram>(std::move(inputs), std::move(outputs),
                                         op == "anerd_test_abort");
}

class Host {
 public:
  Host(const WorkerHostOptions& options, std::unique_ptr<backend::Backend> backend)
      : options_(options), backend_(std::move(backend)), channel_(options.channel_fd) {}

  absl::Status SendHello() {
    wire::Hello hello;
    hello.available = true;
    hello.description = backend_->Describe();
    for (const std::string& op : mil::KnownOps()) {
      if (backend_->Supports(backend::OpQuery::Named(op)).ok()) hello.supported_ops.push_back(op);
    }
    wire::Response r;
    r.kind = std::move(hello);
    return wire::Send(channel_, r);
  }

  // Serves requests until the channel closes or a shutdown request arrives.
  int Serve() {
    for (;;) {
      wire::Request req;
      int fd = -1;
      absl::Status st = wire::Receive(channel_, &req, &fd);
      if (!st.ok()) {
        if (st.code() == absl::StatusCode::kUnavailable) return 0;  // the front closed
        spdlog::error("worker: {}", st.ToString());
        return 1;
      }
      if (req.new_arena_bytes > 0) {
        absl::StatusOr<SharedArena> arena = fd >= 0 ? SharedArena::Map(fd, req.new_arena_bytes)
                                                    : absl::InvalidArgumentError("no arena fd");
        if (!arena.ok()) return Fail(req.id, arena.status());
        arena_ = *std::move(arena);
      } else if (fd >= 0) {
        close(fd);
      }
      for (uint64_t handle : req.release) programs_.erase(handle);
      if (std::holds_alternative<wire::Shutdown>(req.kind)) return 0;
      wire::Response resp = Handle(req);
      resp.id = req.id;
      resp.compiles_used = backend_->compiles_used();
      if (!wire::Send(channel_, resp).ok()) return 0;
    }
  }

 private:
  int Fail(uint64_t id, const absl::Status& status) {
    wire::Response r;
    r.id = id;
    r.status = status;
    (void)wire::Send(channel_, r);
    return 1;
  }

  wire::Response Handle(const wire::Request& req) {
    wire::Response resp;
    if (const auto* compile = std::get_if<wire::CompileRequest>(&req.kind)) {
      wire::CompileResponse out;
      resp.status = Compile(*compile, &out);
      resp.kind = std::move(out);
    } else if (const auto* run = std::get_if<wire::RunRequest>(&req.kind)) {
      wire::RunResponse out;
      resp.status = Run(*run, &out);
      resp.kind = std::move(out);
    } else if (const auto* supports = std::get_if<wire::SupportsRequest>(&req.kind)) {
      resp.status = Supports(supports->query);
    } else if (std::holds_alternative<wire::ProbeRulesRequest>(req.kind)) {
      // On the worker's one thread, where the device lives (the front's executor waits).
      absl::StatusOr<backend::RuleProbeReport> report = backend_->ProbeDeviceRules();
      resp.status = report.status();
      if (report.ok()) resp.kind = *std::move(report);
    } else {
      resp.status = absl::InvalidArgumentError("empty worker request");
    }
    if (!resp.status.ok()) resp.kind = std::monostate();
    return resp;
  }

  absl::Status Compile(const wire::CompileRequest& req, wire::CompileResponse* out) {
    mil::WeightFiles weights;
    for (const wire::WeightRef& w : req.weights) {
      if (!arena_.Contains(w.bytes.offset, w.bytes.size)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight file ", w.path, " lies outside the arena"));
      }
      absl::Status added =
          weights.Add(w.path, std::string(arena_.data() + w.bytes.offset, w.bytes.size));
      if (!added.ok()) return added;
    }
    absl::StatusOr<mil::Program> program = mil::ParseProgram(req.mil_text);
    if (!program.ok()) return program.status();
    absl::StatusOr<mil::VerifiedProgram> verified =
        mil::VerifyProgram(*std::move(program), std::move(weights));
    if (!verified.ok()) return verified.status();
    std::unique_ptr<backend::CompiledProgram> compiled;
    const std::string test_op = TestOpIn(verified->main());
    if (options_.test_ops && !test_op.empty()) {
      compiled = MakeTestOpProgram(verified->main(), test_op);
    } else {
      backend::CompileOptions options = req.options;
      if (req.pass_dumps) options.pass_dumps = &out->pass_dumps;
      absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> c =
          backend_->Compile(*verified, options);
      if (!c.ok()) return c.status();
      compiled = *std::move(c);
      wire::BoundPassDumps(&out->pass_dumps);
    }
    out->inputs = compiled->inputs();
    out->outputs = compiled->outputs();
    out->memory_bytes = compiled->memory_bytes();
    out->handle = next_handle_++;
    programs_[out->handle] = std::move(compiled);
    return absl::OkStatus();
  }

  // The backend's own answer (OK or UNIMPLEMENTED with its reason); INVALID_ARGUMENT for a query
  // outside the wire's bounds, which the front never sends.
  absl::Status Supports(const backend::OpQuery& query) {
    if (std::string why = wire::QueryOutOfBounds(query); !why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Supports query for op '", query.op.substr(0, wire::kMaxQueryNameBytes), "': ", why));
    }
    return backend_->Supports(query);
  }

  absl::Status Run(const wire::RunRequest& req, wire::RunResponse* out) {
    auto it = programs_.find(req.handle);
    if (it == programs_.end()) {
      return absl::NotFoundError(absl::StrCat("no program with handle ", req.handle));
    }
    std::vector<backend::NamedTensor> inputs;
    for (const wire::TensorRef& t : req.inputs) {
      if (!arena_.Contains(t.bytes.offset, t.bytes.size)) {
        return absl::InvalidArgumentError(
            absl::StrCat("input ", t.name, " lies outside the arena"));
      }
      absl::StatusOr<backend::Tensor> tensor = backend::Tensor::FromBytes(
          t.type, std::string(arena_.data() + t.bytes.offset, t.bytes.size));
      if (!tensor.ok()) return tensor.status();
      inputs.push_back({t.name, *std::move(tensor)});
    }
    absl::StatusOr<backend::RunResult> result = it->second->Run(inputs);
    if (!result.ok()) return result.status();
    return WriteOutputs(req.outputs, *result, out);
  }

  absl::Status WriteOutputs(const wire::Span& area, const backend::RunResult& result,
                            wire::RunResponse* out) {
    if (!arena_.Contains(area.offset, area.size)) {
      return absl::InvalidArgumentError("output area lies outside the arena");
    }
    uint64_t offset = area.offset;
    const uint64_t end = area.offset + area.size;
    for (const backend::NamedTensor& t : result.outputs) {
      const uint64_t n = t.tensor.bytes().size();
      if (n > end - offset) {
        return absl::InternalError(
            absl::StrCat("output ", t.name, " does not fit the output area"));
      }
      std::memcpy(arena_.data() + offset, t.tensor.data(), n);
      out->outputs.push_back({offset, n});
      offset += (n + 63) & ~uint64_t{63};
      offset = std::min(offset, end);
    }
    out->total_us = result.timing.total_us;
    out->compute_us = result.timing.compute_us;
    out->hardware_us = result.timing.hardware_us;
    out->hardware_simulated = result.timing.hardware_simulated;
    return absl::OkStatus();
  }

  const WorkerHostOptions options_;
  std::unique_ptr<backend::Backend> backend_;
  Channel channel_;
  SharedArena arena_;
  std::map<uint64_t, std::unique_ptr<backend::CompiledProgram>> programs_;
  uint64_t next_handle_ = 1;
};

}  // namespace

int RunWorker(const WorkerHostOptions& options) {
  PrepareWorkerProcess(options.parent_pid, options.channel_fd, options.heartbeat_fd);
  StartHeartbeat(options.heartbeat_fd, options.parent_pid);
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::CreateBackend(options.backend, options.registry);
  if (!backend.ok()) {
    Channel channel(options.channel_fd);
    wire::Hello hello;
    hello.available = false;
    hello.unavailable_reason = std::string(backend.status().message());
    wire::Response r;
    r.kind = std::move(hello);
    (void)wire::Send(channel, r);
    return 0;
  }
  Host host(options, *std::move(backend));
  if (!host.SendHello().ok()) return 1;
  spdlog::debug("worker {} (pid {}) serving", options.backend, getpid());
  return host.Serve();
}

}  // namespace anerd::worker
