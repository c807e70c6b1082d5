// KernelManager: compiles, stores, caches and evaluates client kernels.
//
// A kernel id is cache::KernelKey::Make of the verified program, the backend's description and
// the compile options (server/cache/kernel_key.h), so the same request always yields the same id
// and a changed program never hits a stale entry. Sources (canonical MIL and weight files)
// persist in the KernelStore, so ids stay valid across restarts: a kernel not in memory is
// recompiled from its stored sources on first use.
//
// Threading: no kernel store I/O runs on a device thread (the executor's, or a caller's while
// the idle device is lent to it; common/blocking_io_guard.h). The store's reads and writes run on
// the manager's own store thread, one task at a time in the order queued, and only the device
// work runs on the backend's DeviceExecutor:
//   Compile: on the store thread, the deferred weight files are read, the program parsed and
//     verified, its id computed, the owner's quota checked and the store and compile cache
//     looked up (a hit ends there); then the backend compile runs on the executor, queued in the
//     training class; then, on the store thread again, the record and its blobs are committed and
//     the program enters the compile cache. A compile of a kernel that another compile is
//     building waits for that one and then takes its result as a cache hit (or, if it failed,
//     compiles itself), so one program is compiled once however many clients ask at a time.
//   Eval: a kernel whose program is in memory runs on the executor, queued in the interactive
//     class (device_queue.h); a tiny evaluation (inputs <= kLendMaxInputBytes) runs on the
//     caller's thread when the executor is idle, with the device lent to it
//     (DeviceExecutor::TryRunHere). Any other kernel (not in the compile cache, or not known to
//     this manager's id -> backend index) first has its record read, and when its program must
//     be rebuilt its stored sources read and verified, on the store thread; then the program is
//     rebuilt and run on the executor. Evaluations waiting for the same kernel's rebuild share
//     one copy of its sources. A program evicted while its evaluation was queued is read again
//     the same way (never on the device thread).
// `done` is called exactly once: inline for immediate errors (unknown backend, request limits,
// a kernel whose backend this daemon lacks), or on the store thread, or on the executor thread,
// or on the caller's thread before Eval returns (a lent device). Callers must not assume which;
// `done` must be thread-safe, and must not wait for another Compile or Eval to finish (it may run
// on the store thread, which that one may need). List/Get/Delete and Stats are cheap and may be
// called from any thread but a device thread (they read the store).
//
// Hit counters: each evaluation counts its kernel's use in memory; every kFlushEvery uses the
// counters are written to the store by the manager's own usage-writer thread, never on a device
// thread (the executor's, or a caller's while the device is lent to it). A store write waits for
// the database's lock (the sessions write their step rows under it) and an fsync: ~0.5 s while a
// model trains, which the evaluation's reply, and the training step queued behind it, used to wait
// for (issue 22: the interactive_wait bench's open-loop stall, bench/README.md). The same wait is
// why the compile's commit and the rebuild's reads moved to the store thread.
#ifndef ANERD_SERVER_ENGINE_KERNEL_MANAGER_H_
#define ANERD_SERVER_ENGINE_KERNEL_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/backend.h"
#include "server/backend/registry.h"
#include "server/cache/compile_cache.h"
#include "server/cache/kernel_store.h"
#include "server/engine/device_executor.h"
#include "server/sessions/notifier.h"

