#include "server/engine/kernel_manager.h"

#include <algorithm>
#include <chrono>
#include <optional>
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

// Runs `fn`; an exception it throws becomes INTERNAL naming `what`, passed to `fail` (so that a
// request's `done` still hears of it and no exception leaves the thread).
template <typename Fn, typename Fail>
void Guarded(const char* what, const Fn& fn, const Fail& fail) {
  try {
    fn();
  } catch (const std::exception& e) {
    fail(absl::InternalError(absl::StrCat(what, " failed: ", e.what())));
  } catch (...) {
    fail(absl::InternalError(absl::StrCat(what, " failed: an unknown exception")));
  }
}

}  // namespace

// The sources of a stored kernel, read and verified on the store thread for a rebuild on the
// executor.
struct KernelManager::StoredProgram {
  cache::KernelRecord record;
  mil::VerifiedProgram verified;
  backend::CompileOptions options;
};

// One compile as it moves between the store thread and the executor (see the header). Each step
// runs on one thread at a time; the hand-offs (Notifier::Post, DeviceExecutor::Submit) order them.
struct KernelManager::CompileJob {
  KernelCompileRequest request;
  backend::Backend* backend = nullptr;
  RequestControl control;
  std::function<void(absl::StatusOr<KernelCompileResult>)> done;  // null once called
  // Set by PrepareCompile.
  std::optional<mil::VerifiedProgram> verified;
  std::string canonical_text;  // the MIL blob
  cache::KernelRecord record;
  backend::CompileOptions options;  // the request's, with pass_dumps into result
  KernelCompileResult result;
  // Registered in compiling_: the compiles waiting for this one are handed back by FinishCompile.
  bool leader = false;
  // Holds a place in owner_claims_ / new_kernel_claims_ until FinishCompile.
  bool owner_claim = false;
  bool kernel_claim = false;
  std::unique_ptr<backend::CompiledProgram> compiled;  // from the executor to CommitCompile
};

struct KernelManager::EvalJob {
  std::string id;
  std::vector<backend::NamedTensor> inputs;
  RequestControl control;
  std::function<void(absl::StatusOr<KernelEvalResult>)> done;  // null once called
  std::string backend;                                         // set with executor
  DeviceExecutor* executor = nullptr;
  // The kernel's sources, read on the store thread when its program must be rebuilt.
  std::shared_ptr<const StoredProgram> stored;
  // The program was gone when the job reached the device without sources: read them however
  // the cache looks by then (so a job goes to the store thread at most twice).
  bool must_read = false;
};

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
  store_io_ = std::make_unique<sessions::Notifier>();
}

KernelManager::~KernelManager() {
  stopping_.store(true);
  {
    // Drains the store thread: tasks queued by its own tasks count too, so 0 means nothing is
    // left (the executors, shut down before, queue nothing more).
    absl::MutexLock lock(&io_mu_);
    io_mu_.Await(absl::Condition(
        +[](KernelManager* m)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->io_mu_) { return m->store_tasks_ == 0; },
        this));
  }
  store_io_.reset();  // joins the idle thread
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
    try {
      FlushUsage();
    } catch (const std::exception& e) {
      spdlog::error("kernel usage writer: {}", e.what());
    } catch (...) {
      spdlog::error("kernel usage writer: an unknown exception");
    }
  }
}

void KernelManager::PostStore(std::function<void()> task) {
  {
    absl::MutexLock lock(&io_mu_);
    ++store_tasks_;
  }
  // Moved, never copied, into the queue: what the task holds (a compile's request, a program) is
  // released on the store thread, not by a copy left on the posting (maybe device) thread.
  std::vector<std::function<void()>> tasks;
  tasks.push_back([this, task = std::move(task)]() mutable {
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("kernel store task threw: {}", e.what());
    } catch (...) {
      spdlog::error("kernel store task threw an unknown exception");
    }
    task = nullptr;  // what it holds goes before the destructor may see the count drop
    absl::MutexLock lock(&io_mu_);
    --store_tasks_;
  });
  store_io_->Post(std::move(tasks));
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
  auto job = std::make_shared<CompileJob>();
  job->request = std::move(request);
  job->backend = backend;
  job->control = std::move(control);
  job->done = std::move(done);
  PostCompileStep(job, &KernelManager::PrepareCompile);
}

