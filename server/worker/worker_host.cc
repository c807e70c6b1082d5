#include "server/worker/worker_host.h"

#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "anerd/worker/v1/worker.pb.h"
#include "common/mil/op_registry.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "server/backend/backend.h"
#include "server/worker/channel.h"
#include "spdlog/spdlog.h"

namespace anerd::worker {
namespace {

namespace pb = ::anerd::worker::v1;

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

void FillSignature(const backend::TensorSignature& s, pb::Signature* out) {
  out->set_name(s.name);
  out->set_dtype(static_cast<int>(s.type.dtype));
  for (int64_t d : s.type.shape) out->add_shape(d);
}

class Host {
 public:
  Host(const WorkerHostOptions& options, std::unique_ptr<backend::Backend> backend)
      : options_(options), backend_(std::move(backend)), channel_(options.channel_fd) {}

  absl::Status SendHello() {
    pb::Response r;
    pb::Hello* h = r.mutable_hello();
    h->set_protocol(kWorkerProtocol);
    h->set_available(true);
    const backend::BackendDescription d = backend_->Describe();
    h->set_name(d.name);
    h->set_version(d.version);
    h->set_device(d.device);
    h->set_fp16_compute(d.capabilities.fp16_compute);
    h->set_honors_attn_mask(d.capabilities.honors_attn_mask);
    h->set_multiple_inputs(d.capabilities.multiple_inputs);
    h->set_compile_budget(d.capabilities.compile_budget);
    for (const auto& [k, v] : d.facts) {
      pb::Fact* f = h->add_facts();
      f->set_key(k);
      f->set_value(v);
    }
    for (const std::string& op : mil::KnownOps()) {
      if (backend_->Supports(op)) h->add_supported_ops(op);
    }
    return channel_.Send(r);
  }

  // Serves requests until the channel closes or a shutdown request arrives.
  int Serve() {
    for (;;) {
      pb::Request req;
      int fd = -1;
      absl::Status st = channel_.Receive(&req, &fd);
      if (!st.ok()) {
        if (st.code() == absl::StatusCode::kUnavailable) return 0;  // the front closed
        spdlog::error("worker: {}", st.ToString());
        return 1;
      }
      if (req.new_arena_bytes() > 0) {
        absl::StatusOr<SharedArena> arena = fd >= 0 ? SharedArena::Map(fd, req.new_arena_bytes())
                                                    : absl::InvalidArgumentError("no arena fd");
        if (!arena.ok()) return Fail(req.id(), arena.status());
        arena_ = *std::move(arena);
      } else if (fd >= 0) {
        close(fd);
      }
      for (uint64_t handle : req.release()) programs_.erase(handle);
      if (req.kind_case() == pb::Request::kShutdown) return 0;
      pb::Response resp = Handle(req);
      resp.set_id(req.id());
      resp.set_compiles_used(backend_->compiles_used());
      if (!channel_.Send(resp).ok()) return 0;
    }
  }

 private:
  int Fail(uint64_t id, const absl::Status& status) {
    pb::Response r;
    r.set_id(id);
    r.set_code(static_cast<int>(status.code()));
    r.set_message(std::string(status.message()));
    (void)channel_.Send(r);
    return 1;
  }

  pb::Response Handle(const pb::Request& req) {
    pb::Response resp;
    absl::Status st;
    if (req.kind_case() == pb::Request::kCompile) {
      st = Compile(req.compile(), resp.mutable_compile());
    } else if (req.kind_case() == pb::Request::kRun) {
      st = Run(req.run(), resp.mutable_run());
    } else {
      st = absl::InvalidArgumentError("empty worker request");
    }
    if (!st.ok()) {
      resp.Clear();
      resp.set_code(static_cast<int>(st.code()));
      resp.set_message(std::string(st.message()));
    }
    return resp;
  }

  absl::Status Compile(const pb::CompileRequest& req, pb::CompileResponse* out) {
    mil::WeightFiles weights;
    for (const pb::WeightRef& w : req.weights()) {
      if (!arena_.Contains(w.bytes().offset(), w.bytes().size())) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight file ", w.path(), " lies outside the arena"));
      }
      absl::Status added =
          weights.Add(w.path(), std::string(arena_.data() + w.bytes().offset(), w.bytes().size()));
      if (!added.ok()) return added;
    }
    absl::StatusOr<mil::Program> program = mil::ParseProgram(req.mil_text());
    if (!program.ok()) return program.status();
    absl::StatusOr<mil::VerifiedProgram> verified =
        mil::VerifyProgram(*std::move(program), std::move(weights));
    if (!verified.ok()) return verified.status();
    std::unique_ptr<backend::CompiledProgram> compiled;
    const std::string test_op = TestOpIn(verified->main());
    if (options_.test_ops && !test_op.empty()) {
      compiled = MakeTestOpProgram(verified->main(), test_op);
    } else {
      backend::CompileOptions options;
      options.numerics = static_cast<backend::NumericsMode>(req.numerics());
      options.ignore_attn_mask = req.ignore_attn_mask();
      options.reference_mode = req.reference_mode();
      options.max_memory_bytes = req.max_memory_bytes();
      absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> c =
          backend_->Compile(*verified, options);
      if (!c.ok()) return c.status();
      compiled = *std::move(c);
    }
    for (const auto& s : compiled->inputs()) FillSignature(s, out->add_inputs());
    for (const auto& s : compiled->outputs()) FillSignature(s, out->add_outputs());
    out->set_memory_bytes(compiled->memory_bytes());
    const uint64_t handle = next_handle_++;
    out->set_handle(handle);
    programs_[handle] = std::move(compiled);
    return absl::OkStatus();
  }

