#include "server/engine/kernel_manager.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/memory_trim.h"
#include "common/mil/parser.h"
#include "common/mil/verifier.h"
#include "common/status_macros.h"
#include "server/cache/kernel_key.h"
#include "spdlog/spdlog.h"

namespace anerd::engine {
namespace {

using backend::StopCheck;

constexpr uint64_t kFlushEvery = 256;  // evaluations between hit-counter writes

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

double MsSince(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

// Rough memory held by a compiled program whose backend does not report it: decoded weights
// (fp32) plus the program.
uint64_t EstimateBytes(const cache::KernelRecord& record) {
  return record.weight_bytes * 2 + record.mil_bytes + 4096;
}

StopCheck StopFor(const RequestControl& control, std::string what) {
  return [control, what = std::move(what)] { return control.Check(what); };
}

}  // namespace

KernelManager::KernelManager(const backend::BackendRegistry* registry,
                             std::map<std::string, DeviceExecutor*> executors,
                             cache::KernelStore* store, cache::CompileCache* cache,
                             std::string default_backend, KernelLimits limits)
    : registry_(registry),
      executors_(std::move(executors)),
      store_(store),
      cache_(cache),
      default_backend_(std::move(default_backend)),
      limits_(limits) {
  // The id -> backend index that lets Eval pick the executor without reading the store.
  for (const cache::KernelRecord& r : store_->List()) backend_of_[r.id] = r.backend;
  usage_writer_ = std::thread([this] { UsageWriterLoop(); });
}

KernelManager::~KernelManager() {
  {
    absl::MutexLock lock(&writer_mu_);
    writer_stopping_ = true;
  }
  usage_writer_.join();
  FlushUsage();
}

void KernelManager::UsageWriterLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&writer_mu_);
      writer_mu_.Await(absl::Condition(
          +[](KernelManager* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->writer_mu_) {
            return m->flush_requested_ || m->writer_stopping_;
          },
          this));
      if (writer_stopping_) return;  // the destructor writes what is left
      flush_requested_ = false;
    }
    FlushUsage();
  }
}

absl::Status KernelManager::CheckRequestLimits(const KernelCompileRequest& request) const {
  if (request.mil_text.size() > limits_.max_mil_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("MIL text is ", request.mil_text.size(),
                                                   " bytes; the limit is ", limits_.max_mil_bytes,
                                                   " (raise it with anerd --max-mil-bytes)"));
  }
  const size_t files = request.weight_files.size() + request.deferred_weight_files.size();
  if (files > limits_.max_weight_files) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kernel has ", files, " weight files; the limit is ", limits_.max_weight_files));
  }
  uint64_t total = 0;
  for (const auto& [path, bytes] : request.weight_files) total += bytes.size();
  for (const auto& file : request.deferred_weight_files) total += file.size;
  if (total > limits_.max_weight_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("weight files total ", total, " bytes; the limit is ",
                     limits_.max_weight_bytes, " (raise it with anerd --max-weight-bytes)"));
  }
  return absl::OkStatus();
}

void KernelManager::Compile(KernelCompileRequest request, RequestControl control,
                            std::function<void(absl::StatusOr<KernelCompileResult>)> done) {
  if (request.backend.empty()) request.backend = default_backend_;
  backend::Backend* backend = registry_->Find(request.backend);
  if (backend == nullptr) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("unknown backend '", request.backend,
                     "' (this daemon has: ", absl::StrJoin(registry_->names(), ", "), ")")));
  }
  if (absl::Status s = CheckRequestLimits(request); !s.ok()) return done(s);
  auto shared = std::make_shared<KernelCompileRequest>(std::move(request));
  executors_
      .at(backend->Describe().name)
      // Compiles are bulk work: they keep their FIFO turn with training steps.
      ->Submit(TaskClass::kTraining, control, "compile",
               [this, shared, backend, control, done = std::move(done)](absl::Status admission,
                                                                        absl::Duration) {
                 if (!admission.ok()) return done(admission);
                 done(CompileNow(*shared, backend, control));
               });
}

