// KernelManager: compiles, stores, caches and evaluates client kernels.
//
// A kernel id is cache::KernelKey::Make of the verified program, the backend's description and
// the compile options (server/cache/kernel_key.h), so the same request always yields the same id
// and a changed program never hits a stale entry. Sources (canonical MIL and weight files)
// persist in the KernelStore, so ids stay valid across restarts: a kernel not in memory is
// recompiled from its stored sources on first use.
//
// Threading: Compile and Eval run their work on the backend's DeviceExecutor and report through
// `done` (called exactly once, on the executor thread, or inline for immediate errors). Compiles
// queue in the training class, evaluations in the interactive class (device_queue.h). A tiny
// evaluation (inputs <= kLendMaxInputBytes) of a program in memory runs on the caller's thread
// when the executor is idle, with the device lent to it (DeviceExecutor::TryRunHere); `done` is
// then called on the caller's thread before Eval returns. Eval picks
// the executor from an in-memory index of kernel id -> backend and reads the kernel's record on the
// executor (only when its program must be rebuilt), so the caller's thread does no store I/O for a
// known kernel. List/Get/Delete and Stats are cheap and may be called from any thread.
//
// Hit counters: each evaluation counts its kernel's use in memory; every kFlushEvery uses the
// counters are written to the store by the manager's own usage-writer thread, never on a device
// thread (the executor's, or a caller's while the device is lent to it). A store write waits for
// the database's lock (the sessions write their step rows under it) and an fsync: ~0.5 s while a
// model trains, which the evaluation's reply, and the training step queued behind it, used to wait
// for (issue 22: the interactive_wait bench's open-loop stall, bench/README.md).
#ifndef ANERD_SERVER_ENGINE_KERNEL_MANAGER_H_
#define ANERD_SERVER_ENGINE_KERNEL_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
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
  // Weight files whose bytes are read only when the compile runs (uploads spooled to disk, so a
  // queued request holds no weight memory). `read` is called at most once, on the executor; the
  // request releases what it captures when it is destroyed.
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
  double queued_us = 0;
  double execute_us = 0;
  double total_us = 0;  // on the executor: lookup (and recompile) + execute
  bool recompiled = false;
  std::optional<double> hardware_us;  // backend::RunTiming::hardware_us
  bool hardware_simulated = false;
};

struct KernelEvalResult {
  std::vector<backend::NamedTensor> outputs;
  KernelEvalTiming timing;
};

// Optional observer of finished compiles and evaluations (the metrics endpoint). Each callback may
// be empty; they run on executor threads and must be thread-safe and quick. Times in milliseconds.
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
  // Stops the usage writer, then writes the counters still pending (the store must be alive).
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
  // Consumes the request's weight bytes (moved into the verified program, never copied).
  absl::StatusOr<KernelCompileResult> CompileNow(KernelCompileRequest& request,
                                                 backend::Backend* backend,
                                                 const RequestControl& control);
  // Runs an evaluation on the executor: the compiled program from the cache, or rebuilt from the
  // stored record. Adds the bytes of inputs and outputs to `*bytes`.
  absl::StatusOr<KernelEvalResult> EvalNow(const std::string& id, const std::string& backend,
                                           const std::vector<backend::NamedTensor>& inputs,
                                           const RequestControl& control, absl::Duration queued,
                                           int64_t* bytes);
  // The backend a stored kernel was compiled for: from the index, else from the store (NOT_FOUND
  // naming the id).
  absl::StatusOr<std::string> BackendOf(const std::string& id);
  void Remember(const std::string& id, const std::string& backend);
  absl::StatusOr<std::shared_ptr<backend::CompiledProgram>> LoadNow(const cache::KernelRecord& r,
                                                                    const RequestControl& control);
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
  absl::Status CheckOwnerQuota(const KernelCompileRequest& request, const std::string& id) const;
  void EraseLoaded(const std::string& id);
  // Counts one use of `id`; asks the usage writer to flush every kFlushEvery uses (no store I/O
  // here: it runs on device threads).
  void CountUse(const std::string& id);
  void UsageWriterLoop();
  // Whether `owner` already owns kernel `id` (false when the store cannot tell).
  bool IsOwner(const std::string& id, const std::string& owner) const;

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

  absl::Mutex writer_mu_;
  bool flush_requested_ ABSL_GUARDED_BY(writer_mu_) = false;
  bool writer_stopping_ ABSL_GUARDED_BY(writer_mu_) = false;
  std::thread usage_writer_;  // last: starts once the members above exist
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_KERNEL_MANAGER_H_