  absl::Status Run(const pb::RunRequest& req, pb::RunResponse* out) {
    auto it = programs_.find(req.handle());
    if (it == programs_.end()) {
      return absl::NotFoundError(absl::StrCat("no program with handle ", req.handle()));
    }
    std::vector<backend::NamedTensor> inputs;
    for (const pb::TensorRef& t : req.inputs()) {
      if (!arena_.Contains(t.bytes().offset(), t.bytes().size())) {
        return absl::InvalidArgumentError(
            absl::StrCat("input ", t.name(), " lies outside the arena"));
      }
      mil::TensorType type;
      type.dtype = static_cast<mil::DType>(t.dtype());
      type.shape.assign(t.shape().begin(), t.shape().end());
      absl::StatusOr<backend::Tensor> tensor = backend::Tensor::FromBytes(
          type, std::string(arena_.data() + t.bytes().offset(), t.bytes().size()));
      if (!tensor.ok()) return tensor.status();
      inputs.push_back({t.name(), *std::move(tensor)});
    }
    absl::StatusOr<backend::RunResult> result = it->second->Run(inputs);
    if (!result.ok()) return result.status();
    return WriteOutputs(req.outputs(), *result, out);
  }

  absl::Status WriteOutputs(const pb::Span& area, const backend::RunResult& result,
                            pb::RunResponse* out) {
    if (!arena_.Contains(area.offset(), area.size())) {
      return absl::InvalidArgumentError("output area lies outside the arena");
    }
    uint64_t offset = area.offset();
    const uint64_t end = area.offset() + area.size();
    for (const backend::NamedTensor& t : result.outputs) {
      const uint64_t n = t.tensor.bytes().size();
      if (n > end - offset) {
        return absl::InternalError(
            absl::StrCat("output ", t.name, " does not fit the output area"));
      }
      std::memcpy(arena_.data() + offset, t.tensor.data(), n);
      pb::Span* s = out->add_outputs();
      s->set_offset(offset);
      s->set_size(n);
      offset += (n + 63) & ~uint64_t{63};
      offset = std::min(offset, end);
    }
    out->set_total_us(result.timing.total_us);
    out->set_compute_us(result.timing.compute_us);
    return absl::OkStatus();
  }

  const WorkerHostOptions options_;
  std::unique_ptr<backend::Backend> backend_;
  Channel channel_;
  SharedArena arena_;
  std::map<uint64_t, std::unique_ptr<backend::CompiledProgram>> programs_;
  uint64_t next_handle_ = 1;
};

// Closes every descriptor except stdio and the ones the worker needs (the front's descriptors
// are close-on-exec, but a library may have leaked one).
void CloseStrayDescriptors(int keep1, int keep2) {
#if defined(__linux__)
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  std::vector<int> fds;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd > 2 && fd != keep1 && fd != keep2 && fd != dirfd(dir)) fds.push_back(fd);
  }
  closedir(dir);
  for (int fd : fds) close(fd);
#else
  const int max = static_cast<int>(std::min<long>(sysconf(_SC_OPEN_MAX), 4096));
  for (int fd = 3; fd < max; ++fd) {
    if (fd != keep1 && fd != keep2) close(fd);
  }
#endif
}

void SetUpProcess(const WorkerHostOptions& options) {
  // No PR_SET_PDEATHSIG: it fires when the *thread* that spawned the worker exits, and any front
  // thread may replace a worker. The heartbeat thread watches the parent instead.
  if (options.parent_pid != 0 && getppid() != options.parent_pid) std::_Exit(0);
  // The front owns the orderly shutdown: a terminal's Ctrl-C or a service manager's SIGTERM to
  // the process group must not kill the worker before the front has drained it.
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  CloseStrayDescriptors(options.channel_fd, options.heartbeat_fd);
}

// Increments the shared heartbeat counter every 100 ms until the process exits, and exits the
// process when the front is gone (re-parented), even if the serving thread is stuck in a device.
void StartHeartbeat(int fd, int64_t parent_pid) {
  if (fd < 0) return;
  absl::StatusOr<SharedArena> page = SharedArena::Map(fd, sizeof(HeartbeatPage));
  if (!page.ok()) {
    spdlog::warn("worker heartbeat disabled: {}", page.status().ToString());
    return;
  }
  auto* arena = new SharedArena(*std::move(page));  // lives until the process exits
  std::thread([arena, parent_pid] {
    auto* beats = &reinterpret_cast<HeartbeatPage*>(arena->data())->beats;
    for (;;) {
      if (parent_pid != 0 && getppid() != parent_pid) std::_Exit(0);
      __atomic_add_fetch(beats, 1, __ATOMIC_RELAXED);
      absl::SleepFor(absl::Milliseconds(100));
    }
  }).detach();
}

}  // namespace

int RunWorker(const WorkerHostOptions& options) {
  SetUpProcess(options);
  StartHeartbeat(options.heartbeat_fd, options.parent_pid);
  absl::StatusOr<std::unique_ptr<backend::Backend>> backend =
      backend::CreateBackend(options.backend, options.registry);
  if (!backend.ok()) {
    Channel channel(options.channel_fd);
    pb::Response r;
    r.mutable_hello()->set_protocol(kWorkerProtocol);
    r.mutable_hello()->set_available(false);
    r.mutable_hello()->set_unavailable_reason(std::string(backend.status().message()));
    (void)channel.Send(r);
    return 0;
  }
  Host host(options, *std::move(backend));
  if (!host.SendHello().ok()) return 1;
  spdlog::debug("worker {} (pid {}) serving", options.backend, getpid());
  return host.Serve();
}

}  // namespace anerd::worker