uint64_t KernelManager::CachedBytes(const backend::CompiledProgram& program,
                                    const cache::KernelRecord& record) {
  const uint64_t planned = program.memory_bytes();
  return planned > 0 ? planned + record.mil_bytes : EstimateBytes(record);
}

absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> KernelManager::CompileWithinLimits(
    backend::Backend* backend, const mil::VerifiedProgram& verified,
    backend::CompileOptions options, const RequestControl& control) const {
  const uint64_t capacity = cache_->Stats().capacity_bytes;
  const uint64_t per_kernel = limits_.max_kernel_memory_bytes;
  options.max_memory_bytes = per_kernel > 0 ? std::min(per_kernel, capacity) : capacity;
  options.stop = StopFor(control, "compile");
  absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> compiled =
      backend->Compile(verified, options);
  if (compiled.status().code() == absl::StatusCode::kResourceExhausted &&
      absl::StrContains(compiled.status().message(), backend::kMemoryLimitMarker)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(compiled.status().message(), " (anerd --max-kernel-memory-bytes=", per_kernel,
                     ", --cache-bytes=", capacity, "; raise them to allow bigger kernels)"));
  }
  return compiled;
}

absl::StatusOr<KernelCompileResult> KernelManager::CompileNow(KernelCompileRequest& request,
                                                              backend::Backend* backend,
                                                              const RequestControl& control) {
  ANERD_ASSIGN_OR_RETURN(mil::Program program, mil::ParseProgram(request.mil_text));
  mil::WeightFiles weights;
  for (auto& [path, bytes] : request.weight_files) {
    ANERD_RETURN_IF_ERROR(weights.Add(path, std::move(bytes)));
  }
  for (KernelCompileRequest::DeferredWeightFile& file : request.deferred_weight_files) {
    ANERD_ASSIGN_OR_RETURN(std::string bytes, file.read());
    file.read = nullptr;  // releases the spooled copy before compiling
    ANERD_RETURN_IF_ERROR(weights.Add(file.path, std::move(bytes)));
  }
  ANERD_ASSIGN_OR_RETURN(mil::VerifiedProgram verified,
                         mil::VerifyProgram(std::move(program), std::move(weights)));
  cache::KernelKey key =
      cache::KernelKey::Make(verified, backend->Describe(), request.options, request.weight_sha256);
  cache::KernelRecord record;
  record.id = key.id;
  record.name = request.name;
  record.backend = backend->Describe().name;
  record.options = key.options;
  record.mil_sha = key.mil_sha;
  record.mil_bytes = key.canonical_text.size();
  record.weights = std::move(key.weights);
  record.weight_bytes = key.weight_bytes;
  KernelCompileResult result;
  for (const mil::Diagnostic& w : verified.warnings()) result.warnings.push_back(w.ToString());

  ANERD_RETURN_IF_ERROR(CheckOwnerQuota(request, record.id));
  backend::CompileOptions options = request.options;
  if (request.dump_passes) options.pass_dumps = &result.pass_dumps;
  if (std::shared_ptr<backend::CompiledProgram> hit = cache_->Lookup(record.id)) {
    CountUse(record.id);
    absl::StatusOr<cache::KernelRecord> stored = store_->Get(record.id);
    if (stored.ok()) {
      // The dumps need a compile (its program is discarded); not spent on backends without.
      if (request.dump_passes && backend->Describe().capabilities.pass_dumps) {
        ANERD_RETURN_IF_ERROR(CompileWithinLimits(backend, verified, options, control).status());
      }
      // A hit on another client's kernel is reported as that kernel's recorded compile, so that a
      // client cannot learn what others have compiled from the response.
      const bool callers_own = request.owner.empty() || IsOwner(record.id, request.owner);
      result.cache_hit = callers_own;
      result.compile_ms = callers_own ? 0 : stored->compile_ms;
      if (!request.owner.empty()) {
        ANERD_RETURN_IF_ERROR(store_->AddOwner(record.id, request.owner));
      }
      ANERD_ASSIGN_OR_RETURN(result.info, MakeInfo(*std::move(stored)));
      return result;
    }
    cache_->Erase(record.id);  // the registry lost it (deleted concurrently): compile afresh
  }
  absl::StatusOr<cache::KernelRecord> existing = store_->Get(record.id);
  if (!existing.ok() && store_->Count() >= limits_.max_kernels) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the daemon already stores ", limits_.max_kernels,
                     " kernels (raise the limit with anerd --max-kernels, or "
                     "remove some with "
                     "anectl kernel rm)"));
  }
  const absl::Time start = absl::Now();
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<backend::CompiledProgram> compiled,
                         CompileWithinLimits(backend, verified, options, control));
  result.compile_ms = MsSince(start);
  if (observer_.compiled) observer_.compiled(record.backend, result.compile_ms);
  record.signature = cache::EncodeSignature({compiled->inputs(), compiled->outputs()});
  std::vector<absl::string_view> blobs = {key.canonical_text};
  for (const auto& [path, bytes] : verified.weights().files()) blobs.push_back(*bytes);
  record.created_ms = existing.ok() ? existing->created_ms : NowMs();
  record.last_used_ms = NowMs();
  record.compile_ms = result.compile_ms;
  record.hits = existing.ok() ? existing->hits : 0;
  if (existing.ok() && record.name.empty()) record.name = existing->name;
  // The blobs, the record and its owner land together (one transaction for the rows).
  ANERD_RETURN_IF_ERROR(store_->Commit(record, blobs, request.owner));
  Remember(record.id, record.backend);
  const uint64_t bytes = CachedBytes(*compiled, record);
  cache_->Insert(record.id, std::shared_ptr<backend::CompiledProgram>(std::move(compiled)), bytes);
  spdlog::info("compiled kernel {} ({}) on {} in {:.1f} ms", record.id.substr(0, 12),
               record.name.empty() ? "unnamed" : record.name, record.backend, result.compile_ms);
  ANERD_ASSIGN_OR_RETURN(result.info, MakeInfo(std::move(record)));
  return result;
}

