// Evaluate (issue 20 item 4): the loss of a model on token data. The handler checks the caller
// (sessions and artifacts it may see, no daemon-side paths from TCP), resolves artifacts to their
// blobs and hands the work to the session manager, which runs it on the backend's executor; the
// reactor finishes from there.
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "server/service/anerd_service.h"
#include "server/service/convert.h"

namespace anerd::service {
namespace {

void ToProto(const sessions::EvaluateResult& r, v1::EvaluateResponse* out) {
  out->set_loss(r.report.loss);
  out->set_perplexity(r.report.perplexity);
  out->set_sequences(r.report.sequences);
  out->set_tokens(r.report.tokens);
  out->set_source(r.report.source);
  out->set_step(r.step);
  out->set_checkpoint(r.checkpoint);
  out->set_backend(r.backend);
  out->set_eval_ms(r.report.eval_ms);
  out->set_seq(r.seq);
}

}  // namespace

grpc::ServerUnaryReactor* AnerdService::Evaluate(grpc::CallbackServerContext* context,
                                                 const v1::EvaluateRequest* request,
                                                 v1::EvaluateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto fail = [reactor](const absl::Status& status) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  };
  const Caller caller = CallerOf(context);
  sessions::EvaluateSpec spec;
  spec.session_id = request->session_id();
  if (request->checkpoint() != "" && request->checkpoint() != "latest" &&
      request->checkpoint() != "best") {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("checkpoint: '", request->checkpoint(), "' must be 'latest' or 'best'")));
  }
  if (!request->checkpoint().empty() && spec.session_id.empty()) {
    return fail(absl::InvalidArgumentError("checkpoint: only with session_id"));
  }
  spec.best = request->checkpoint() == "best";
  if (!spec.session_id.empty()) {
    absl::StatusOr<sessions::SessionSnapshot> visible = VisibleSession(caller, spec.session_id);
    if (!visible.ok()) return fail(visible.status());
  }
  if (!request->model().empty() && !request->model_artifact().empty()) {
    return fail(absl::InvalidArgumentError(
        "model_artifact: give either model_artifact or model, not both"));
  }
  if (!request->data().empty() && !request->data_artifact().empty()) {
    return fail(
        absl::InvalidArgumentError("data_artifact: give either data_artifact or data, not both"));
  }
  if (absl::Status s = RemotePathError(caller, "model", request->model()); !s.ok()) return fail(s);
  if (absl::Status s = RemotePathError(caller, "data", request->data()); !s.ok()) return fail(s);
  spec.model_path = request->model();
  spec.data_path = request->data();
  spec.data_format = request->data_format();
  struct Artifact {
    const char* field;
    const std::string& id;
    const char* kind;
    std::string* path;
    bool* resolved;
  };
  const Artifact artifacts[] = {
      {"model_artifact", request->model_artifact(), "model", &spec.model_path,
       &spec.model_from_artifact},
      {"data_artifact", request->data_artifact(), "dataset", &spec.data_path,
       &spec.data_from_artifact},
  };
  for (const Artifact& a : artifacts) {
    if (a.id.empty()) continue;
    absl::StatusOr<artifacts::ArtifactRecord> r = VisibleArtifact(caller, a.id);
    if (!r.ok()) {
      return fail(
          absl::Status(r.status().code(), absl::StrCat(a.field, ": ", r.status().message())));
    }
    if (r->kind != a.kind) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat(a.field, ": artifact ", a.id, " is a ", r->kind, ", not a ", a.kind)));
    }
    *a.path = engine_->artifacts().BlobPath(r->id);
    *a.resolved = true;
    // A dataset's format follows its name, as for training (ResolveArtifacts).
    if (a.resolved == &spec.data_from_artifact && spec.data_format.empty()) {
      spec.data_format = absl::EndsWith(r->NameFor(caller.client), ".bin") ? "tokens" : "text";
    }
  }
  spec.batches = request->batches();
  spec.backend = request->backend();
  spec.numerics = request->numerics();
  absl::StatusOr<std::unique_ptr<ClientQuotas::Slot>> slot = quotas_.AcquireQueued(caller.client);
  if (!slot.ok()) return fail(slot.status());
  std::shared_ptr<ClientQuotas::Slot> held(std::move(*slot));
  engine_->sessions().Evaluate(
      std::move(spec), [reactor, response, held](absl::StatusOr<sessions::EvaluateResult> result) {
        if (result.ok()) ToProto(*result, response);
        reactor->Finish(ToGrpcStatus(result.status()));
      });
  return reactor;
}

}  // namespace anerd::service