namespace anerd::engine {

// Every size from a client is bounded by one of these before it is allocated. Each message that
// reports a violation names the daemon flag that raises the limit.
struct KernelLimits {
  uint64_t max_mil_bytes = 16 << 20;              // --max-mil-bytes
  uint64_t max_weight_bytes = uint64_t{2} << 30;  // --max-weight-bytes (per kernel, all files)
  uint64_t max_weight_files = 256;                // files per kernel
  uint64_t max_tensor_bytes = 256 << 20;          // --max-tensor-bytes (per evaluation, all inputs)
  int64_t max_kernels = 10000;                    // --max-kernels stored
  // --max-kernel-memory-bytes: most memory one compiled kernel may hold (its planned buffers,
  // scratch and decoded constants), checked before the backend allocates it. The compile cache's
  // capacity (--cache-bytes) caps it too. 0 = only the cache's capacity.
  uint64_t max_kernel_memory_bytes = uint64_t{2} << 30;
};

struct KernelCompileRequest {
  std::string name;
  std::string mil_text;
  std::vector<std::pair<std::string, std::string>> weight_files;  // path -> bytes
  // Weight files whose bytes are read only when the compile starts (uploads spooled to disk, so a
  // request waiting for the store thread holds no weight memory). `read` is called at most once,
  // on the manager's store thread; what it captures (e.g. the upload's reservation, which so also
  // bounds the bytes read into memory) is released, on the store thread, once the backend compile
  // starts on the executor, or when the request ends without one.
  struct DeferredWeightFile {
    std::string path;  // canonical weight path
    uint64_t size = 0;
    std::function<absl::StatusOr<std::string>()> read;
  };
  std::vector<DeferredWeightFile> deferred_weight_files;
  // Optional: SHA-256 (hex) of each weight file by canonical path, computed by the caller while the
  // bytes arrived (the service hashes chunks as they stream in); missing entries are computed here.
  std::map<std::string, std::string> weight_sha256;
  std::string backend;  // "" = default
  backend::CompileOptions options;
  // Collect the program after each compile pass (KernelCompileResult::pass_dumps). On a cache
  // hit a backend with BackendCapabilities::pass_dumps compiles the program once more just for
  // the dumps (and discards it).
  bool dump_passes = false;
  // The client compiling (e.g. "token:alice", "uid:501"); it becomes an owner of the kernel.
  // "" = no ownership recorded (in-process callers).
  std::string owner;
  // Most kernels `owner` may own (--quota-kernels); 0 = unlimited. Compiling a kernel the owner
  // already owns never counts twice.
  int64_t max_owned = 0;
};

struct KernelInfo {
  cache::KernelRecord record;
  std::vector<backend::TensorSignature> inputs;
  std::vector<backend::TensorSignature> outputs;
  bool loaded = false;  // compiled program in memory
};

struct KernelCompileResult {
  KernelInfo info;
  bool cache_hit = false;
  double compile_ms = 0;
  std::vector<std::string> warnings;
  std::vector<backend::PassDump> pass_dumps;  // when requested; empty if the backend has no passes
};

struct KernelEvalTiming {
  double queued_us = 0;  // in the executor's queue (after the store thread's reads, if any)
  double execute_us = 0;
  double total_us = 0;  // on the device thread: lookup (and recompile) + execute
  bool recompiled = false;
  std::optional<double> hardware_us;  // backend::RunTiming::hardware_us
  bool hardware_simulated = false;
};

struct KernelEvalResult {
  std::vector<backend::NamedTensor> outputs;
  KernelEvalTiming timing;
};

// Optional observer of finished compiles and evaluations (the metrics endpoint). Each callback may
// be empty; they run on device threads (the executor's, or a caller's with the device lent to it)
// and must be thread-safe, quick and free of blocking I/O. Times in milliseconds.
struct KernelObserver {
  // A backend compile that ran (a fresh compile or a lazy recompile; cache hits are not compiles).
  std::function<void(const std::string& backend, double compile_ms)> compiled;
  // A successful evaluation: `execute_ms` as the backend reported it.
  std::function<void(const std::string& backend, double execute_ms)> evaluated;
};

class KernelManager {
 public:
  // None of the pointers are owned; all must outlive the manager. `executors` maps backend name to
  // its executor and has one entry per registry backend.
  KernelManager(const backend::BackendRegistry* registry,
                std::map<std::string, DeviceExecutor*> executors, cache::KernelStore* store,
                cache::CompileCache* cache, std::string default_backend, KernelLimits limits);
  // Shut the executors down first (Engine does): no task of the manager's may run on them
  // afterwards. Drains the store thread: queued commits and hit-counter writes still land (their
  // `done` gets their result); compiles and evaluations that have not reached an executor get
  // UNAVAILABLE. Then stops the usage writer and writes the counters still pending (the store
  // must be alive).
  ~KernelManager();
  KernelManager(const KernelManager&) = delete;
  KernelManager& operator=(const KernelManager&) = delete;

  void Compile(KernelCompileRequest request, RequestControl control,
               std::function<void(absl::StatusOr<KernelCompileResult>)> done);
  void Eval(std::string id, std::vector<backend::NamedTensor> inputs, RequestControl control,
            std::function<void(absl::StatusOr<KernelEvalResult>)> done);
  static constexpr uint64_t kLendMaxInputBytes = 64 << 10;
  // For benchmarks (bench/kernel_service_bench.cc): false queues every evaluation, the path before
  // the executor lent its device, to compare both in one run. Default true.
  void set_lend_idle_device(bool lend) { lend_idle_device_.store(lend); }