absl::StatusOr<std::shared_ptr<backend::CompiledProgram>> KernelManager::LoadNow(
    const cache::KernelRecord& record, const RequestControl& control) {
  backend::Backend* backend = registry_->Find(record.backend);
  if (backend == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("kernel ", record.id,
                                                      " was compiled for backend '", record.backend,
                                                      "', which this daemon does not have"));
  }
  ANERD_ASSIGN_OR_RETURN(std::string text, store_->GetBlob(record.mil_sha));
  ANERD_ASSIGN_OR_RETURN(mil::Program program, mil::ParseProgram(text));
  mil::WeightFiles weights;
  for (const auto& [path, sha] : record.weights) {
    ANERD_ASSIGN_OR_RETURN(std::string bytes, store_->GetBlob(sha));
    ANERD_RETURN_IF_ERROR(weights.Add(path, std::move(bytes)));
  }
  ANERD_ASSIGN_OR_RETURN(mil::VerifiedProgram verified,
                         mil::VerifyProgram(std::move(program), std::move(weights)));
  ANERD_ASSIGN_OR_RETURN(backend::CompileOptions options,
                         cache::DecodeCompileOptions(record.options));
  const absl::Time start = absl::Now();
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<backend::CompiledProgram> compiled,
                         CompileWithinLimits(backend, verified, options, control));
  const double ms = MsSince(start);
  if (observer_.compiled) observer_.compiled(record.backend, ms);
  std::shared_ptr<backend::CompiledProgram> shared(std::move(compiled));
  cache_->Insert(record.id, shared, CachedBytes(*shared, record));
  (void)store_->RecordUse(record.id, 0, NowMs(), ms);
  spdlog::info("recompiled kernel {} from stored sources in {:.1f} ms", record.id.substr(0, 12),
               ms);
  return shared;
}

