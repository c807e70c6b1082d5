#include "server/worker/worker_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <mach-o/dyld.h>
#endif

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "anerd/worker/v1/worker.pb.h"
#include "common/hash.h"
#include "common/mil/printer.h"
#include "common/status_macros.h"
#include "server/worker/channel.h"
#include "server/worker/worker_host.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace anerd::worker {

namespace pb = ::anerd::worker::v1;

namespace {

constexpr uint64_t kAlign = 64;
constexpr uint64_t kMinArenaBytes = 1 << 20;
constexpr uint64_t kMaxArenaBytes = uint64_t{64} << 30;
constexpr size_t kMaxReasons = 8;

uint64_t AlignUp(uint64_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

// Supervision deadlines use a monotonic clock: a wall-clock step or a system sleep must not look
// like a worker that stopped beating (the value is only ever compared with other MonotonicNow()s).
absl::Time MonotonicNow() {
  return absl::UnixEpoch() + absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

std::string DescribeWait(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return absl::StrCat("killed by signal ", sig, " (", name != nullptr ? name : "?", ")");
  }
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  return "stopped unexpectedly";
}

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

// Moves `fd` to a number >= 10 (close-on-exec) so that dup2 onto 3/4 in the child never maps a
// descriptor onto itself (which would keep its close-on-exec flag).
int MoveHigh(int fd) {
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return high;
}

}  // namespace

// One worker process as the front sees it.
struct Process {
  pid_t pid = 0;
  uint64_t generation = 0;
  absl::Time started;
  std::unique_ptr<Channel> channel;  // used under the pool's call_mu_
  SharedArena arena;                 // front mapping of the current arena (call_mu_)
  bool arena_unsent = false;         // the worker has not been given `arena` yet (call_mu_)
  SharedArena heartbeat;
  int64_t compiles_used = 0;  // as last reported (call_mu_; copied under mu_ for status)
  // Supervision, guarded by the pool's mu_.
  uint64_t last_beats = 0;
  absl::Time last_beat_change;  // MonotonicNow(), like call_started and retired_at
  bool in_call = false;
  absl::Time call_started;
  std::string call_what;
  std::string kill_reason;  // why the monitor killed it
  bool reaped = false;
  int wait_status = 0;
  bool death_recorded = false;
  absl::Time retired_at = absl::InfiniteFuture();
};

class WorkerProgram;

class WorkerPool : public std::enable_shared_from_this<WorkerPool> {
 public:
  explicit WorkerPool(WorkerOptions options) : options_(std::move(options)) {}
  ~WorkerPool() { Stop(); }

  absl::Status StartFirst();
  void Stop();

  backend::BackendDescription Describe() const {
    absl::MutexLock lock(&mu_);
    return description_;
  }
  bool Supports(absl::string_view op) const {
    absl::MutexLock lock(&mu_);
    return supported_.count(std::string(op)) > 0;
  }
  int64_t compiles_used() const {
    absl::MutexLock lock(&mu_);
    return current_ != nullptr ? current_compiles_ : 0;
  }
  int64_t pid() const {
    absl::MutexLock lock(&mu_);
    return current_ != nullptr && !current_->reaped ? current_->pid : 0;
  }
  WorkerStatus Status() const;

  absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> Compile(
      const mil::VerifiedProgram& program, const backend::CompileOptions& options);
  absl::StatusOr<backend::RunResult> Run(WorkerProgram* program,
                                         const std::vector<backend::NamedTensor>& inputs);
  void Release(uint64_t generation, uint64_t handle);

 private:
  using Fill = std::function<void(Process*, pb::Request*)>;