  absl::StatusOr<std::vector<KernelInfo>> List();
  // Ownership (cache::KernelStore): the owners of `id` (empty for an unowned or unknown id) and
  // the ids `owner` owns.
  absl::StatusOr<std::vector<std::string>> Owners(const std::string& id) const {
    return store_->Owners(id);
  }
  absl::StatusOr<std::vector<std::string>> OwnedIds(const std::string& owner) const {
    return store_->OwnedIds(owner);
  }
  absl::StatusOr<KernelInfo> Get(const std::string& id);
  // NOT_FOUND for an unknown id.
  absl::Status Delete(const std::string& id);
  // Deletes on behalf of `owner` (see KernelStore::Release): releases its ownership and removes
  // the kernel once no owner remains. `owner` "" = Delete. PERMISSION_DENIED when other clients
  // own the kernel and `owner` does not.
  absl::Status Release(const std::string& id, const std::string& owner);

  // Installs the observer. Call before the first Compile/Eval (not synchronised with them).
  void SetObserver(KernelObserver observer) { observer_ = std::move(observer); }

  // Writes pending hit counters to the store, on the calling thread. Called by List/Get, the usage
  // writer and at shutdown; never call it on a device thread.
  void FlushUsage();
  const KernelLimits& limits() const { return limits_; }

 private:
  struct CompileJob;
  struct EvalJob;
  struct StoredProgram;
  using CompileJobPtr = std::shared_ptr<CompileJob>;
  using EvalJobPtr = std::shared_ptr<EvalJob>;

  // Queues `task` on the store thread; an exception it throws is logged, never propagated.
  void PostStore(std::function<void()> task);
  // --- Compile: each step runs where its name says, and every path ends in FinishCompile.
  // Store thread: reads the deferred weight files, parses, verifies and names the program.
  void PrepareCompile(const CompileJobPtr& job);
  // Store thread: a wait for the same kernel's compile in flight, or the quota, then a cache hit
  // (HitCompile) or the store checks and the backend compile queued on the executor.
  void ResolveCompile(const CompileJobPtr& job);
  // Store thread: a cache hit whose record is `stored`; a compile for the pass dumps, if asked
  // for, runs on the executor first.
  void HitCompile(const CompileJobPtr& job, cache::KernelRecord stored);
  void FinishHit(const CompileJobPtr& job, cache::KernelRecord stored);
  // Executor: the backend compile.
  void CompileOnExecutor(const CompileJobPtr& job);
  // Store thread: writes the record and blobs, then caches the program.
  void CommitCompile(const CompileJobPtr& job);
  // Any thread: hands the compiles that waited for this one back to the store thread, then
  // calls `done`.
  void FinishCompile(const CompileJobPtr& job, absl::StatusOr<KernelCompileResult> result);
  // The store-thread step `step` of `job`, an exception turned into INTERNAL for its `done`.
  void PostCompileStep(const CompileJobPtr& job, void (KernelManager::*step)(const CompileJobPtr&));
  // Moves the deferred weight files' captures out of the request, to be released on the store
  // thread (they may hold a spooled file whose release is I/O).
  void ReleaseDeferred(const CompileJobPtr& job);

  // --- Eval.
  // Runs the evaluation on the executor (or the caller's thread, when `lend` and the executor is
  // idle).
  void RunEval(const EvalJobPtr& job, bool lend);
  // Store thread: reads the record (and, when the program must be rebuilt, its sources), then
  // RunEval.
  void LoadForEval(const EvalJobPtr& job);
  void PostLoadForEval(const EvalJobPtr& job);
  // Device thread: the cached program, or rebuilt from job's sources, runs; or, with neither,
  // back to LoadForEval.
  void EvalOnDevice(const EvalJobPtr& job, absl::Status admission, absl::Duration queued);
  void EvalOnDeviceAdmitted(const EvalJobPtr& job, absl::Duration queued);
  absl::StatusOr<KernelEvalResult> EvalNow(const EvalJobPtr& job,
                                           std::shared_ptr<backend::CompiledProgram> program,
                                           bool recompiled, absl::Time start, absl::Duration queued,
                                           int64_t* bytes);
  static void FinishEval(const EvalJobPtr& job, absl::StatusOr<KernelEvalResult> result);
  // Store thread: the sources of stored kernel `record`, read and verified (shared with other
  // evaluations waiting for the same rebuild).
  absl::StatusOr<std::shared_ptr<const StoredProgram>> ReadStoredProgram(
      const cache::KernelRecord& record);
  // Device thread: compiles `stored` and caches it; its RecordUse goes to the store thread.
  absl::StatusOr<std::shared_ptr<backend::CompiledProgram>> RebuildNow(
      const StoredProgram& stored, const RequestControl& control);

