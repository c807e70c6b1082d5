// The Generate RPC (issue 20 item 1): resolves and authorises the model and tokenizer the request
// names (sessions and artifacts the caller sees; daemon-side paths from local callers only), hands
// the call to the engine's GenerationManager and streams its tokens, then the summary.
//
// Flow control: the generation's thread puts events into the stream's queue (at most kMaxQueued;
// it waits there while the client is slow) and the reactor writes them one at a time. A cancelled
// or broken stream closes the queue and cancels the generation, which frees its slot at once.
#include <deque>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/grpc_status.h"
#include "server/service/anerd_service.h"
#include "server/service/convert.h"

namespace anerd::service {
namespace {

constexpr size_t kMaxQueued = 64;

class GenerateReactor : public grpc::ServerWriteReactor<v1::GenerateEvent> {
 public:
  GenerateReactor() : state_(std::make_shared<State>()) {
    absl::MutexLock lock(&state_->link_mu);
    state_->reactor = this;
  }

  // Starts the generation, or finishes with the reason it cannot start.
  void Begin(engine::GenerationManager* generations, engine::GenerateCall call) {
    std::shared_ptr<State> state = state_;
    absl::StatusOr<std::shared_ptr<engine::Generation>> g = generations->Start(
        std::move(call), [state](const generation::TokenEvent& t) { return Sink(state, t); },
        [state](absl::StatusOr<engine::GenerateResult> r) { Done(state, std::move(r)); });
    if (!g.ok()) return Fail(g.status());
    absl::MutexLock lock(&state_->mu);
    state_->generation = *std::move(g);
    if (state_->closed) state_->generation->Cancel();
  }
  void Fail(const absl::Status& status) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->final = ToGrpcStatus(status);
      state_->have_final = true;
    }
    Pump();
  }
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->writing = false;
      if (!ok) Close(state_.get());
    }
    Pump();
  }
  void OnCancel() override {
    {
      absl::MutexLock lock(&state_->mu);
      Close(state_.get());
    }
    Pump();
  }
  void OnDone() override {
    std::shared_ptr<State> state = state_;
    {
      absl::MutexLock lock(&state->link_mu);
      state->reactor = nullptr;
    }
    {
      absl::MutexLock lock(&state->mu);
      Close(state.get());
    }
    delete this;
  }

 private:
  // Shared by the reactor and the generation's thread. Locks: link_mu (keeps `reactor` alive while
  // the generation's thread calls into it) before mu; gRPC is never called with mu held.
  struct State {
    absl::Mutex link_mu ABSL_ACQUIRED_BEFORE(mu);
    GenerateReactor* reactor ABSL_GUARDED_BY(link_mu) = nullptr;  // null once done
    absl::Mutex mu;
    std::shared_ptr<engine::Generation> generation ABSL_GUARDED_BY(mu);
    std::deque<v1::GenerateEvent> queue ABSL_GUARDED_BY(mu);
    bool closed ABSL_GUARDED_BY(mu) = false;  // the client is gone: drop everything
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    bool have_final ABSL_GUARDED_BY(mu) = false;
    grpc::Status final ABSL_GUARDED_BY(mu);
  };

  // On the generation's thread: queues the token, waiting while the queue is full.
  static bool Sink(const std::shared_ptr<State>& state, const generation::TokenEvent& token) {
    {
      absl::MutexLock lock(&state->mu);
      State* s = state.get();
      state->mu.Await(absl::Condition(
          +[](State* s) { return s->closed || s->queue.size() < kMaxQueued; }, s));
      if (state->closed) return false;
      ToProto(token, state->queue.emplace_back().mutable_token());
    }
    Kick(state);
    return true;
  }
  // On the generation's thread: the summary (or the error) ends the stream.
  static void Done(const std::shared_ptr<State>& state, absl::StatusOr<engine::GenerateResult> r) {
    {
      absl::MutexLock lock(&state->mu);
      if (r.ok() && !state->closed) {
        ToProto(*r, state->queue.emplace_back().mutable_summary());
      }
      state->final = ToGrpcStatus(r.status());
      state->have_final = true;
    }
    Kick(state);
  }
  static void Kick(const std::shared_ptr<State>& state) {
    absl::MutexLock lock(&state->link_mu);
    if (state->reactor != nullptr) state->reactor->Pump();
  }
  static void Close(State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    s->closed = true;
    s->queue.clear();
    if (s->generation != nullptr) s->generation->Cancel();
  }
  // Writes the next event, or finishes (decided under mu, done outside it).
  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&state_->mu);
      if (state_->finished || state_->writing) return;
      if (state_->closed) {
        action = kFinish;
        status = grpc::Status::CANCELLED;
      } else if (!state_->queue.empty()) {
        event_ = std::move(state_->queue.front());
        state_->queue.pop_front();
        state_->writing = true;
        action = kWrite;
      } else if (state_->have_final) {
        action = kFinish;
        status = state_->final;
      }
      if (action == kFinish) state_->finished = true;
    }
    if (action == kWrite) StartWrite(&event_);
    if (action == kFinish) Finish(status);
  }

  std::shared_ptr<State> state_;
  v1::GenerateEvent event_;  // the write in flight
};

}  // namespace

absl::Status AnerdService::ResolveGenerateSources(const Caller& caller,
                                                  const v1::GenerateRequest& request,
                                                  engine::GenerateCall* call) {
  if (!call->session_id.empty()) {
    absl::StatusOr<sessions::SessionSnapshot> s = VisibleSession(caller, call->session_id);
    if (!s.ok()) return s.status();
  }
  if (absl::Status s = RemotePathError(caller, "model_path", call->model_file); !s.ok()) return s;
  if (absl::Status s = RemotePathError(caller, "tokenizer_path", call->tokenizer_file); !s.ok()) {
    return s;
  }
  struct Field {
    const char* name;
    const std::string& id;
    std::string* blob;
    const char* kind;
  };
  const Field fields[] = {
      {"model_artifact", request.model_artifact(), &call->model_blob, "model"},
      {"tokenizer_artifact", request.tokenizer_artifact(), &call->tokenizer_blob, "tokenizer"}};
  for (const Field& f : fields) {
    if (f.id.empty()) continue;
    absl::StatusOr<artifacts::ArtifactRecord> r = VisibleArtifact(caller, f.id);
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat(f.name, ": ", r.status().message()));
    }
    if (r->kind != f.kind) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.name, ": artifact ", f.id, " is a ", r->kind, ", not a ", f.kind));
    }
    *f.blob = engine_->artifacts().BlobPath(r->id);
  }
  if (!call->tokenizer_file.empty() && !call->tokenizer_blob.empty()) {
    return absl::InvalidArgumentError(
        "tokenizer_path: give tokenizer_artifact or tokenizer_path, not both");
  }
  return absl::OkStatus();
}

grpc::ServerWriteReactor<v1::GenerateEvent>* AnerdService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  auto* reactor = new GenerateReactor();
  absl::StatusOr<engine::GenerateCall> call = FromProto(*request);
  absl::Status status = call.status();
  if (status.ok()) status = ResolveGenerateSources(CallerOf(context), *request, &*call);
  if (!status.ok()) {
    reactor->Fail(status);
  } else {
    reactor->Begin(&engine_->generations(), *std::move(call));
  }
  return reactor;
}

}  // namespace anerd::service