  absl::StatusOr<std::unique_ptr<Process>> Spawn(uint64_t generation);
  absl::Status EnsureRunningLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Waits for a new worker's Hello: UNAVAILABLE with its reason when it cannot offer the backend,
  // another error when it did not answer properly.
  absl::StatusOr<pb::Hello> AwaitHello(Process* p);
  void AdoptHelloLocked(const pb::Hello& hello) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecycleLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  absl::Status CompileLocked(WorkerProgram* program) ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  absl::StatusOr<backend::RunResult> RunOnce(WorkerProgram* program,
                                             const std::vector<backend::NamedTensor>& inputs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Sends one request and waits for its reply. ABORTED when the request never reached a live
  // worker (a new one has been started: the caller retries); UNAVAILABLE when the worker died
  // while handling it.
  absl::StatusOr<pb::Response> Exchange(const std::string& what, const std::string& key,
                                        uint64_t arena_bytes, const Fill& fill)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  absl::Status EnsureArena(Process* p, uint64_t bytes);
  // Waits for `p` to exit (killing it after a grace period) and records why, once.
  std::string RecordDeath(Process* p, const std::string& what, const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  void ReapLocked(Process* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reaps `p` if it exits within `limit`, releasing mu_ while it waits.
  void WaitForExitLocked(Process* p, absl::Duration limit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteRestartLocked(std::string reason, bool crash) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FAILED_PRECONDITION once the program `key` crashed the worker quarantine_after times.
  absl::Status CheckNotQuarantinedLocked(const std::string& key) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    auto it = crash_counts_.find(key);
    if (it == crash_counts_.end() || it->second < options_.quarantine_after) {
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(
        absl::StrCat("program ", key, " is quarantined: it crashed the ", options_.backend,
                     " worker ", options_.quarantine_after, " times"));
  }
  void MonitorLoop();
  void MonitorTick();

  const WorkerOptions options_;
  absl::Mutex call_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  // Replaced only with both locks held; the calling thread may read it with call_mu_ alone.
  std::unique_ptr<Process> current_;
  uint64_t generation_ ABSL_GUARDED_BY(call_mu_) = 0;
  backend::BackendDescription description_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> supported_ ABSL_GUARDED_BY(mu_);
  int64_t current_compiles_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Process>> retired_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> pending_release_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> crash_counts_ ABSL_GUARDED_BY(mu_);
  uint64_t restarts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t crashes_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::string> reasons_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_eager_restart_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread monitor_;
};

// A program compiled in (some generation of) the worker. Generation and handle change when the
// program is recompiled in a newer worker; both are guarded by the pool's call_mu_.
class WorkerProgram : public backend::CompiledProgram {
 public:
  WorkerProgram(std::shared_ptr<WorkerPool> pool, mil::VerifiedProgram program,
                backend::CompileOptions options)
      : pool_(std::move(pool)), program_(std::move(program)), options_(options) {
    text_ = mil::PrintProgram(program_.program());
    std::string key_material = absl::StrCat(text_, "\n", static_cast<int>(options.numerics),
                                            options.ignore_attn_mask, options.reference_mode);
    for (const auto& [path, bytes] : program_.weights().files()) {
      absl::StrAppend(&key_material, "\n", path, ":", bytes->size());
    }
    key_ = Sha256Hex(key_material).substr(0, 16);
  }
  ~WorkerProgram() override {
    if (handle_ != 0) pool_->Release(generation_, handle_);
  }
  const std::vector<backend::TensorSignature>& inputs() const override { return inputs_; }
  const std::vector<backend::TensorSignature>& outputs() const override { return outputs_; }
  uint64_t memory_bytes() const override { return memory_bytes_; }
  absl::StatusOr<backend::RunResult> Run(const std::vector<backend::NamedTensor>& in) override {
    return pool_->Run(this, in);
  }

 private:
  friend class WorkerPool;
  std::shared_ptr<WorkerPool> pool_;
  mil::VerifiedProgram program_;
  backend::CompileOptions options_;
  std::string text_;
  std::string key_;  // identifies the program for quarantine
  uint64_t generation_ = 0;
  uint64_t handle_ = 0;
  uint64_t memory_bytes_ = 0;  // as the worker planned it
  std::vector<backend::TensorSignature> inputs_, outputs_;
};

namespace {

std::vector<backend::TensorSignature> Signatures(
    const google::protobuf::RepeatedPtrField<pb::Signature>& in) {
  std::vector<backend::TensorSignature> out;
  for (const pb::Signature& s : in) {
    mil::TensorType type;
    type.dtype = static_cast<mil::DType>(s.dtype());
    type.shape.assign(s.shape().begin(), s.shape().end());
    out.push_back({s.name(), type});
  }
  return out;
}

backend::BackendDescription DescriptionFromHello(const pb::Hello& h) {
  backend::BackendDescription d;
  d.name = h.name();
  d.version = h.version();
  d.device = h.device();
  d.capabilities.fp16_compute = h.fp16_compute();
  d.capabilities.honors_attn_mask = h.honors_attn_mask();
  d.capabilities.multiple_inputs = h.multiple_inputs();
  d.capabilities.compile_budget = h.compile_budget();
  for (const pb::Fact& f : h.facts()) d.facts.emplace_back(f.key(), f.value());
  d.facts.emplace_back("isolation", "worker process");
  return d;
}

absl::Status StatusFromResponse(const pb::Response& r) {
  if (r.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Process>> WorkerPool::Spawn(uint64_t generation) {
  int front_fd = -1, child_fd = -1;
  ANERD_RETURN_IF_ERROR(MakeSocketPair(&front_fd, &child_fd));
  child_fd = MoveHigh(child_fd);
  auto p = std::make_unique<Process>();
  p->channel = std::make_unique<Channel>(front_fd);
  absl::StatusOr<SharedArena> heartbeat = SharedArena::Create(sizeof(HeartbeatPage));
  const int hb_fd = heartbeat.ok() ? fcntl(heartbeat->fd(), F_DUPFD_CLOEXEC, 10) : -1;
  if (child_fd < 0 || hb_fd < 0) {
    if (child_fd >= 0) close(child_fd);
    if (hb_fd >= 0) close(hb_fd);
    return heartbeat.ok() ? absl::ResourceExhaustedError("out of file descriptors")
                          : heartbeat.status();
  }
  p->heartbeat = *std::move(heartbeat);
  std::vector<std::string> args = {options_.binary,
                                   absl::StrCat("--worker=", options_.backend),
                                   "--worker_channel_fd=3",
                                   "--worker_heartbeat_fd=4",
                                   absl::StrCat("--worker_parent_pid=", getpid()),
                                   absl::StrCat("--compile_budget=", options_.compile_budget),
                                   absl::StrCat("--log_level=", options_.log_level)};
  if (options_.test_ops) args.push_back("--testonly_ops");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_fd, 3);
  posix_spawn_file_actions_adddup2(&actions, hb_fd, 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int rc =
      posix_spawn(&p->pid, options_.binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(child_fd);
  close(hb_fd);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start a ", options_.backend, " worker (",
                                            options_.binary, "): ", std::strerror(rc)));
  }
  p->generation = generation;
  p->started = absl::Now();
  p->last_beat_change = MonotonicNow();
  return p;
}

absl::StatusOr<pb::Hello> WorkerPool::AwaitHello(Process* p) {
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.start_timeout));
  pb::Response r;
  ANERD_RETURN_IF_ERROR(p->channel->WaitReadable(timeout_ms)
                            ? p->channel->Receive(&r)
                            : absl::DeadlineExceededError("no reply within the start timeout"));
  if (r.hello().protocol() != kWorkerProtocol) {
    return absl::InternalError(absl::StrCat("worker speaks protocol ", r.hello().protocol()));
  }
  if (!r.hello().available()) return absl::UnavailableError(r.hello().unavailable_reason());
  return r.hello();
}

void WorkerPool::AdoptHelloLocked(const pb::Hello& hello) {
  description_ = DescriptionFromHello(hello);
  supported_.clear();
  supported_.insert(hello.supported_ops().begin(), hello.supported_ops().end());
}

absl::Status WorkerPool::StartFirst() {
  absl::MutexLock call(&call_mu_);
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<Process> p, Spawn(++generation_));
  absl::StatusOr<pb::Hello> hello = AwaitHello(p.get());
  if (!hello.ok()) {
    kill(p->pid, SIGKILL);
    int status = 0;
    waitpid(p->pid, &status, 0);
    if (hello.status().code() == absl::StatusCode::kUnavailable) return hello.status();
    return absl::InternalError(absl::StrCat("the ", options_.backend,
                                            " worker did not start: ", hello.status().message(),
                                            " (", DescribeWait(status), ")"));
  }
  {
    absl::MutexLock lock(&mu_);
    AdoptHelloLocked(*hello);
    current_ = std::move(p);
    current_compiles_ = 0;
  }
  spdlog::info("{} worker started (pid {})", options_.backend, current_->pid);
  monitor_ = std::thread([this] { MonitorLoop(); });
  return absl::OkStatus();
}

void WorkerPool::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (monitor_.joinable()) monitor_.join();
  absl::MutexLock call(&call_mu_);
  absl::MutexLock lock(&mu_);
  if (current_ != nullptr) {
    retired_.push_back(std::move(current_));
  }
  for (auto& p : retired_) {
    if (p->reaped) continue;
    pb::Request req;
    req.set_shutdown(true);
    if (p->channel != nullptr) (void)p->channel->Send(req);
    p->channel.reset();
  }
  for (auto& p : retired_) {
    WaitForExitLocked(p.get(), absl::Seconds(2));
    if (!p->reaped) {
      kill(p->pid, SIGKILL);
      WaitForExitLocked(p.get(), absl::Seconds(2));
    }
  }
  retired_.clear();
}

void WorkerPool::WaitForExitLocked(Process* p, absl::Duration limit) {
  const absl::Time give_up = MonotonicNow() + limit;
  for (ReapLocked(p); !p->reaped && MonotonicNow() < give_up; ReapLocked(p)) {
    mu_.Unlock();
    absl::SleepFor(absl::Milliseconds(5));
    mu_.Lock();
  }
}

void WorkerPool::ReapLocked(Process* p) {
  if (p->reaped) return;
  int status = 0;
  const pid_t r = waitpid(p->pid, &status, WNOHANG);
  if (r == p->pid || (r < 0 && errno == ECHILD)) {
    p->reaped = true;
    p->wait_status = status;
  }
}

void WorkerPool::NoteRestartLocked(std::string reason, bool crash) {
  ++restarts_;
  if (crash) ++crashes_;
  reasons_.push_back(std::move(reason));
  while (reasons_.size() > kMaxReasons) reasons_.pop_front();
}

std::string WorkerPool::RecordDeath(Process* p, const std::string& what, const std::string& key) {
  absl::MutexLock lock(&mu_);
  WaitForExitLocked(p, absl::Seconds(2));
  if (!p->reaped) {
    if (p->kill_reason.empty()) p->kill_reason = "closed its channel without exiting; killed";
    kill(p->pid, SIGKILL);
    // Never block on waitpid: a process stuck in driver teardown may take long to go; the
    // monitor reaps it from retired_ meanwhile.
    WaitForExitLocked(p, absl::Seconds(2));
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

absl::Status WorkerPool::EnsureRunningLocked() {
  Process* p = current_.get();
  bool dead = p == nullptr;
  if (p != nullptr) {
    absl::MutexLock lock(&mu_);
    ReapLocked(p);
    dead = p->reaped || stopping_;
    if (stopping_) return absl::UnavailableError(absl::StrCat(options_.backend, " is stopping"));
  }
  if (!dead) return absl::OkStatus();
  if (p != nullptr) RecordDeath(p, "", "");
  absl::StatusOr<std::unique_ptr<Process>> fresh = Spawn(++generation_);
  if (!fresh.ok()) return absl::UnavailableError(fresh.status().message());
  absl::StatusOr<pb::Hello> hello = AwaitHello(fresh->get());
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Process> old = std::move(current_);
  current_ = *std::move(fresh);
  current_compiles_ = 0;
  pending_release_.clear();
  if (old != nullptr) {
    old->retired_at = MonotonicNow();
    retired_.push_back(std::move(old));
  }
  if (!hello.ok()) {
    current_->kill_reason = "failed to start";
    kill(current_->pid, SIGKILL);
    return absl::UnavailableError(absl::StrCat("cannot restart the ", options_.backend,
                                               " worker: ", hello.status().message()));
  }
  // The binary may have been upgraded on disk since the first worker: take what this one offers.
  AdoptHelloLocked(*hello);
  spdlog::info("{} worker generation {} started (pid {})", options_.backend, generation_,
               current_->pid);
  return absl::OkStatus();
}

absl::Status WorkerPool::RecycleLocked(const std::string& why) {
  spdlog::info("{} worker (pid {}): {}; moving work to a fresh worker", options_.backend,
               current_->pid, why);
  {
    absl::MutexLock lock(&mu_);
    NoteRestartLocked(absl::StrCat("recycled: ", why), false);
    pb::Request req;
    req.set_shutdown(true);
    (void)current_->channel->Send(req);
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

absl::StatusOr<pb::Response> WorkerPool::Exchange(const std::string& what, const std::string& key,
                                                  uint64_t arena_bytes, const Fill& fill) {
  ANERD_RETURN_IF_ERROR(EnsureRunningLocked());
  Process* p = current_.get();
  ANERD_RETURN_IF_ERROR(EnsureArena(p, arena_bytes));
  pb::Request req;
  fill(p, &req);
  if (req.ByteSizeLong() > kMaxFrameBytes) {
    // Refused before anything is sent: the worker is fine and must not be treated as lost.
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": the request's control message is ", req.ByteSizeLong(),
                     " bytes, above the worker channel's limit of ", kMaxFrameBytes));
  }
  int pass_fd = -1;
  if (p->arena_unsent) {
    req.set_new_arena_bytes(p->arena.size());
    pass_fd = p->arena.fd();
  }
  {
    absl::MutexLock lock(&mu_);
    for (uint64_t h : pending_release_) req.add_release(h);
    pending_release_.clear();
    p->in_call = true;
    p->call_started = MonotonicNow();
    p->call_what = what;
  }
  absl::Status sent = p->channel->Send(req, pass_fd);
  pb::Response resp;
  absl::Status got = sent.ok() ? p->channel->Receive(&resp) : sent;
  {
    absl::MutexLock lock(&mu_);
    p->in_call = false;
    if (got.ok()) current_compiles_ = p->compiles_used = resp.compiles_used();
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

absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> WorkerPool::Compile(
    const mil::VerifiedProgram& program, const backend::CompileOptions& options) {
  auto compiled = std::make_unique<WorkerProgram>(shared_from_this(), program, options);
  {
    absl::MutexLock lock(&mu_);
    ANERD_RETURN_IF_ERROR(CheckNotQuarantinedLocked(compiled->key_));
  }
  absl::MutexLock call(&call_mu_);
  ANERD_RETURN_IF_ERROR(CompileLocked(compiled.get()));
  return std::unique_ptr<backend::CompiledProgram>(std::move(compiled));
}

absl::Status WorkerPool::CompileLocked(WorkerProgram* program) {
  uint64_t bytes = 0;
  for (const auto& [path, data] : program->program_.weights().files())
    bytes += AlignUp(data->size());
  const std::string what = absl::StrCat("compiling program ", program->key_);
  for (int attempt = 0; attempt < 3; ++attempt) {
    ANERD_RETURN_IF_ERROR(EnsureRunningLocked());
    const int64_t budget = Describe().capabilities.compile_budget;
    if (budget > 0 && current_->compiles_used >= budget) {
      ANERD_RETURN_IF_ERROR(
          RecycleLocked(absl::StrCat("compile budget of ", budget, " compiles used")));
    }
    absl::StatusOr<pb::Response> resp =
        Exchange(what, program->key_, bytes, [&](Process* p, pb::Request* req) {
          pb::CompileRequest* c = req->mutable_compile();
          c->set_mil_text(program->text_);
          c->set_numerics(static_cast<int>(program->options_.numerics));
          c->set_ignore_attn_mask(program->options_.ignore_attn_mask);
          c->set_reference_mode(program->options_.reference_mode);
          c->set_max_memory_bytes(program->options_.max_memory_bytes);
          uint64_t offset = 0;
          for (const auto& [path, data] : program->program_.weights().files()) {
            std::memcpy(p->arena.data() + offset, data->data(), data->size());
            pb::WeightRef* w = c->add_weights();
            w->set_path(path);
            w->mutable_bytes()->set_offset(offset);
            w->mutable_bytes()->set_size(data->size());
            offset += AlignUp(data->size());
          }
        });
    if (!resp.ok() && resp.status().code() == absl::StatusCode::kAborted) continue;
    if (!resp.ok()) return resp.status();
    const absl::Status st = StatusFromResponse(*resp);
    if (st.code() == absl::StatusCode::kResourceExhausted && attempt == 0 &&
        !absl::StrContains(st.message(), backend::kMemoryLimitMarker)) {
      // The device ran out of compile slots before our count said so: move to a fresh worker.
      ANERD_RETURN_IF_ERROR(RecycleLocked(std::string(st.message())));
      continue;
    }
    ANERD_RETURN_IF_ERROR(st);
    program->generation_ = current_->generation;
    program->handle_ = resp->compile().handle();
    program->memory_bytes_ = resp->compile().memory_bytes();
    if (program->inputs_.empty() && program->outputs_.empty()) {
      program->inputs_ = Signatures(resp->compile().inputs());
      program->outputs_ = Signatures(resp->compile().outputs());
    }
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("the ", options_.backend, " worker keeps failing to start; retry later"));
}

absl::StatusOr<backend::RunResult> WorkerPool::Run(
    WorkerProgram* program, const std::vector<backend::NamedTensor>& inputs) {
  ANERD_RETURN_IF_ERROR(backend::CheckInputs(program->inputs_, inputs));
  absl::MutexLock call(&call_mu_);
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<backend::RunResult> r = RunOnce(program, inputs);
    if (!r.ok() && r.status().code() == absl::StatusCode::kAborted) continue;
    return r;
  }
  return absl::UnavailableError(
      absl::StrCat("the ", options_.backend, " worker keeps failing to start; retry later"));
}

absl::StatusOr<backend::RunResult> WorkerPool::RunOnce(
    WorkerProgram* program, const std::vector<backend::NamedTensor>& inputs) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError(absl::StrCat(options_.backend, " is stopping"));
    ANERD_RETURN_IF_ERROR(CheckNotQuarantinedLocked(program->key_));
  }
  ANERD_RETURN_IF_ERROR(EnsureRunningLocked());
  if (program->generation_ != current_->generation) {
    ANERD_RETURN_IF_ERROR(CompileLocked(program));
  }
  uint64_t in_bytes = 0, out_bytes = 0;
  for (const backend::NamedTensor& t : inputs) in_bytes += AlignUp(t.tensor.bytes().size());
  for (const auto& s : program->outputs_) out_bytes += AlignUp(s.type.NumBytes());
  const uint64_t handle = program->handle_;
  const uint64_t generation = program->generation_;
  absl::StatusOr<pb::Response> resp =
      Exchange(absl::StrCat("running program ", program->key_), program->key_, in_bytes + out_bytes,
               [&](Process* p, pb::Request* req) {
                 pb::RunRequest* r = req->mutable_run();
                 // A worker restarted by EnsureArena's caller has another generation: the handle is
                 // then unknown to it and the worker answers NOT_FOUND, which never happens here
                 // because Exchange only restarts before this fill runs when the worker was already
                 // gone.
                 r->set_handle(p->generation == generation ? handle : 0);
                 uint64_t offset = 0;
                 for (const backend::NamedTensor& t : inputs) {
                   const std::string& b = t.tensor.bytes();
                   std::memcpy(p->arena.data() + offset, b.data(), b.size());
                   pb::TensorRef* ref = r->add_inputs();
                   ref->set_name(t.name);
                   ref->set_dtype(static_cast<int>(t.tensor.dtype()));
                   for (int64_t d : t.tensor.shape()) ref->add_shape(d);
                   ref->mutable_bytes()->set_offset(offset);
                   ref->mutable_bytes()->set_size(b.size());
                   offset += AlignUp(b.size());
                 }
                 r->mutable_outputs()->set_offset(offset);
                 r->mutable_outputs()->set_size(out_bytes);
               });
  if (!resp.ok()) return resp.status();
  if (current_->generation != generation) return absl::AbortedError("worker replaced");
  ANERD_RETURN_IF_ERROR(StatusFromResponse(*resp));
  const pb::RunResponse& run = resp->run();
  if (run.outputs_size() != static_cast<int>(program->outputs_.size())) {
    return absl::InternalError("the worker returned the wrong number of outputs");
  }
  backend::RunResult result;
  const SharedArena& arena = current_->arena;
  for (int i = 0; i < run.outputs_size(); ++i) {
    const pb::Span& s = run.outputs(i);
    const backend::TensorSignature& sig = program->outputs_[i];
    if (!arena.Contains(s.offset(), s.size()) || s.size() != sig.type.NumBytes()) {
      return absl::InternalError(absl::StrCat("the worker returned a bad span for ", sig.name));
    }
    ANERD_ASSIGN_OR_RETURN(
        backend::Tensor t,
        backend::Tensor::FromBytes(sig.type, std::string(arena.data() + s.offset(), s.size())));
    result.outputs.push_back({sig.name, std::move(t)});
  }
  result.timing.total_us = run.total_us();
  result.timing.compute_us = run.compute_us();
  return result;
}

void WorkerPool::Release(uint64_t generation, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  if (current_ != nullptr && current_->generation == generation && pending_release_.size() < 4096) {
    pending_release_.push_back(handle);
  }
}

WorkerStatus WorkerPool::Status() const {
  absl::MutexLock lock(&mu_);
  WorkerStatus s;
  s.backend = options_.backend;
  if (current_ != nullptr && !current_->reaped) {
    s.pid = current_->pid;
    s.generation = current_->generation;
    s.uptime_seconds = absl::ToDoubleSeconds(absl::Now() - current_->started);
    s.activity =
        current_->in_call
            ? absl::StrCat(current_->call_what, " for ",
                           absl::FormatDuration(absl::Trunc(MonotonicNow() - current_->call_started,
                                                            absl::Milliseconds(1))))
            : "idle";
  } else {
    s.activity = "starting";
  }
  s.compiles_used = current_compiles_;
  s.compile_budget = description_.capabilities.compile_budget;
  s.restarts = restarts_;
  s.crashes = crashes_;
  for (const auto& [key, n] : crash_counts_) s.quarantined += n >= options_.quarantine_after;
  s.recent_restart_reasons.assign(reasons_.begin(), reasons_.end());
  return s;
}

void WorkerPool::MonitorLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(100))) return;
    }
    MonitorTick();
  }
}