void KernelManager::PostCompileStep(const CompileJobPtr& job,
                                    void (KernelManager::*step)(const CompileJobPtr&)) {
  PostStore([this, job, step] {
    Guarded(
        "compile", [&] { (this->*step)(job); },
        [&](absl::Status s) { FinishCompile(job, std::move(s)); });
  });
}

void KernelManager::FinishCompile(const CompileJobPtr& job,
                                  absl::StatusOr<KernelCompileResult> result) {
  ReleaseClaims(*job);  // after the commit (same store-thread task), or with the failure
  std::vector<CompileJobPtr> waiters;
  if (job->leader) {
    job->leader = false;
    absl::MutexLock lock(&mu_);
    auto it = compiling_.find(job->record.id);
    if (it != compiling_.end()) {
      waiters = std::move(it->second);
      compiling_.erase(it);
    }
  }
  // They look again: a hit now, or (this one failed) a compile of their own.
  for (const CompileJobPtr& waiter : waiters) {
    PostCompileStep(waiter, &KernelManager::ResolveCompile);
  }
  std::function<void(absl::StatusOr<KernelCompileResult>)> done = std::move(job->done);
  job->done = nullptr;
  if (done) done(std::move(result));
}

void KernelManager::ReleaseDeferred(const CompileJobPtr& job) {
  if (job->request.deferred_weight_files.empty()) return;
  auto files = std::make_shared<std::vector<KernelCompileRequest::DeferredWeightFile>>(
      std::move(job->request.deferred_weight_files));
  job->request.deferred_weight_files.clear();
  PostStore([files] { files->clear(); });
}

void KernelManager::PrepareCompile(const CompileJobPtr& job) {
  if (stopping()) {
    return FinishCompile(job, absl::UnavailableError("the kernel manager is shutting down; retry"));
  }
  if (absl::Status s = job->control.Check("compile"); !s.ok()) return FinishCompile(job, s);
  absl::Status prepared = [&]() -> absl::Status {
    KernelCompileRequest& request = job->request;
    ANERD_ASSIGN_OR_RETURN(mil::Program program, mil::ParseProgram(request.mil_text));
    mil::WeightFiles weights;
    for (auto& [path, bytes] : request.weight_files) {
      ANERD_RETURN_IF_ERROR(weights.Add(path, std::move(bytes)));
    }
    // Read here, off the device. What each read captures (the upload's reservation) is kept
    // until the backend compile starts: it bounds these bytes while they wait for the executor.
    for (KernelCompileRequest::DeferredWeightFile& file : request.deferred_weight_files) {
      ANERD_ASSIGN_OR_RETURN(std::string bytes, file.read());
      ANERD_RETURN_IF_ERROR(weights.Add(file.path, std::move(bytes)));
    }
    ANERD_ASSIGN_OR_RETURN(mil::VerifiedProgram verified,
                           mil::VerifyProgram(std::move(program), std::move(weights)));
    const backend::BackendDescription description = job->backend->Describe();
    cache::KernelKey key =
        cache::KernelKey::Make(verified, description, request.options, request.weight_sha256);
    cache::KernelRecord& record = job->record;
    record.id = key.id;
    record.name = request.name;
    record.backend = description.name;
    record.options = key.options;
    record.mil_sha = key.mil_sha;
    record.mil_bytes = key.canonical_text.size();
    record.weights = std::move(key.weights);
    record.weight_bytes = key.weight_bytes;
    job->canonical_text = std::move(key.canonical_text);
    for (const mil::Diagnostic& w : verified.warnings()) {
      job->result.warnings.push_back(w.ToString());
    }
    job->options = request.options;
    if (request.dump_passes) job->options.pass_dumps = &job->result.pass_dumps;
    job->verified = std::move(verified);
    return absl::OkStatus();
  }();
  if (!prepared.ok()) return FinishCompile(job, prepared);
  ResolveCompile(job);
}

