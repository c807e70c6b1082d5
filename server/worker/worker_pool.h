// WorkerPool and WorkerProgram: the machinery behind WorkerBackend (worker_backend.h), shared by
// its two source files and by nothing else:
//  * worker_supervision.cc: starting, replacing, stopping and watching worker processes (the
//    monitor thread: heartbeats, call timeouts, idle deaths) and the pool's status;
//  * worker_backend.cc: the Backend, the program proxy and the policy (quarantine, compile
//    budget, retry) and the calls themselves.
// Process-level mechanics are process.h's; messages are wire.h's.
//
// Locks: call_mu_ serialises calls into the current worker (one in flight); mu_ guards the
// supervision state and is taken inside call_mu_, never the other way round.
#ifndef ANERD_SERVER_WORKER_WORKER_POOL_H_
#define ANERD_SERVER_WORKER_WORKER_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/backend/backend.h"
#include "server/cache/kernel_key.h"
#include "server/worker/process.h"
#include "server/worker/wire.h"
#include "server/worker/worker_backend.h"

namespace anerd::worker {

class WorkerProgram;

class WorkerPool : public std::enable_shared_from_this<WorkerPool> {
 public:
  explicit WorkerPool(WorkerOptions options)
      : options_(std::move(options)), ane_rules_(options_.ane_rules) {}
  ~WorkerPool() { Stop(); }

  absl::Status StartFirst();
  void Stop();

  backend::BackendDescription Describe() const {
    absl::MutexLock lock(&mu_);
    return description_;
  }
  // The worker's backend's own answer (worker_backend.h): a name-only query for a listed op is
  // answered from the hello; any other query is asked of the worker once and cached per (op,
  // operand types). UNIMPLEMENTED naming the bound for a query outside the wire's bounds
  // (wire::QueryOutOfBounds); when the worker cannot answer, the hello's list decides.
  absl::Status Supports(const backend::OpQuery& query);
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
  // Runs `program`; `stop` (may be empty) is polled while the worker works: when it says stop
  // and the worker has not answered within a short grace, the worker is killed and replaced
  // (restart reason "recycled: cancelled ...", not a crash, not counted toward quarantine) and
  // the run returns stop's status.
  absl::StatusOr<backend::RunResult> Run(WorkerProgram* program,
                                         const std::vector<backend::NamedTensor>& inputs,
                                         const backend::StopCheck& stop);
  void Release(uint64_t generation, uint64_t handle);
  // worker_rules.cc (WorkerBackend::ProbeDeviceRules / UseMeasuredRules).
  absl::StatusOr<backend::RuleProbeReport> ProbeRules();
  absl::Status UseRules(const mil::AneRuleOverrides& overrides);

 private:
  using Fill = std::function<void(Process*, wire::Request*)>;

  absl::StatusOr<std::unique_ptr<Process>> Spawn(uint64_t generation);
  absl::Status EnsureRunningLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Waits for a new worker's Hello: UNAVAILABLE with its reason when it cannot offer the backend,
  // another error when it did not answer properly.
  absl::StatusOr<wire::Hello> AwaitHello(Process* p);
  void AdoptHelloLocked(const wire::Hello& hello) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecycleLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Compiles `program` in the current worker. `stop` as in Run (the caller's, never the one
  // stored with the program: a lazy recompile runs for a later caller). With `dumps`, the
  // worker's pass dumps are appended to it (only the first compile of a program asks for them,
  // never a lazy recompile).
  absl::Status CompileLocked(WorkerProgram* program, const backend::StopCheck& stop,
                             std::vector<backend::PassDump>* dumps = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Supports when neither the hello nor the cache answers: one round trip to the worker.
  absl::Status AskSupports(const backend::OpQuery& query, const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_, call_mu_);
  absl::StatusOr<backend::RunResult> RunOnce(WorkerProgram* program,
                                             const std::vector<backend::NamedTensor>& inputs,
                                             const backend::StopCheck& stop)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Sends one request and waits for its reply, polling `stop` (may be empty) meanwhile. ABORTED
  // when the request never reached a live worker (a new one has been started: the caller
  // retries); UNAVAILABLE when the worker died while handling it; stop's status when the caller
  // gave up (AbandonCall).
  absl::StatusOr<wire::Response> Exchange(const std::string& what, const std::string& key,
                                          uint64_t arena_bytes, const Fill& fill,
                                          const backend::StopCheck& stop = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  // Waits for `p`'s reply to the call in flight while `stop` lets it: OK when the reply is
  // readable, stop's status when the caller gave up first.
  absl::Status AwaitReply(Process* p, const backend::StopCheck& stop);
  // The caller of `p`'s call in flight gave up (`why`) and the worker did not answer within the
  // grace: kills it, records a recycle (not a crash) and starts a fresh worker.
  void AbandonCall(Process* p, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
  absl::Status EnsureArena(Process* p, uint64_t bytes);
  // Waits for `p` to exit (killing it after a grace period) and records why, once.
  std::string RecordDeath(Process* p, const std::string& what, const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_);
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
  // Supports answers by query key (worker_backend.cc); cleared when it reaches its bound.
  absl::flat_hash_map<std::string, absl::Status> supports_cache_ ABSL_GUARDED_BY(mu_);
  int64_t current_compiles_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Process>> retired_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> pending_release_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> crash_counts_ ABSL_GUARDED_BY(mu_);
  uint64_t restarts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t crashes_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::string> reasons_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Passed to every worker started from now on (--ane_rules); starts as options_.ane_rules.
  mil::AneRuleOverrides ane_rules_ ABSL_GUARDED_BY(mu_);
  absl::Time last_eager_restart_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread monitor_;
};

// A program compiled in (some generation of) the worker. Generation and handle change when the
// program is recompiled in a newer worker; both are guarded by the pool's call_mu_.
class WorkerProgram : public backend::CompiledProgram {
 public:
  // Names the program with its kernel key (cache/kernel_key.h) on `description`, the backend's:
  // quarantine counts crashes per key, and messages show its first 16 digits (a prefix of the
  // kernel id when the program came through the kernel manager).
  WorkerProgram(std::shared_ptr<WorkerPool> pool, mil::VerifiedProgram program,
                backend::CompileOptions options, const backend::BackendDescription& description)
      : pool_(std::move(pool)), program_(std::move(program)), options_(std::move(options)) {
    options_.pass_dumps = nullptr;  // the caller's, valid only during its Compile call
    options_.stop = nullptr;  // the compiling caller's; later recompiles run for other callers
    cache::KernelKey key = cache::KernelKey::Make(program_, description, options_);
    text_ = std::move(key.canonical_text);
    key_ = key.id.substr(0, 16);
  }
  ~WorkerProgram() override {
    if (handle_ != 0) pool_->Release(generation_, handle_);
  }
  const std::vector<backend::TensorSignature>& inputs() const override { return inputs_; }
  const std::vector<backend::TensorSignature>& outputs() const override { return outputs_; }
  uint64_t memory_bytes() const override { return memory_bytes_; }
  absl::StatusOr<backend::RunResult> Run(const std::vector<backend::NamedTensor>& in) override {
    return pool_->Run(this, in, backend::StopCheck());
  }
  // Stops waiting for the worker when `stop` says so (WorkerPool::Run).
  absl::StatusOr<backend::RunResult> RunStoppable(const std::vector<backend::NamedTensor>& in,
                                                  const backend::StopCheck& stop) override {
    return pool_->Run(this, in, stop);
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

}  // namespace anerd::worker

#endif  // ANERD_SERVER_WORKER_WORKER_POOL_H_
