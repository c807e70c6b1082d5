#include "server/engine/probe_manager.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace anerd::engine {

ProbeManager::ProbeManager(const backend::BackendRegistry* registry,
                           std::map<std::string, DeviceExecutor*> executors,
                           probes::ProbeStore* store, std::string default_backend,
                           probes::ProbeBudget budget)
    : registry_(registry),
      executors_(std::move(executors)),
      store_(store),
      default_backend_(std::move(default_backend)),
      budget_(budget) {
  // Newest first: the first result of a backend with peak rows is its measured peak.
  absl::StatusOr<std::vector<probes::ProbeResult>> stored = store_->List("", 1000);
  if (!stored.ok()) return;
  for (const probes::ProbeResult& r : *stored) NotePeak(r, /*replace=*/false);
}

void ProbeManager::NotePeak(const probes::ProbeResult& result, bool replace) {
  double best = 0;
  for (const probes::ProbeRow& row : result.rows) {
    if (row.probe == "peak" && row.tflops > best) best = row.tflops;
  }
  if (!(best > 0)) return;
  absl::MutexLock lock(&mu_);
  const std::string& backend = result.fingerprint.backend;
  if (!replace && peaks_.count(backend) > 0) return;
  peaks_[backend] = {best, result.id};
}

std::optional<ProbeManager::BackendPeak> ProbeManager::MeasuredPeak(
    const std::string& backend) const {
  absl::MutexLock lock(&mu_);
  auto it = peaks_.find(backend);
  if (it == peaks_.end()) return std::nullopt;
  return it->second;
}

void ProbeManager::Run(ProbeRunRequest request, RequestControl control, StartFn on_start,
                       probes::RowFn on_row, DoneFn done) {
  if (request.backend.empty()) request.backend = default_backend_;
  backend::Backend* backend = registry_->Find(request.backend);
  auto executor = executors_.find(request.backend);
  if (backend == nullptr || executor == executors_.end()) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("backend: unknown backend '", request.backend,
                     "' (this daemon has: ", absl::StrJoin(registry_->names(), ", "), ")")));
  }
  if (absl::Status s = probes::ValidateOptions(request.options); !s.ok()) return done(s);
  if (absl::Status s = probes::CheckBudget(request.options, budget_); !s.ok()) return done(s);
  {
    absl::MutexLock lock(&mu_);
    active_.insert(control.cancelled);
  }
  auto shared = std::make_shared<ProbeRunRequest>(std::move(request));
  executor->second->Submit(
      TaskClass::kProbe, control,
      absl::StrCat("probe ", probes::ProbeKindName(shared->options.kind)),
      [this, shared, control, backend, on_start = std::move(on_start), on_row = std::move(on_row),
       done = std::move(done)](absl::Status admission, absl::Duration queued) {
        if (admission.ok()) {
          RunNow(*shared, control, backend, queued, on_start, on_row, done);
        } else {
          done(admission);
        }
        absl::MutexLock lock(&mu_);
        active_.erase(control.cancelled);
      });
}

void ProbeManager::RunNow(const ProbeRunRequest& request, const RequestControl& control,
                          backend::Backend* backend, absl::Duration queued, const StartFn& on_start,
                          const probes::RowFn& on_row, const DoneFn& done) {
  probes::ProbeResult result;
  result.created_ms = absl::ToUnixMillis(absl::Now());
  result.id = probes::NewProbeResultId(result.created_ms);
  result.options = request.options;
  result.owner = request.owner;
  result.fingerprint = probes::MachineFingerprint(backend->Describe());
  on_start({result.id, probes::PlannedRows(request.options), queued, result.fingerprint});
  const std::string what = absl::StrCat("probe ", probes::ProbeKindName(request.options.kind));
  spdlog::info("{} ({}) started on {}", what, result.id, result.fingerprint.backend);
  absl::StatusOr<probes::ProbeSummary> summary = probes::RunProbe(
      backend, request.options, [&control, &what] { return control.Check(what); },
      [&result, &on_row](const probes::ProbeRow& row) {
        result.rows.push_back(row);
        on_row(row);
      },
      energy_);
  if (!summary.ok()) {
    spdlog::info("{} ({}) stopped: {}", what, result.id, summary.status().ToString());
    return done(summary.status());
  }
  result.summary = *std::move(summary);
  if (absl::Status s = store_->Put(result); !s.ok()) {
    spdlog::warn("could not store probe result {}: {}", result.id, s.ToString());
    return done(s);
  }
  NotePeak(result, /*replace=*/true);
  spdlog::info("{} ({}) finished in {:.1f} s, {} rows", what, result.id,
               result.summary.wall_seconds, result.rows.size());
  done(std::move(result));
}

absl::StatusOr<std::vector<probes::ProbeResult>> ProbeManager::List(const std::string& probe,
                                                                    int limit,
                                                                    const std::string& owner) {
  if (!probe.empty()) {
    absl::StatusOr<probes::ProbeKind> kind = probes::ProbeKindFromName(probe, "probe");
    if (!kind.ok()) return kind.status();
  }
  return store_->List(probe, limit > 0 ? limit : 1000, owner);
}

absl::StatusOr<probes::ProbeResult> ProbeManager::Get(const std::string& id) {
  return store_->Get(id);
}

void ProbeManager::CancelAll() {
  absl::MutexLock lock(&mu_);
  for (const auto& flag : active_) flag->store(true);
}

}  // namespace anerd::engine