void WorkerPool::MonitorTick() {
  bool idle_death = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = MonotonicNow();
    Process* p = current_.get();
    if (p != nullptr && !p->reaped) {
      ReapLocked(p);
      if (p->reaped) {
        // Replaced eagerly at most once a second: a worker that keeps dying right after it
        // starts is then replaced only when a request needs it, not in a tight loop.
        idle_death = !p->in_call && now - last_eager_restart_ > absl::Seconds(1);
        if (idle_death) last_eager_restart_ = now;
      } else if (p->kill_reason.empty()) {
        const uint64_t beats = __atomic_load_n(
            &reinterpret_cast<HeartbeatPage*>(p->heartbeat.data())->beats, __ATOMIC_RELAXED);
        if (beats != p->last_beats) {
          p->last_beats = beats;
          p->last_beat_change = now;
        } else if (now - p->last_beat_change > options_.heartbeat_timeout) {
          p->kill_reason =
              absl::StrCat("no heartbeat for ", absl::FormatDuration(options_.heartbeat_timeout),
                           " (hung or stopped); killed");
        }
        if (p->in_call && now - p->call_started > options_.call_timeout) {
          p->kill_reason =
              absl::StrCat(p->call_what, " ran longer than ",
                           absl::FormatDuration(options_.call_timeout), " (hung); killed");
        }
        if (!p->kill_reason.empty()) {
          spdlog::error("{} worker (pid {}): {}", options_.backend, p->pid, p->kill_reason);
          kill(p->pid, SIGKILL);
        }
      }
    }
    for (auto it = retired_.begin(); it != retired_.end();) {
      ReapLocked(it->get());
      if (!(*it)->reaped && now - (*it)->retired_at > absl::Seconds(5)) kill((*it)->pid, SIGKILL);
      it = (*it)->reaped ? retired_.erase(it) : it + 1;
    }
  }
  // A worker that died while idle is replaced now rather than on the next request, unless a
  // request is using the channel (it will notice and replace it itself).
  if (idle_death && call_mu_.TryLock()) {
    absl::Status st = EnsureRunningLocked();
    if (!st.ok()) spdlog::error("{}", st.ToString());
    call_mu_.Unlock();
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
bool WorkerBackend::Supports(absl::string_view op) const { return pool_->Supports(op); }
absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> WorkerBackend::Compile(
    const mil::VerifiedProgram& program, const backend::CompileOptions& options) {
  return pool_->Compile(program, options);
}
int64_t WorkerBackend::compiles_used() const { return pool_->compiles_used(); }
WorkerStatus WorkerBackend::Status() const { return pool_->Status(); }
int64_t WorkerBackend::pid() const { return pool_->pid(); }

std::string SelfExecutablePath() {
#if defined(__APPLE__)
  char buf[PATH_MAX];
  uint32_t size = sizeof(buf);
  if (_NSGetExecutablePath(buf, &size) != 0) return "";
  char real[PATH_MAX];
  return realpath(buf, real) != nullptr ? std::string(real) : std::string(buf);
#else
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
#endif
}

}  // namespace anerd::worker