void KernelManager::ResolveCompile(const CompileJobPtr& job) {
  if (stopping()) {
    return FinishCompile(job, absl::UnavailableError("the kernel manager is shutting down; retry"));
  }
  if (absl::Status s = job->control.Check("compile"); !s.ok()) return FinishCompile(job, s);
  const std::string& id = job->record.id;
  {
    absl::MutexLock lock(&mu_);
    auto it = compiling_.find(id);
    if (it != compiling_.end()) {  // the same kernel is being compiled: wait for its result
      it->second.push_back(job);
      return;
    }
  }
  if (absl::Status s = ClaimOwnerQuota(*job); !s.ok()) return FinishCompile(job, s);
  if (std::shared_ptr<backend::CompiledProgram> hit = cache_->Lookup(id)) {
    CountUse(id);
    absl::StatusOr<cache::KernelRecord> stored = store_->Get(id);
    if (stored.ok()) return HitCompile(job, *std::move(stored));
    cache_->Erase(id);  // the registry lost it (deleted concurrently): compile afresh
  }
  bool wait = false;
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = compiling_.try_emplace(id);
    if (inserted) {
      job->leader = true;
    } else {  // not expected (only this store-thread step registers), but then: wait too
      it->second.push_back(job);
      wait = true;
    }
  }
  if (wait) return ReleaseClaims(*job);
  absl::StatusOr<cache::KernelRecord> existing = store_->Get(id);
  if (!existing.ok()) {
    // Kernels the compiles in flight will add count too (see ClaimOwnerQuota).
    const int64_t stored = store_->Count();
    bool full = false;
    {
      absl::MutexLock lock(&mu_);
      full = stored + new_kernel_claims_ >= limits_.max_kernels;
      if (!full) {
        ++new_kernel_claims_;
        job->kernel_claim = true;
      }
    }
    if (full) {
      return FinishCompile(job, absl::ResourceExhaustedError(absl::StrCat(
                                    "the daemon already stores ", limits_.max_kernels,
                                    " kernels (raise the limit with anerd --max-kernels, or "
                                    "remove some with anectl kernel rm)")));
    }
  }
  // Compiles are bulk work: they keep their FIFO turn with training steps.
  executors_.at(job->record.backend)
      ->Submit(TaskClass::kTraining, job->control, "compile",
               [this, job](absl::Status admission, absl::Duration) {
                 ReleaseDeferred(job);
                 if (!admission.ok()) return FinishCompile(job, admission);
                 Guarded(
                     "compile", [&] { CompileOnExecutor(job); },
                     [&](absl::Status s) { FinishCompile(job, std::move(s)); });
               });
}

void KernelManager::HitCompile(const CompileJobPtr& job, cache::KernelRecord stored) {
  // The dumps need a compile (its program is discarded); not spent on backends without.
  if (!job->request.dump_passes || !job->backend->Describe().capabilities.pass_dumps) {
    return FinishHit(job, std::move(stored));
  }
  auto record = std::make_shared<cache::KernelRecord>(std::move(stored));
  executors_.at(job->record.backend)
      ->Submit(TaskClass::kTraining, job->control, "compile",
               [this, job, record](absl::Status admission, absl::Duration) {
                 ReleaseDeferred(job);
                 if (!admission.ok()) return FinishCompile(job, admission);
                 absl::Status dumped;
                 Guarded(
                     "compile",
                     [&] {
                       dumped = CompileWithinLimits(job->backend, *job->verified, job->options,
                                                    job->control)
                                    .status();
                     },
                     [&](absl::Status s) { dumped = std::move(s); });
                 if (!dumped.ok()) return FinishCompile(job, dumped);
                 PostStore([this, job, record] {
                   Guarded(
                       "compile", [&] { FinishHit(job, std::move(*record)); },
                       [&](absl::Status s) { FinishCompile(job, std::move(s)); });
                 });
               });
}

void KernelManager::FinishHit(const CompileJobPtr& job, cache::KernelRecord stored) {
  const KernelCompileRequest& request = job->request;
  // A hit on another client's kernel is reported as that kernel's recorded compile, so that a
  // client cannot learn what others have compiled from the response.
  const bool callers_own = request.owner.empty() || IsOwner(stored.id, request.owner);
  job->result.cache_hit = callers_own;
  job->result.compile_ms = callers_own ? 0 : stored.compile_ms;
  if (!request.owner.empty()) {
    if (absl::Status s = store_->AddOwner(stored.id, request.owner); !s.ok()) {
      return FinishCompile(job, s);
    }
  }
  absl::StatusOr<KernelInfo> info = MakeInfo(std::move(stored));
  if (!info.ok()) return FinishCompile(job, info.status());
  job->result.info = *std::move(info);
  FinishCompile(job, std::move(job->result));
}