void KernelManager::Eval(std::string id, std::vector<backend::NamedTensor> inputs,
                         RequestControl control,
                         std::function<void(absl::StatusOr<KernelEvalResult>)> done) {
  absl::StatusOr<std::string> backend = BackendOf(id);
  if (!backend.ok()) return done(backend.status());
  auto it = executors_.find(*backend);
  if (it == executors_.end()) {
    return done(absl::FailedPreconditionError(absl::StrCat(
        "kernel ", id, " needs backend '", *backend, "', which this daemon does not have")));
  }
  uint64_t input_bytes = 0;
  for (const backend::NamedTensor& t : inputs) input_bytes += t.tensor.bytes().size();
  // A tiny evaluation of a program in memory runs on this thread when the executor is idle (it
  // lends the device: device_executor.h TryRunHere), sparing two thread hand-offs.
  const bool lendable =
      lend_idle_device_.load() && input_bytes <= kLendMaxInputBytes && cache_->Contains(id);
  auto shared_inputs = std::make_shared<std::vector<backend::NamedTensor>>(std::move(inputs));
  DeviceExecutor* executor = it->second;
  DeviceExecutor::Work work = [this, id = std::move(id), backend = *std::move(backend),
                               shared_inputs, control, done = std::move(done)](
                                  absl::Status admission, absl::Duration queued) {
    if (!admission.ok()) return done(admission);
    int64_t bytes = 0;
    done(EvalNow(id, backend, *shared_inputs, control, queued, &bytes));
    // A large evaluation leaves its buffers in this thread's malloc arena:
    // hand them back.
    std::vector<backend::NamedTensor>().swap(*shared_inputs);
    TrimFreeMemoryAfter(bytes);
  };
  if (lendable && executor->TryRunHere(TaskClass::kInteractive, control, "evaluation", work)) {
    return;
  }
  executor->Submit(TaskClass::kInteractive, std::move(control), "evaluation", std::move(work));
}

absl::StatusOr<KernelEvalResult> KernelManager::EvalNow(
    const std::string& id, const std::string& backend,
    const std::vector<backend::NamedTensor>& inputs, const RequestControl& control,
    absl::Duration queued, int64_t* bytes) {
  const absl::Time start = absl::Now();
  KernelEvalResult result;
  result.timing.queued_us = absl::ToDoubleMicroseconds(queued);
  std::shared_ptr<backend::CompiledProgram> program = cache_->Lookup(id);
  if (program == nullptr) {
    // The record is read here, on the executor, and only when the program must be rebuilt.
    ANERD_ASSIGN_OR_RETURN(cache::KernelRecord record, store_->Get(id));
    absl::StatusOr<std::shared_ptr<backend::CompiledProgram>> loaded = LoadNow(record, control);
    if (!loaded.ok()) return NameKernel(id, loaded.status());
    program = *std::move(loaded);
    result.timing.recompiled = true;
  }
  absl::StatusOr<backend::RunResult> run =
      program->RunStoppable(inputs, StopFor(control, "evaluation"));
  if (!run.ok()) return NameKernel(id, run.status());
  CountUse(id);
  result.outputs = std::move(run->outputs);
  result.timing.execute_us = run->timing.total_us;
  result.timing.hardware_us = run->timing.hardware_us;
  result.timing.hardware_simulated = run->timing.hardware_simulated;
  if (observer_.evaluated) observer_.evaluated(backend, result.timing.execute_us / 1000.0);
  result.timing.total_us = absl::ToDoubleMicroseconds(absl::Now() - start);
  for (const std::vector<backend::NamedTensor>* list : {&inputs, &std::as_const(result.outputs)}) {
    for (const backend::NamedTensor& t : *list) *bytes += t.tensor.bytes().size();
  }
  return result;
}

absl::StatusOr<std::string> KernelManager::BackendOf(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = backend_of_.find(id);
    if (it != backend_of_.end()) return it->second;
  }
  // Not indexed (an unknown id, or a record this manager did not write): read it once.
  ANERD_ASSIGN_OR_RETURN(cache::KernelRecord record, store_->Get(id));
  Remember(record.id, record.backend);
  return record.backend;
}

void KernelManager::Remember(const std::string& id, const std::string& backend) {
  absl::MutexLock lock(&mu_);
  backend_of_[id] = backend;
}

