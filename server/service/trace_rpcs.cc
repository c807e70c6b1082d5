// GetSessionTrace: the measured spans of a session's recent steps (sessions::SessionManager::Trace)
// for a caller allowed to see the session. Unary; bounded by kMaxTraceSteps / kMaxTraceSpans.
#include "common/rpc/grpc_status.h"
#include "server/service/anerd_service.h"

namespace anerd::service {

grpc::ServerUnaryReactor* AnerdService::GetSessionTrace(grpc::CallbackServerContext* context,
                                                        const v1::GetSessionTraceRequest* request,
                                                        v1::SessionTrace* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const Caller caller = CallerOf(context);
  absl::StatusOr<sessions::SessionSnapshot> visible = VisibleSession(caller, request->session_id());
  absl::StatusOr<sessions::SessionTrace> trace =
      visible.ok() ? engine_->sessions().Trace(request->session_id(), request->first_step(),
                                               request->last_step())
                   : absl::StatusOr<sessions::SessionTrace>(visible.status());
  if (!trace.ok()) {
    reactor->Finish(ToGrpcStatus(trace.status()));
    return reactor;
  }
  response->set_session_id(request->session_id());
  response->set_first_step(trace->first_step);
  response->set_last_step(trace->last_step);
  response->set_dropped(trace->dropped);
  for (const std::string& name : trace->thread_names) response->add_thread_names(name);
  response->mutable_spans()->Reserve(static_cast<int>(trace->spans.size()));
  for (const training::TraceSpan& s : trace->spans) {
    v1::TraceSpan* out = response->add_spans();
    out->set_name(s.name);
    out->set_layer(s.layer);
    out->set_thread(s.thread);
    out->set_step(s.step);
    out->set_start_unix_ns(s.start_unix_ns);
    out->set_duration_ns(s.duration_ns);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace anerd::service