  void Remember(const std::string& id, const std::string& backend);
  // Compiles on `backend` within the memory limit (the smaller of max_kernel_memory_bytes and the
  // cache's capacity), checking `control` between ops; RESOURCE_EXHAUSTED naming both flags when
  // the program needs more.
  absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> CompileWithinLimits(
      backend::Backend* backend, const mil::VerifiedProgram& verified,
      backend::CompileOptions options, const RequestControl& control) const;
  // Bytes the cache counts for a compiled program: what the backend planned, else an estimate.
  static uint64_t CachedBytes(const backend::CompiledProgram& program,
                              const cache::KernelRecord& record);
  static absl::Status NameKernel(const std::string& id, const absl::Status& status);
  absl::StatusOr<KernelInfo> MakeInfo(cache::KernelRecord record);
  absl::Status CheckRequestLimits(const KernelCompileRequest& request) const;
  // Store thread: OK when the job's owner already owns its kernel, or owns (with the kernels its
  // compiles in flight claimed) fewer than request.max_owned, and then claims the kernel until
  // FinishCompile; else RESOURCE_EXHAUSTED naming --quota-kernels.
  absl::Status ClaimOwnerQuota(CompileJob& job);
  void ReleaseClaims(CompileJob& job);
  void EraseLoaded(const std::string& id);
  // Counts one use of `id`; asks the usage writer to flush every kFlushEvery uses (no store I/O
  // here: it runs on device threads).
  void CountUse(const std::string& id);
  void UsageWriterLoop();
  // Whether `owner` already owns kernel `id` (false when the store cannot tell).
  bool IsOwner(const std::string& id, const std::string& owner) const;
  bool stopping() const { return stopping_.load(); }

  const backend::BackendRegistry* registry_;
  std::map<std::string, DeviceExecutor*> executors_;
  cache::KernelStore* store_;
  cache::CompileCache* cache_;
  std::string default_backend_;
  KernelLimits limits_;
  KernelObserver observer_;
  std::atomic<bool> lend_idle_device_{true};

  absl::Mutex mu_;
  std::map<std::string, uint64_t> pending_hits_ ABSL_GUARDED_BY(mu_);
  // Kernel id -> backend name of every stored kernel (filled from the store at construction,
  // kept by Compile and Delete/Release).
  absl::flat_hash_map<std::string, std::string> backend_of_ ABSL_GUARDED_BY(mu_);
  // Kernel id -> the compiles waiting for the one of that id in flight (queued or running on an
  // executor, or committing); an id is present while its compile is in flight.
  absl::flat_hash_map<std::string, std::vector<CompileJobPtr>> compiling_ ABSL_GUARDED_BY(mu_);
  // What the compiles in flight will add when they commit, so that concurrent compiles together
  // stay within --quota-kernels and --max-kernels: owner -> kernel id -> compiles claiming it, and
  // the kernels not yet stored.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, int>> owner_claims_
      ABSL_GUARDED_BY(mu_);
  int64_t new_kernel_claims_ ABSL_GUARDED_BY(mu_) = 0;
  // Kernel id -> the sources read for a rebuild that evaluations still hold.
  absl::flat_hash_map<std::string, std::weak_ptr<const StoredProgram>> sources_
      ABSL_GUARDED_BY(mu_);
  // Set by the destructor: work that has not reached an executor is refused.
  std::atomic<bool> stopping_{false};

  absl::Mutex writer_mu_;
  bool flush_requested_ ABSL_GUARDED_BY(writer_mu_) = false;
  bool writer_stopping_ ABSL_GUARDED_BY(writer_mu_) = false;
  std::thread usage_writer_;  // starts once the members above exist

  absl::Mutex io_mu_;
  // Tasks queued or running on the store thread (the destructor waits for 0).
  int64_t store_tasks_ ABSL_GUARDED_BY(io_mu_) = 0;
  // The store thread (sessions::Notifier: one thread, tasks in order, drained by its destructor).
  // Last: its tasks use every member above, and the destructor drains it first.
  std::unique_ptr<sessions::Notifier> store_io_;
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_KERNEL_MANAGER_H_
