// ProbeManager: runs hardware probes (server/probes) on a backend's DeviceExecutor and keeps their
// results in the ProbeStore.
//
// A probe runs as ONE executor task, so it has the device to itself: kernel evaluations and
// training steps submitted meanwhile wait behind it (their timing's queued_us says how long).
// It checks its RequestControl between evaluations, so cancelling the RPC (or Shutdown, via
// CancelAll) stops it within one evaluation. Completed runs are stored with a machine fingerprint;
// cancelled or failed runs are not.
//
// Threading: Run validates on the caller's thread (immediate errors reach `done` inline), then
// calls `on_start`, `on_row` (per measurement) and `done` (exactly once) on the executor thread.
// List/Get/CancelAll may be called from any thread.
#ifndef ANERD_SERVER_ENGINE_PROBE_MANAGER_H_
#define ANERD_SERVER_ENGINE_PROBE_MANAGER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/backend/registry.h"
#include "server/engine/device_executor.h"
#include "server/probes/probe.h"
#include "server/probes/probe_store.h"

namespace anerd::engine {

struct ProbeRunRequest {
  probes::ProbeOptions options;
  std::string backend;  // "" = the daemon's default
  std::string owner;    // recorded with the result (ProbeResult::owner); "" = none
};

struct ProbeStart {
  std::string result_id;  // the id the result will be stored under
  int planned_rows = 0;
  absl::Duration queued;  // how long the probe waited for the device
  probes::Fingerprint fingerprint;
};

class ProbeManager {
 public:
  using StartFn = std::function<void(const ProbeStart&)>;
  using DoneFn = std::function<void(absl::StatusOr<probes::ProbeResult>)>;

  // Pointers are not owned and must outlive the manager; `executors` has one entry per backend.
  ProbeManager(const backend::BackendRegistry* registry,
               std::map<std::string, DeviceExecutor*> executors, probes::ProbeStore* store,
               std::string default_backend, probes::ProbeBudget budget = {});

  // INVALID_ARGUMENT (naming the field) for bad options or an unknown backend, RESOURCE_EXHAUSTED
  // (naming the grid point, the estimate and the flag) when a point exceeds the budget — all
  // before anything is queued, via `done`. The probe checks `control` between evaluations and
  // the backend between the steps of one evaluation, so a cancelled or late probe frees the
  // device within one step.
  void Run(ProbeRunRequest request, RequestControl control, StartFn on_start, probes::RowFn on_row,
           DoneFn done);

  // Newest first; `probe` filters by name ("" = all; INVALID_ARGUMENT for an unknown name) and
  // `owner` by owner ("" = all).
  absl::StatusOr<std::vector<probes::ProbeResult>> List(const std::string& probe, int limit,
                                                        const std::string& owner = "");
  // NOT_FOUND naming the id.
  absl::StatusOr<probes::ProbeResult> Get(const std::string& id);

  // Rows get the power over their timed iterations from `energy` (the sampler's cached snapshot).
  // Call before the first Run.
  void SetEnergy(probes::EnergyFn energy) { energy_ = std::move(energy); }

  // Cancels every running or queued probe (daemon shutdown).
  void CancelAll();

  // The peak FLOP rate measured on `backend`: the highest TFLOPS among the "peak" rows of the
  // newest stored result of that backend that has any. From memory (never blocks on the store):
  // loaded at construction, updated when a probe with peak rows finishes. nullopt when none.
  struct BackendPeak {
    double tflops = 0;
    std::string result_id;
  };
  std::optional<BackendPeak> MeasuredPeak(const std::string& backend) const;

 private:
  void RunNow(const ProbeRunRequest& request, const RequestControl& control,
              backend::Backend* backend, absl::Duration queued, const StartFn& on_start,
              const probes::RowFn& on_row, const DoneFn& done);

  const backend::BackendRegistry* registry_;
  std::map<std::string, DeviceExecutor*> executors_;
  probes::ProbeStore* store_;
  std::string default_backend_;
  probes::ProbeBudget budget_;
  probes::EnergyFn energy_;

  void NotePeak(const probes::ProbeResult& result, bool replace) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::set<std::shared_ptr<std::atomic<bool>>> active_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, BackendPeak> peaks_ ABSL_GUARDED_BY(mu_);  // by backend name
};

}  // namespace anerd::engine

#endif  // ANERD_SERVER_ENGINE_PROBE_MANAGER_H_
