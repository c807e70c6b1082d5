// The probe RPCs: RunProbe (server streaming through a write reactor), ListProbeResults and
// GetProbeResult. Handlers only parse, validate and enqueue; the probe runs on the backend's
// device executor (engine::ProbeManager) and its rows are written here as they arrive.
#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/rpc/grpc_status.h"
#include "server/service/anerd_service.h"
#include "server/service/convert.h"
#include "spdlog/spdlog.h"

namespace anerd::service {
namespace {

// Streams one probe run. Messages produced on the executor thread are queued and written one at a
// time (gRPC allows one outstanding write); Finish waits for the queue to drain. If the client
// goes away, OnCancel sets the run's cancel flag and the probe stops within one step of an
// evaluation; the reactor still waits for the engine's completion before finishing, so engine
// callbacks never see a deleted reactor.
class RunProbeReactor : public grpc::ServerWriteReactor<v1::RunProbeResponse> {
 public:
  // `slot`: the caller's queued-request slot, held until the probe ends, or the quota error.
  // `owner` is recorded with the result.
  RunProbeReactor(grpc::CallbackServerContext* context, const v1::RunProbeRequest* request,
                  engine::Engine* engine, absl::StatusOr<std::unique_ptr<ClientQuotas::Slot>> slot,
                  std::string owner) {
    if (!slot.ok()) {
      Finish(ToGrpcStatus(slot.status()));
      return;
    }
    slot_ = *std::move(slot);
    const auto deadline = context->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      control_.deadline = absl::FromChrono(deadline);
    }
    absl::StatusOr<engine::ProbeRunRequest> parsed = FromProto(*request);
    if (!parsed.ok()) {
      Finish(ToGrpcStatus(parsed.status()));
      return;
    }
    parsed->owner = std::move(owner);
    engine->probes().Run(
        *std::move(parsed), control_,
        [this](const engine::ProbeStart& start) {
          v1::RunProbeResponse m;
          ToProto(start, m.mutable_started());
          Enqueue(std::move(m));
        },
        [this](const probes::ProbeRow& row) {
          v1::RunProbeResponse m;
          ToProto(row, m.mutable_row());
          Enqueue(std::move(m));
        },
        [this](absl::StatusOr<probes::ProbeResult> result) {
          if (result.ok()) {
            v1::RunProbeResponse m;
            ToProto(*result, m.mutable_summary());
            Enqueue(std::move(m));
          }
          RequestFinish(result.status());
        });
  }

  void OnWriteDone(bool ok) override {
    const v1::RunProbeResponse* next = nullptr;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      queue_.pop_front();
      if (!ok) {
        broken_ = true;  // the client is gone: drop the rest
        queue_.clear();
      }
      if (!queue_.empty()) {
        next = &queue_.front();
      } else {
        writing_ = false;
        finish = finish_requested_ && !finished_;
        finished_ = finished_ || finish;
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish) {
      slot_.reset();
      Finish(final_status_);
    }
  }
  void OnCancel() override { control_.cancelled->store(true); }
  void OnDone() override { delete this; }

 private:
  void Enqueue(v1::RunProbeResponse message) {
    const v1::RunProbeResponse* start = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (broken_) return;
      queue_.push_back(std::move(message));  // deque: references to queued items stay valid
      if (writing_) return;
      writing_ = true;
      start = &queue_.front();
    }
    StartWrite(start);
  }

  void RequestFinish(const absl::Status& status) {
    if (!status.ok()) spdlog::debug("rpc RunProbe failed: {}", status.ToString());
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      final_status_ = ToGrpcStatus(status);
      finish_requested_ = true;
      finish = !writing_ && !finished_;
      finished_ = finished_ || finish;
    }
    if (finish) Finish(final_status_);
  }

  engine::RequestControl control_;
  std::unique_ptr<ClientQuotas::Slot> slot_;  // released when the call is done
  absl::Mutex mu_;
  std::deque<v1::RunProbeResponse> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_;  // written once under mu_ before Finish reads it
};

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context,
                                     const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerWriteReactor<v1::RunProbeResponse>* AnerdService::RunProbe(
    grpc::CallbackServerContext* context, const v1::RunProbeRequest* request) {
  const Caller caller = CallerOf(context);
  return new RunProbeReactor(context, request, engine_, quotas_.AcquireQueued(caller.client),
                             caller.client);
}

grpc::ServerUnaryReactor* AnerdService::ListProbeResults(grpc::CallbackServerContext* context,
                                                         const v1::ListProbeResultsRequest* request,
                                                         v1::ListProbeResultsResponse* response) {
  if (request->limit() < 0) {
    return FinishWith(context, absl::InvalidArgumentError("limit must be >= 0"));
  }
  const Caller caller = CallerOf(context);
  // A non-admin caller never sees unowned results: its own name is never "".
  absl::StatusOr<std::vector<probes::ProbeResult>> results =
      engine_->probes().List(request->probe(), request->limit(), caller.admin ? "" : caller.client);
  if (results.ok()) {
    for (const probes::ProbeResult& r : *results) ToProto(r, response->add_results());
  }
  return FinishWith(context, results.status());
}

grpc::ServerUnaryReactor* AnerdService::GetProbeResult(grpc::CallbackServerContext* context,
                                                       const v1::GetProbeResultRequest* request,
                                                       v1::ProbeResult* response) {
  if (request->result_id().empty()) {
    return FinishWith(context, absl::InvalidArgumentError("result_id is empty"));
  }
  absl::StatusOr<probes::ProbeResult> result = engine_->probes().Get(request->result_id());
  if (result.ok() && !CallerOf(context).Sees(result->owner)) {
    result = probes::ProbeResultNotFound(request->result_id());
  }
  if (result.ok()) ToProto(*result, response);
  return FinishWith(context, result.status());
}

}  // namespace anerd::service
