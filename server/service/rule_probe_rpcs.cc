// ProbeAneRules: the ANE capability probe (`anectl doctor --probe`). The handler only checks the
// caller and enqueues; the probe runs on the backend's device executor (engine::RuleProbeManager)
// and the reactor finishes from there. Admins only: the measured rules apply to every client.
#include <memory>
#include <utility>

#include "absl/time/time.h"
#include "common/rpc/grpc_status.h"
#include "server/service/anerd_service.h"
#include "server/service/convert.h"

namespace anerd::service {

grpc::ServerUnaryReactor* AnerdService::ProbeAneRules(grpc::CallbackServerContext* context,
                                                      const v1::ProbeAneRulesRequest* request,
                                                      v1::ProbeAneRulesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const Caller caller = CallerOf(context);
  if (!caller.admin) {
    reactor->Finish(ToGrpcStatus(absl::PermissionDeniedError(
        "ProbeAneRules changes the ANE rules for every client: it needs an admin token")));
    return reactor;
  }
  absl::StatusOr<std::unique_ptr<ClientQuotas::Slot>> slot = quotas_.AcquireQueued(caller.client);
  if (!slot.ok()) {
    reactor->Finish(ToGrpcStatus(slot.status()));
    return reactor;
  }
  engine::RequestControl control;
  const auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    control.deadline = absl::FromChrono(deadline);
  }
  std::shared_ptr<ClientQuotas::Slot> held(std::move(*slot));
  engine_->rule_probes().Probe(
      request->backend(), control,
      [reactor, response, held](absl::StatusOr<engine::RuleProbeOutcome> outcome) {
        if (outcome.ok()) ToProto(*outcome, response);
        reactor->Finish(ToGrpcStatus(outcome.status()));
      });
  return reactor;
}

}  // namespace anerd::service
