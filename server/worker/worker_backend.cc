// WorkerBackend (worker_backend.h): the Backend, the program proxy and the policy — quarantine
// (which deaths count against a program), the compile budget (recycling a worker before it runs
// out) and retry (a request that never reached a live worker runs again in the new one). The
// pool's supervision is worker_supervision.cc; process mechanics process.h; messages wire.h.
#include "server/worker/worker_backend.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/worker/worker_pool.h"
#include "spdlog/spdlog.h"

namespace anerd::worker {

namespace {

constexpr uint64_t kAlign = 64;
constexpr uint64_t kMinArenaBytes = 1 << 20;
constexpr uint64_t kMaxArenaBytes = uint64_t{64} << 30;
// How often a waiting call asks its StopCheck, and how long a worker whose caller gave up may
// still answer before it is killed (a run about to finish is not worth a fresh worker).
constexpr int kStopPollMs = 20;
constexpr int kCancelGraceMs = 100;

constexpr size_t kMaxSupportsCache = 4096;  // answers kept per pool

// What a Supports answer depends on: the op and its operands' names, dtypes and shapes.
std::string QueryKey(const backend::OpQuery& q) {
  std::string key = q.op;
  for (const auto& [name, type] : q.inputs) absl::StrAppend(&key, "|", name, "=", type.ToString());
  absl::StrAppend(&key, "|->");
  for (const mil::TensorType& type : q.outputs) absl::StrAppend(&key, "|", type.ToString());
  return key;
}

uint64_t AlignUp(uint64_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

// Whether a worker's death was its own doing, so that it counts toward quarantining the program
// it was running: a fault signal it raised itself (SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE,
// SIGSYS, SIGTRAP), a nonzero exit, or a kill by the front for hanging (`killed_by_front`). A
// SIGKILL or SIGTERM from outside (the kernel's OOM killer, an operator) is not the program's
// fault and does not count.
bool DeathCausedByWorker(int wait_status, bool killed_by_front) {
  if (killed_by_front) return true;
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status) != 0;
  if (!WIFSIGNALED(wait_status)) return false;
  switch (WTERMSIG(wait_status)) {
    case SIGSEGV:
    case SIGBUS:
    case SIGABRT:
    case SIGILL:
    case SIGFPE:
    case SIGSYS:
    case SIGTRAP:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string WorkerPool::RecordDeath(Process* p, const std::string& what, const std::string& key) {
  absl::MutexLock lock(&mu_);
  WaitForExitLocked(p, absl::Seconds(2));
  if (!p->reaped) {
    if (p->kill_reason.empty()) p->kill_reason = "closed its channel without exiting; killed";
    p->Kill();
    // Never block on waitpid: a process stuck in driver teardown may take long to go; the
    // monitor reaps it from retired_ meanwhile.
    WaitForExitLocked(p, absl::Seconds(2));
  }
  if (p->cancelled) {
    // Killed because its caller gave up: a recycle, neither a crash nor the program's fault.
    if (!p->death_recorded) {
      p->death_recorded = true;
      spdlog::info("{} worker (pid {}) killed: {}; starting a new one", options_.backend, p->pid,
                   p->kill_reason);
      NoteRestartLocked(absl::StrCat("recycled: ", p->kill_reason), false);
    }
    return p->kill_reason;
  }
  const bool own_fault = DeathCausedByWorker(p->wait_status, !p->kill_reason.empty());
  std::string reason = p->kill_reason.empty() ? DescribeWait(p->wait_status) : p->kill_reason;
  if (!own_fault) {
    absl::StrAppend(&reason, " from outside anerd (e.g. the OOM killer); not held against ",
                    what.empty() ? "any program" : "the program");
  }
  if (p->death_recorded) return reason;
  p->death_recorded = true;
  spdlog::error("{} worker (pid {}) died{}: {}; starting a new one", options_.backend, p->pid,
                what.empty() ? " while idle" : absl::StrCat(" while ", what), reason);
  NoteRestartLocked(
      absl::StrCat("crash: ", reason, " while ", what.empty() ? std::string("idle") : what), true);
  if (own_fault && !key.empty() && ++crash_counts_[key] == options_.quarantine_after) {
    spdlog::error("{}: quarantined after crashing the worker {} times", what,
                  options_.quarantine_after);
  }
  return reason;
}

absl::Status WorkerPool::RecycleLocked(const std::string& why) {
  spdlog::info("{} worker (pid {}): {}; moving work to a fresh worker", options_.backend,
               current_->pid, why);
  {
    absl::MutexLock lock(&mu_);
    NoteRestartLocked(absl::StrCat("recycled: ", why), false);
    wire::Request req;
    req.kind = wire::Shutdown{};
    (void)wire::Send(*current_->channel, req);
    current_->retired_at = MonotonicNow();
    current_->death_recorded = true;  // an orderly exit, not a crash
    retired_.push_back(std::move(current_));
  }
  return EnsureRunningLocked();
}

absl::Status WorkerPool::EnsureArena(Process* p, uint64_t bytes) {
  if (bytes > kMaxArenaBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a worker call needs ", bytes, " bytes of shared memory (limit ", kMaxArenaBytes, ")"));
  }
  if (p->arena.valid() && p->arena.size() >= bytes) return absl::OkStatus();
  uint64_t size = std::max<uint64_t>({bytes, 2 * p->arena.size(), kMinArenaBytes});
  size = (size + 4095) & ~uint64_t{4095};
  ANERD_ASSIGN_OR_RETURN(p->arena, SharedArena::Create(size));
  p->arena_unsent = true;
  return absl::OkStatus();
}

absl::Status WorkerPool::AwaitReply(Process* p, const backend::StopCheck& stop) {
  if (!stop) return absl::OkStatus();  // Receive blocks
  while (!p->channel->WaitReadable(kStopPollMs)) {
    absl::Status go_on = stop();
    if (go_on.ok()) continue;
    if (p->channel->WaitReadable(kCancelGraceMs)) return absl::OkStatus();
    return go_on;
  }
  return absl::OkStatus();
}

void WorkerPool::AbandonCall(Process* p, const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    if (p->kill_reason.empty()) {
      p->kill_reason = absl::StrCat("cancelled: its caller gave up on ", p->call_what, " (",
                                    why.message(), "); killed");
      p->cancelled = true;
    }
    p->Kill();
  }
  RecordDeath(p, "", "");
  {
    absl::MutexLock lock(&mu_);
    p->in_call = false;
  }
  absl::Status restarted = EnsureRunningLocked();
  if (!restarted.ok()) spdlog::error("{}", restarted.ToString());
}

absl::StatusOr<wire::Response> WorkerPool::Exchange(const std::string& what, const std::string& key,
                                                    uint64_t arena_bytes, const Fill& fill,
                                                    const backend::StopCheck& stop) {
  ANERD_RETURN_IF_ERROR(EnsureRunningLocked());
  Process* p = current_.get();
  ANERD_RETURN_IF_ERROR(EnsureArena(p, arena_bytes));
  wire::Request req;
  fill(p, &req);
  int pass_fd = -1;
  if (p->arena_unsent) {
    req.new_arena_bytes = p->arena.size();
    pass_fd = p->arena.fd();
  }
  {
    absl::MutexLock lock(&mu_);
    req.release.swap(pending_release_);
    p->in_call = true;
    p->call_started = MonotonicNow();
    p->call_what = what;
  }
  absl::Status sent = wire::Send(*p->channel, req, pass_fd);
  if (sent.code() == absl::StatusCode::kResourceExhausted) {
    // Refused before anything was sent: the worker is fine and must not be treated as lost.
    absl::MutexLock lock(&mu_);
    p->in_call = false;
    pending_release_.insert(pending_release_.begin(), req.release.begin(), req.release.end());
    return absl::ResourceExhaustedError(absl::StrCat(what, ": ", sent.message()));
  }
  if (sent.ok()) {
    if (absl::Status wait = AwaitReply(p, stop); !wait.ok()) {
      p->arena_unsent = false;
      AbandonCall(p, wait);
      return absl::Status(
          wait.code(), absl::StrCat(wait.message(), " (the ", options_.backend,
                                    " worker running it was replaced; the program stays usable)"));
    }
  }
  wire::Response resp;
  absl::Status got = sent.ok() ? wire::Receive(*p->channel, &resp) : sent;
  {
    absl::MutexLock lock(&mu_);
    p->in_call = false;
    if (got.ok()) current_compiles_ = p->compiles_used = resp.compiles_used;
  }
  if (sent.ok()) p->arena_unsent = false;
  if (!sent.ok() && sent.code() != absl::StatusCode::kUnavailable) return sent;
  if (!sent.ok()) {
    RecordDeath(p, "", "");
    return absl::AbortedError("the worker was gone before the request reached it");
  }
  if (!got.ok()) {
    const std::string reason = RecordDeath(p, what, key);
    const int64_t pid = p->pid;
    absl::Status restarted = EnsureRunningLocked();
    if (!restarted.ok()) spdlog::error("{}", restarted.ToString());
    return absl::UnavailableError(absl::StrCat("the ", options_.backend, " worker (pid ", pid,
                                               ") died while ", what, ": ", reason,
                                               "; a new worker has started, retry the request"));
  }
  return resp;
}

absl::Status WorkerPool::Supports(const backend::OpQuery& query) {
  const std::string key = QueryKey(query);
  {
    absl::MutexLock lock(&mu_);
    const bool name_only = query.inputs.empty() && query.outputs.empty();
    if (name_only && supported_.count(query.op) > 0) return absl::OkStatus();
    auto it = supports_cache_.find(key);
    if (it != supports_cache_.end()) return it->second;
    if (std::string why = wire::QueryOutOfBounds(query); !why.empty()) {
      return backend::OpNotSupported(description_.name,
                                     query.op.substr(0, wire::kMaxQueryNameBytes), why);
    }
  }
  return AskSupports(query, key);
}

absl::Status WorkerPool::AskSupports(const backend::OpQuery& query, const std::string& key) {
  absl::StatusOr<wire::Response> resp = absl::AbortedError("not asked");
  {
    absl::MutexLock call(&call_mu_);
    for (int attempt = 0; attempt < 3 && absl::IsAborted(resp.status()); ++attempt) {
      resp =
          Exchange(absl::StrCat("answering Supports for op '", query.op, "'"), "", 0,
                   [&](Process*, wire::Request* req) { req->kind = wire::SupportsRequest{query}; });
    }
  }
  const absl::Status answer = resp.ok() ? resp->status : resp.status();
  absl::MutexLock lock(&mu_);
  if (answer.ok() || absl::IsUnimplemented(answer)) {
    if (supports_cache_.size() >= kMaxSupportsCache) supports_cache_.clear();
    supports_cache_.emplace(key, answer);
    return answer;
  }
  spdlog::warn("{} worker could not answer Supports for op '{}' ({}); answering by op name",
               options_.backend, query.op, answer.ToString());
  if (supported_.count(query.op) > 0) return absl::OkStatus();
  return backend::OpNotSupported(description_.name, query.op,
                                 "the worker's backend does not run it");
}

absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> WorkerPool::Compile(
    const mil::VerifiedProgram& program, const backend::CompileOptions& options) {
  auto compiled = std::make_unique<WorkerProgram>(shared_from_this(), program, options, Describe());
  {
    absl::MutexLock lock(&mu_);
    ANERD_RETURN_IF_ERROR(CheckNotQuarantinedLocked(compiled->key_));
  }
  absl::MutexLock call(&call_mu_);
  ANERD_RETURN_IF_ERROR(CompileLocked(compiled.get(), options.stop, options.pass_dumps));
  return std::unique_ptr<backend::CompiledProgram>(std::move(compiled));
}

absl::Status WorkerPool::CompileLocked(WorkerProgram* program, const backend::StopCheck& stop,
                                       std::vector<backend::PassDump>* dumps) {
  uint64_t bytes = 0;
  for (const auto& [path, data] : program->program_.weights().files())
    bytes += AlignUp(data->size());
  const std::string what = absl::StrCat("compiling program ", program->key_);
  bool budget_recycled = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    ANERD_RETURN_IF_ERROR(EnsureRunningLocked());
    const int64_t budget = Describe().capabilities.compile_budget;
    if (budget > 0 && current_->compiles_used >= budget) {
      ANERD_RETURN_IF_ERROR(
          RecycleLocked(absl::StrCat("compile budget of ", budget, " compiles used")));
    }
    absl::StatusOr<wire::Response> resp = Exchange(
        what, program->key_, bytes,
        [&](Process* p, wire::Request* req) {
          wire::CompileRequest c;
          c.mil_text = program->text_;
          c.options = program->options_;
          c.pass_dumps = dumps != nullptr;
          uint64_t offset = 0;
          for (const auto& [path, data] : program->program_.weights().files()) {
            std::memcpy(p->arena.data() + offset, data->data(), data->size());
            c.weights.push_back({path, {offset, data->size()}});
            offset += AlignUp(data->size());
          }
          req->kind = std::move(c);
        },
        stop);
    if (!resp.ok() && resp.status().code() == absl::StatusCode::kAborted) continue;
    if (!resp.ok()) return resp.status();
    const absl::Status st = resp->status;
    if (st.code() == absl::StatusCode::kResourceExhausted && !budget_recycled &&
        !absl::StrContains(st.message(), backend::kMemoryLimitMarker)) {
      // The device ran out of compile slots before our count said so, or failed near the budget
      // (ane_backend.h): retry once in a fresh worker, where a real rejection shows as such.
      budget_recycled = true;
      ANERD_RETURN_IF_ERROR(RecycleLocked(std::string(st.message())));
      continue;
    }
    ANERD_RETURN_IF_ERROR(st);
    const auto* compiled = std::get_if<wire::CompileResponse>(&resp->kind);
    if (compiled == nullptr) return absl::InternalError("the worker answered a compile wrongly");
    program->generation_ = current_->generation;
    program->handle_ = compiled->handle;
    program->memory_bytes_ = compiled->memory_bytes;
    if (dumps != nullptr) {
      dumps->insert(dumps->end(), compiled->pass_dumps.begin(), compiled->pass_dumps.end());
    }
    if (program->inputs_.empty() && program->outputs_.empty()) {
      program->inputs_ = compiled->inputs;
      program->outputs_ = compiled->outputs;
    }
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("the ", options_.backend, " worker keeps failing to start; retry later"));
}

absl::StatusOr<backend::RunResult> WorkerPool::Run(WorkerProgram* program,
                                                   const std::vector<backend::NamedTensor>& inputs,
                                                   const backend::StopCheck& stop) {
  ANERD_RETURN_IF_ERROR(backend::CheckInputs(program->inputs_, inputs));
  if (stop) ANERD_RETURN_IF_ERROR(stop());
  absl::MutexLock call(&call_mu_);
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<backend::RunResult> r = RunOnce(program, inputs, stop);
    if (!r.ok() && r.status().code() == absl::StatusCode::kAborted) continue;
    return r;
  }
  return absl::UnavailableError(
      absl::StrCat("the ", options_.backend, " worker keeps failing to start; retry later"));
}

absl::StatusOr<backend::RunResult> WorkerPool::RunOnce(
    WorkerProgram* program, const std::vector<backend::NamedTensor>& inputs,
    const backend::StopCheck& stop) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError(absl::StrCat(options_.backend, " is stopping"));
    ANERD_RETURN_IF_ERROR(CheckNotQuarantinedLocked(program->key_));
  }
  ANERD_RETURN_IF_ERROR(EnsureRunningLocked());
  if (program->generation_ != current_->generation) {
    ANERD_RETURN_IF_ERROR(CompileLocked(program, stop));
  }
  uint64_t in_bytes = 0, out_bytes = 0;
  for (const backend::NamedTensor& t : inputs) in_bytes += AlignUp(t.tensor.bytes().size());
  for (const auto& s : program->outputs_) out_bytes += AlignUp(s.type.NumBytes());
  const uint64_t handle = program->handle_;
  const uint64_t generation = program->generation_;
  absl::StatusOr<wire::Response> resp = Exchange(
      absl::StrCat("running program ", program->key_), program->key_, in_bytes + out_bytes,
      [&](Process* p, wire::Request* req) {
        wire::RunRequest r;
        // A worker restarted by EnsureArena's caller has another generation: the handle is
        // then unknown to it and the worker answers NOT_FOUND, which never happens here
        // because Exchange only restarts before this fill runs when the worker was already
        // gone.
        r.handle = p->generation == generation ? handle : 0;
        uint64_t offset = 0;
        for (const backend::NamedTensor& t : inputs) {
          const std::string& b = t.tensor.bytes();
          std::memcpy(p->arena.data() + offset, b.data(), b.size());
          r.inputs.push_back({t.name, t.tensor.type(), {offset, b.size()}});
          offset += AlignUp(b.size());
        }
        r.outputs = {offset, out_bytes};
        req->kind = std::move(r);
      },
      stop);
  if (!resp.ok()) return resp.status();
  if (current_->generation != generation) return absl::AbortedError("worker replaced");
  ANERD_RETURN_IF_ERROR(resp->status);
  const auto* run = std::get_if<wire::RunResponse>(&resp->kind);
  if (run == nullptr || run->outputs.size() != program->outputs_.size()) {
    return absl::InternalError("the worker returned the wrong number of outputs");
  }
  backend::RunResult result;
  const SharedArena& arena = current_->arena;
  for (size_t i = 0; i < run->outputs.size(); ++i) {
    const wire::Span& s = run->outputs[i];
    const backend::TensorSignature& sig = program->outputs_[i];
    if (!arena.Contains(s.offset, s.size) || s.size != sig.type.NumBytes()) {
      return absl::InternalError(absl::StrCat("the worker returned a bad span for ", sig.name));
    }
    ANERD_ASSIGN_OR_RETURN(
        backend::Tensor t,
        backend::Tensor::FromBytes(sig.type, std::string(arena.data() + s.offset, s.size)));
    result.outputs.push_back({sig.name, std::move(t)});
  }
  result.timing.total_us = run->total_us;
  result.timing.compute_us = run->compute_us;
  result.timing.hardware_us = run->hardware_us;
  result.timing.hardware_simulated = run->hardware_simulated;
  return result;
}