absl::Status KernelManager::NameKernel(const std::string& id, const absl::Status& status) {
  // A worker crash (UNAVAILABLE) or a quarantine (FAILED_PRECONDITION) comes
  // from the backend without the kernel's id; the client needs to know which
  // kernel it was.
  if (status.code() != absl::StatusCode::kUnavailable &&
      status.code() != absl::StatusCode::kFailedPrecondition) {
    return status;
  }
  return absl::Status(status.code(), absl::StrCat("kernel ", id, ": ", status.message()));
}

bool KernelManager::IsOwner(const std::string& id, const std::string& owner) const {
  absl::StatusOr<std::vector<std::string>> owners = store_->Owners(id);
  return owners.ok() && std::find(owners->begin(), owners->end(), owner) != owners->end();
}

void KernelManager::CountUse(const std::string& id) {
  bool flush = false;
  {
    absl::MutexLock lock(&mu_);
    flush = ++pending_hits_[id] >= kFlushEvery;
  }
  if (!flush) return;
  absl::MutexLock lock(&writer_mu_);
  flush_requested_ = true;  // the usage writer writes them: no store I/O on a device thread
}

void KernelManager::FlushUsage() {
  std::map<std::string, uint64_t> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.swap(pending_hits_);
  }
  const int64_t now = NowMs();
  for (const auto& [id, hits] : pending) (void)store_->RecordUse(id, hits, now, -1);
}

absl::StatusOr<KernelInfo> KernelManager::MakeInfo(cache::KernelRecord record) {
  KernelInfo info;
  ANERD_ASSIGN_OR_RETURN(cache::KernelSignature signature,
                         cache::DecodeSignature(record.signature));
  info.inputs = std::move(signature.inputs);
  info.outputs = std::move(signature.outputs);
  info.loaded = cache_->Contains(record.id);
  info.record = std::move(record);
  return info;
}

absl::StatusOr<std::vector<KernelInfo>> KernelManager::List() {
  FlushUsage();
  std::vector<KernelInfo> out;
  for (cache::KernelRecord& r : store_->List()) {
    ANERD_ASSIGN_OR_RETURN(KernelInfo info, MakeInfo(std::move(r)));
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<KernelInfo> KernelManager::Get(const std::string& id) {
  FlushUsage();
  ANERD_ASSIGN_OR_RETURN(cache::KernelRecord record, store_->Get(id));
  return MakeInfo(std::move(record));
}

absl::Status KernelManager::Delete(const std::string& id) {
  ANERD_RETURN_IF_ERROR(store_->Delete(id));
  EraseLoaded(id);
  return absl::OkStatus();
}

absl::Status KernelManager::Release(const std::string& id, const std::string& owner) {
  if (owner.empty()) return Delete(id);
  ANERD_ASSIGN_OR_RETURN(bool removed, store_->Release(id, owner));
  if (removed) EraseLoaded(id);
  return absl::OkStatus();
}

void KernelManager::EraseLoaded(const std::string& id) {
  cache_->Erase(id);
  TrimFreeMemory();  // a compiled program's buffers may be large (its plan's arena)
  absl::MutexLock lock(&mu_);
  pending_hits_.erase(id);
  backend_of_.erase(id);
}

absl::Status KernelManager::CheckOwnerQuota(const KernelCompileRequest& request,
                                            const std::string& id) const {
  if (request.owner.empty() || request.max_owned <= 0) return absl::OkStatus();
  ANERD_ASSIGN_OR_RETURN(std::vector<std::string> owners, store_->Owners(id));
  if (std::find(owners.begin(), owners.end(), request.owner) != owners.end()) {
    return absl::OkStatus();  // already counted
  }
  ANERD_ASSIGN_OR_RETURN(int64_t owned, store_->CountOwned(request.owner));
  if (owned < request.max_owned) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("kernel quota: client ", request.owner, " already stores ", owned,
                   " kernels, its limit (anerd --quota-kernels=", request.max_owned,
                   "); delete some with anectl kernel rm"));
}

}  // namespace anerd::engine