void KernelManager::CompileOnExecutor(const CompileJobPtr& job) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<backend::CompiledProgram>> compiled =
      CompileWithinLimits(job->backend, *job->verified, job->options, job->control);
  if (!compiled.ok()) return FinishCompile(job, compiled.status());
  job->result.compile_ms = MsSince(start);
  if (observer_.compiled) observer_.compiled(job->record.backend, job->result.compile_ms);
  job->record.signature = cache::EncodeSignature({(*compiled)->inputs(), (*compiled)->outputs()});
  job->compiled = *std::move(compiled);
  PostCompileStep(job, &KernelManager::CommitCompile);
}

void KernelManager::CommitCompile(const CompileJobPtr& job) {
  // Runs even while the manager stops: the program is compiled, and its id becomes valid.
  cache::KernelRecord record = job->record;
  absl::StatusOr<cache::KernelRecord> existing = store_->Get(record.id);
  std::vector<absl::string_view> blobs = {job->canonical_text};
  for (const auto& [path, bytes] : job->verified->weights().files()) blobs.push_back(*bytes);
  record.created_ms = existing.ok() ? existing->created_ms : NowMs();
  record.last_used_ms = NowMs();
  record.compile_ms = job->result.compile_ms;
  record.hits = existing.ok() ? existing->hits : 0;
  if (existing.ok() && record.name.empty()) record.name = existing->name;
  // The blobs, the record and its owner land together (one transaction for the rows).
  if (absl::Status s = store_->Commit(record, blobs, job->request.owner); !s.ok()) {
    return FinishCompile(job, s);
  }
  Remember(record.id, record.backend);
  const uint64_t bytes = CachedBytes(*job->compiled, record);
  cache_->Insert(record.id, std::shared_ptr<backend::CompiledProgram>(std::move(job->compiled)),
                 bytes);
  spdlog::info("compiled kernel {} ({}) on {} in {:.1f} ms", record.id.substr(0, 12),
               record.name.empty() ? "unnamed" : record.name, record.backend,
               job->result.compile_ms);
  job->verified.reset();  // the weights: the cached program keeps what it needs
  absl::StatusOr<KernelInfo> info = MakeInfo(std::move(record));
  if (!info.ok()) return FinishCompile(job, info.status());
  job->result.info = *std::move(info);
  FinishCompile(job, std::move(job->result));
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

absl::StatusOr<std::shared_ptr<const KernelManager::StoredProgram>>
KernelManager::ReadStoredProgram(const cache::KernelRecord& record) {
  {
    absl::MutexLock lock(&mu_);
    auto it = sources_.find(record.id);
    if (it != sources_.end()) {
      if (std::shared_ptr<const StoredProgram> shared = it->second.lock()) return shared;
    }
  }
  if (registry_->Find(record.backend) == nullptr) {
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
  auto stored =
      std::make_shared<const StoredProgram>(StoredProgram{record, std::move(verified), options});
  absl::MutexLock lock(&mu_);
  for (auto it = sources_.begin(); it != sources_.end();) {
    if (it->second.expired()) {
      sources_.erase(it++);
    } else {
      ++it;
    }
  }
  sources_[record.id] = stored;
  return stored;
}

absl::StatusOr<std::shared_ptr<backend::CompiledProgram>> KernelManager::RebuildNow(
    const StoredProgram& stored, const RequestControl& control) {
  const cache::KernelRecord& record = stored.record;
  backend::Backend* backend = registry_->Find(record.backend);
  if (backend == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("kernel ", record.id,
                                                      " was compiled for backend '", record.backend,
                                                      "', which this daemon does not have"));
  }
  const absl::Time start = absl::Now();
  ANERD_ASSIGN_OR_RETURN(std::unique_ptr<backend::CompiledProgram> compiled,
                         CompileWithinLimits(backend, stored.verified, stored.options, control));
  const double ms = MsSince(start);
  if (observer_.compiled) observer_.compiled(record.backend, ms);
  std::shared_ptr<backend::CompiledProgram> shared(std::move(compiled));
  cache_->Insert(record.id, shared, CachedBytes(*shared, record));
  PostStore([this, id = record.id, now = NowMs(), ms] { (void)store_->RecordUse(id, 0, now, ms); });
  spdlog::info("recompiled kernel {} from stored sources in {:.1f} ms", record.id.substr(0, 12),
               ms);
  return shared;
}

void KernelManager::Eval(std::string id, std::vector<backend::NamedTensor> inputs,
                         RequestControl control,
                         std::function<void(absl::StatusOr<KernelEvalResult>)> done) {
  auto job = std::make_shared<EvalJob>();
  job->id = std::move(id);
  job->inputs = std::move(inputs);
  job->control = std::move(control);
  job->done = std::move(done);
  std::optional<std::string> backend;
  {
    absl::MutexLock lock(&mu_);
    auto it = backend_of_.find(job->id);
    if (it != backend_of_.end()) backend = it->second;
  }
  if (backend.has_value()) {
    auto it = executors_.find(*backend);
    if (it == executors_.end()) {
      return FinishEval(job, absl::FailedPreconditionError(
                                 absl::StrCat("kernel ", job->id, " needs backend '", *backend,
                                              "', which this daemon does not have")));
    }
    job->backend = *std::move(backend);
    job->executor = it->second;
    if (cache_->Contains(job->id)) {
      uint64_t input_bytes = 0;
      for (const backend::NamedTensor& t : job->inputs) input_bytes += t.tensor.bytes().size();
      // A tiny evaluation of a program in memory runs on this thread when the executor is idle
      // (it lends the device: device_executor.h TryRunHere), sparing two thread hand-offs.
      return RunEval(job, lend_idle_device_.load() && input_bytes <= kLendMaxInputBytes);
    }
  }
  // Not in memory (or not indexed): the record, and the sources to rebuild from, are read on the
  // store thread.
  PostLoadForEval(job);
}

void KernelManager::PostLoadForEval(const EvalJobPtr& job) {
  PostStore([this, job] {
    Guarded(
        "evaluation", [&] { LoadForEval(job); },
        [&](absl::Status s) { FinishEval(job, std::move(s)); });
  });
}

void KernelManager::FinishEval(const EvalJobPtr& job, absl::StatusOr<KernelEvalResult> result) {
  std::function<void(absl::StatusOr<KernelEvalResult>)> done = std::move(job->done);
  job->done = nullptr;
  if (done) done(std::move(result));
}

void KernelManager::RunEval(const EvalJobPtr& job, bool lend) {
  DeviceExecutor::Work work = [this, job](absl::Status admission, absl::Duration queued) {
    EvalOnDevice(job, std::move(admission), queued);
  };
  if (lend &&
      job->executor->TryRunHere(TaskClass::kInteractive, job->control, "evaluation", work)) {
    return;
  }
  job->executor->Submit(TaskClass::kInteractive, job->control, "evaluation", std::move(work));
}

void KernelManager::LoadForEval(const EvalJobPtr& job) {
  if (stopping()) {
    return FinishEval(job, absl::UnavailableError("the kernel manager is shutting down; retry"));
  }
  if (absl::Status s = job->control.Check("evaluation"); !s.ok()) return FinishEval(job, s);
  // Read when the evaluation is about to be queued: a kernel deleted meanwhile is NOT_FOUND.
  absl::StatusOr<cache::KernelRecord> record = store_->Get(job->id);
  if (!record.ok()) return FinishEval(job, record.status());
  Remember(record->id, record->backend);
  auto it = executors_.find(record->backend);
  if (it == executors_.end()) {
    return FinishEval(job, absl::FailedPreconditionError(
                               absl::StrCat("kernel ", job->id, " needs backend '", record->backend,
                                            "', which this daemon does not have")));
  }
  job->backend = record->backend;
  job->executor = it->second;
  if (job->must_read || !cache_->Contains(job->id)) {
    absl::StatusOr<std::shared_ptr<const StoredProgram>> stored = ReadStoredProgram(*record);
    if (!stored.ok()) return FinishEval(job, NameKernel(job->id, stored.status()));
    job->stored = *std::move(stored);
  }
  RunEval(job, /*lend=*/false);  // never the store thread's to run device work
}

void KernelManager::EvalOnDevice(const EvalJobPtr& job, absl::Status admission,
                                 absl::Duration queued) {
  if (!admission.ok()) return FinishEval(job, admission);
  Guarded(
      "evaluation", [&] { EvalOnDeviceAdmitted(job, queued); },
      [&](absl::Status s) { FinishEval(job, std::move(s)); });
}

void KernelManager::EvalOnDeviceAdmitted(const EvalJobPtr& job, absl::Duration queued) {
  const absl::Time start = absl::Now();
  std::shared_ptr<backend::CompiledProgram> program = cache_->Lookup(job->id);
  bool recompiled = false;
  if (program == nullptr) {
    bool indexed = false;
    {
      absl::MutexLock lock(&mu_);
      indexed = backend_of_.contains(job->id);
    }
    if (job->stored == nullptr || !indexed) {
      // Evicted since it was queued (or deleted: then the store says so): the record and the
      // sources are read off the device, and the evaluation is queued again.
      job->stored.reset();
      job->must_read = true;
      return PostLoadForEval(job);
    }
    absl::StatusOr<std::shared_ptr<backend::CompiledProgram>> rebuilt =
        RebuildNow(*job->stored, job->control);
    job->stored.reset();  // the sources: the program holds what it needs
    if (!rebuilt.ok()) return FinishEval(job, NameKernel(job->id, rebuilt.status()));
    program = *std::move(rebuilt);
    recompiled = true;
  }
  job->stored.reset();
  int64_t bytes = 0;
  FinishEval(job, EvalNow(job, std::move(program), recompiled, start, queued, &bytes));
  // A large evaluation leaves its buffers in this thread's malloc arena: hand them back.
  std::vector<backend::NamedTensor>().swap(job->inputs);
  TrimFreeMemoryAfter(bytes);
}

absl::StatusOr<KernelEvalResult> KernelManager::EvalNow(
    const EvalJobPtr& job, std::shared_ptr<backend::CompiledProgram> program, bool recompiled,
    absl::Time start, absl::Duration queued, int64_t* bytes) {
  KernelEvalResult result;
  result.timing.queued_us = absl::ToDoubleMicroseconds(queued);
  result.timing.recompiled = recompiled;
  absl::StatusOr<backend::RunResult> run =
      program->RunStoppable(job->inputs, StopFor(job->control, "evaluation"));
  if (!run.ok()) return NameKernel(job->id, run.status());
  CountUse(job->id);
  result.outputs = std::move(run->outputs);
  result.timing.execute_us = run->timing.total_us;
  result.timing.hardware_us = run->timing.hardware_us;
  result.timing.hardware_simulated = run->timing.hardware_simulated;
  if (observer_.evaluated) observer_.evaluated(job->backend, result.timing.execute_us / 1000.0);
  result.timing.total_us = absl::ToDoubleMicroseconds(absl::Now() - start);
  for (const std::vector<backend::NamedTensor>* list :
       {&std::as_const(job->inputs), &std::as_const(result.outputs)}) {
    for (const backend::NamedTensor& t : *list) *bytes += t.tensor.bytes().size();
  }
  return result;
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
  sources_.erase(id);
}

absl::Status KernelManager::ClaimOwnerQuota(CompileJob& job) {
  const KernelCompileRequest& request = job.request;
  const std::string& id = job.record.id;
  if (request.owner.empty() || request.max_owned <= 0) return absl::OkStatus();
  ANERD_ASSIGN_OR_RETURN(std::vector<std::string> owned, store_->OwnedIds(request.owner));
  if (std::binary_search(owned.begin(), owned.end(), id)) return absl::OkStatus();  // counted
  absl::MutexLock lock(&mu_);
  // The kernels this owner's compiles in flight will add count too: the checks and the commits
  // are separate store-thread tasks now (the executor compiles between them).
  auto& claims = owner_claims_[request.owner];
  int64_t total = static_cast<int64_t>(owned.size());
  for (const auto& [claimed, compiles] : claims) {
    if (!std::binary_search(owned.begin(), owned.end(), claimed)) ++total;
  }
  if (!claims.contains(id) && total >= request.max_owned) {
    if (claims.empty()) owner_claims_.erase(request.owner);
    return absl::ResourceExhaustedError(
        absl::StrCat("kernel quota: client ", request.owner, " already stores ", total,
                     " kernels, its limit (anerd --quota-kernels=", request.max_owned,
                     "); delete some with anectl kernel rm"));
  }
  ++claims[id];
  job.owner_claim = true;
  return absl::OkStatus();
}

void KernelManager::ReleaseClaims(CompileJob& job) {
  if (!job.owner_claim && !job.kernel_claim) return;
  absl::MutexLock lock(&mu_);
  if (job.owner_claim) {
    auto owner = owner_claims_.find(job.request.owner);
    if (owner != owner_claims_.end()) {
      auto claim = owner->second.find(job.record.id);
      if (claim != owner->second.end() && --claim->second <= 0) owner->second.erase(claim);
      if (owner->second.empty()) owner_claims_.erase(owner);
    }
    job.owner_claim = false;
  }
  if (job.kernel_claim) {
    --new_kernel_claims_;
    job.kernel_claim = false;
  }
}

}  // namespace anerd::engine