void WorkerPool::Release(uint64_t generation, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  if (current_ != nullptr && current_->generation == generation && pending_release_.size() < 4096) {
    pending_release_.push_back(handle);
  }
}

WorkerBackend::WorkerBackend(std::shared_ptr<WorkerPool> pool) : pool_(std::move(pool)) {}

WorkerBackend::~WorkerBackend() { pool_->Stop(); }

absl::StatusOr<std::unique_ptr<WorkerBackend>> WorkerBackend::Start(const WorkerOptions& options) {
  auto pool = std::make_shared<WorkerPool>(options);
  ANERD_RETURN_IF_ERROR(pool->StartFirst());
  return std::unique_ptr<WorkerBackend>(new WorkerBackend(std::move(pool)));
}

backend::BackendDescription WorkerBackend::Describe() const { return pool_->Describe(); }
absl::Status WorkerBackend::Supports(const backend::OpQuery& query) const {
  return pool_->Supports(query);
}
absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> WorkerBackend::Compile(
    const mil::VerifiedProgram& program, const backend::CompileOptions& options) {
  return pool_->Compile(program, options);
}
int64_t WorkerBackend::compiles_used() const { return pool_->compiles_used(); }
WorkerStatus WorkerBackend::Status() const { return pool_->Status(); }
int64_t WorkerBackend::pid() const { return pool_->pid(); }

}  // namespace anerd::worker
