// Training-session RPCs of the Anerd service: unary lifecycle calls, ExportModel (a stream of
// file chunks) and WatchSession (a stream of events pulled from the session's log at the
// client's pace, so a slow watcher never holds training back and never misses an event).
#include <atomic>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "server/service/anerd_service.h"
#include "server/service/convert.h"
#include "server/training/model_export.h"
#include "spdlog/spdlog.h"

namespace anerd::service {
namespace {

constexpr size_t kExportChunkBytes = 1 << 20;
constexpr size_t kWatchBatch = 256;

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// The session as `caller` may see it: its owner for admins only (authz.h).
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const Caller& caller,
                                const absl::StatusOr<sessions::SessionSnapshot>& session,
                                v1::SessionInfo* response) {
  if (session.ok()) ToProto(*session, caller.admin, response);
  return Done(context, session.status());
}

// Streams the files of a finished export, one after another (each file's first chunk names it),
// then deletes the export directory.
class ExportReactor : public grpc::ServerWriteReactor<v1::ExportModelChunk> {
 public:
  ExportReactor(sessions::SessionManager* sessions, const std::string& id,
                training::ExportFormat format, bool best)
      : files_(training::ExportFileNames(format)) {
    sessions->Export(id, format, best,
                     [this](absl::StatusOr<std::string> dir) { Begin(std::move(dir)); });
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return End(absl::CancelledError("client went away"));
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Begin(absl::StatusOr<std::string> dir) {
    if (!dir.ok()) return End(dir.status());
    dir_ = *dir;
    Next();
  }
  // Sends the next chunk: the rest of the current file, else the next file's first chunk (one,
  // possibly empty, that names it), else finishes.
  void Next() {
    while (true) {
      if (!in_.is_open()) {
        if (next_file_ >= files_.size()) return End(absl::OkStatus());
        in_.clear();
        in_.open(dir_ + "/" + files_[next_file_], std::ios::binary | std::ios::ate);
        if (!in_) return End(absl::InternalError("cannot read the exported model"));
        total_ = static_cast<uint64_t>(in_.tellg());
        in_.seekg(0);
        started_file_ = false;
      }
      std::string buf(kExportChunkBytes, '\0');
      in_.read(buf.data(), buf.size());
      buf.resize(in_.gcount());
      if (!buf.empty() || !started_file_) {
        chunk_.Clear();
        chunk_.set_data(std::move(buf));
        if (!started_file_) {
          chunk_.set_total_bytes(total_);
          chunk_.set_file_name(files_[next_file_]);
        }
        started_file_ = true;
        StartWrite(&chunk_);
        return;
      }
      in_.close();
      ++next_file_;
    }
  }
  void End(const absl::Status& status) {
    in_.close();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
    Finish(ToGrpcStatus(status));
  }

  const std::vector<std::string> files_;
  size_t next_file_ = 0;
  std::string dir_;
  std::ifstream in_;
  uint64_t total_ = 0;
  bool started_file_ = false;
  v1::ExportModelChunk chunk_;
};

// Pulls events from the session log. At most one write is outstanding; when caught up it asks the
// manager to wake it. `link_` lets a late wake find out that the reactor is gone.
class WatchReactor : public grpc::ServerWriteReactor<v1::SessionEvent> {
 public:
  WatchReactor(sessions::SessionManager* sessions, std::string id, uint64_t from)
      : sessions_(sessions), id_(std::move(id)), next_(from), link_(std::make_shared<Link>()) {
    link_->reactor = this;
    Pump();
  }
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) cancelled_ = true;
    }
    Pump();
  }
  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      waiting_ = false;  // stop waiting: finish now
    }
    Pump();
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&link_->mu);
      link_->reactor = nullptr;
    }
    sessions_->CancelWake(id_, token_.load());
    delete this;
  }

 private:
  struct Link {
    absl::Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
  };

  // Sends the next buffered event, refills the buffer from the log, waits, or finishes. gRPC and
  // manager calls are made outside mu_ (a wake may run synchronously).
  void Pump() {
    enum { kNothing, kWrite, kWait, kFinish } action = kNothing;
    grpc::Status finish_status;
    uint64_t wait_from = 0;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || writing_ || waiting_) return;
      if (cancelled_) {
        action = kFinish;
        finish_status = grpc::Status::CANCELLED;
      } else {
        if (buffer_.empty()) {
          bool ended = false;
          std::vector<sessions::SessionEventRecord> events;
          absl::Status st = sessions_->ReadEvents(id_, next_, kWatchBatch, &events, &ended);
          for (sessions::SessionEventRecord& e : events) buffer_.push_back(std::move(e));
          if (!st.ok()) {
            action = kFinish;
            finish_status = ToGrpcStatus(st);
          } else if (buffer_.empty()) {
            action = ended ? kFinish : kWait;
          }
        }
        if (action == kNothing) {
          ToProto(buffer_.front(), &event_);
          next_ = buffer_.front().seq + 1;
          buffer_.pop_front();
          writing_ = true;
          action = kWrite;
        }
      }
      if (action == kFinish) finished_ = true;
      if (action == kWait) {
        waiting_ = true;
        wait_from = next_;
      }
    }
    if (action == kWrite) StartWrite(&event_);
    if (action == kFinish) Finish(finish_status);
    if (action == kWait) {
      std::shared_ptr<Link> link = link_;
      token_ = sessions_->WakeWhenAvailable(id_, wait_from, [link] {
        absl::MutexLock l(&link->mu);
        if (link->reactor != nullptr) link->reactor->Wake();
      });
    }
  }
  void Wake() {
    {
      absl::MutexLock lock(&mu_);
      if (!waiting_) return;
      waiting_ = false;
    }
    Pump();
  }

  sessions::SessionManager* sessions_;
  const std::string id_;
  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_);
  std::deque<sessions::SessionEventRecord> buffer_ ABSL_GUARDED_BY(mu_);
  v1::SessionEvent event_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> token_{0};
  std::shared_ptr<Link> link_;
};

// A stream that fails at once with `status`.
template <typename Message>
class FailedWrite : public grpc::ServerWriteReactor<Message> {
 public:
  explicit FailedWrite(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<sessions::SessionSnapshot> AnerdService::VisibleSession(const Caller& caller,
                                                                       const std::string& id) {
  absl::StatusOr<sessions::SessionSnapshot> session = engine_->sessions().Get(id);
  if (session.ok() && !caller.Sees(session->owner)) return sessions::SessionNotFound(id);
  return session;
}

grpc::ServerUnaryReactor* AnerdService::StartTraining(grpc::CallbackServerContext* context,
                                                      const v1::StartTrainingRequest* request,
                                                      v1::SessionInfo* response) {
  const Caller caller = CallerOf(context);
  absl::StatusOr<training::TrainSpec> spec = FromProto(request->spec());
  if (!spec.ok()) return Done(context, spec.status());
  if (absl::Status s = RemotePathError(caller, "init", spec->init_model_path); !s.ok()) {
    return Done(context, s);
  }
  if (absl::Status s = RemotePathError(caller, "data", spec->data_path); !s.ok()) {
    return Done(context, s);
  }
  if (absl::Status s = RemotePathError(caller, "val_data", spec->val_data_path); !s.ok()) {
    return Done(context, s);
  }
  if (absl::Status s = ResolveArtifacts(caller, &*spec); !s.ok()) return Done(context, s);
  sessions::SessionManager* sessions = &engine_->sessions();
  return Reply(context, caller,
               quotas_.StartSession(caller.client, sessions, "",
                                    [&] {
                                      return sessions->Start(
                                          *std::move(spec), request->spec().name(),
                                          request->spec().backend(), caller.client);
                                    }),
               response);
}

grpc::ServerUnaryReactor* AnerdService::ListSessions(grpc::CallbackServerContext* context,
                                                     const v1::ListSessionsRequest*,
                                                     v1::ListSessionsResponse* response) {
  const Caller caller = CallerOf(context);
  for (const sessions::SessionSnapshot& s : engine_->sessions().List()) {
    if (caller.Sees(s.owner)) ToProto(s, caller.admin, response->add_sessions());
  }
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AnerdService::GetSession(grpc::CallbackServerContext* context,
                                                   const v1::GetSessionRequest* request,
                                                   v1::SessionInfo* response) {
  const Caller caller = CallerOf(context);
  return Reply(context, caller, VisibleSession(caller, request->session_id()), response);
}

grpc::ServerUnaryReactor* AnerdService::StopSession(grpc::CallbackServerContext* context,
                                                    const v1::StopSessionRequest* request,
                                                    v1::SessionInfo* response) {
  const Caller caller = CallerOf(context);
  absl::StatusOr<sessions::SessionSnapshot> visible = VisibleSession(caller, request->session_id());
  if (!visible.ok()) return Done(context, visible.status());
  return Reply(context, caller, engine_->sessions().Stop(request->session_id()), response);
}

grpc::ServerUnaryReactor* AnerdService::ResumeSession(grpc::CallbackServerContext* context,
                                                      const v1::ResumeSessionRequest* request,
                                                      v1::SessionInfo* response) {
  const Caller caller = CallerOf(context);
  absl::StatusOr<sessions::SessionSnapshot> visible = VisibleSession(caller, request->session_id());
  if (!visible.ok()) return Done(context, visible.status());
  sessions::SessionManager* sessions = &engine_->sessions();
  // The session counts against its owner's quota (an admin may resume another client's session).
  const std::string owner = visible->owner.empty() ? caller.client : visible->owner;
  return Reply(context, caller,
               quotas_.StartSession(owner, sessions, request->session_id(),
                                    [&] {
                                      return sessions->Resume(request->session_id(),
                                                              request->extra_steps(),
                                                              request->ranks());
                                    }),
               response);
}

grpc::ServerUnaryReactor* AnerdService::DeleteSession(grpc::CallbackServerContext* context,
                                                      const v1::DeleteSessionRequest* request,
                                                      v1::DeleteSessionResponse*) {
  absl::StatusOr<sessions::SessionSnapshot> visible =
      VisibleSession(CallerOf(context), request->session_id());
  if (!visible.ok()) return Done(context, visible.status());
  return Done(context, engine_->sessions().Delete(request->session_id()));
}

grpc::ServerWriteReactor<v1::ExportModelChunk>* AnerdService::ExportModel(
    grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) {
  absl::StatusOr<sessions::SessionSnapshot> visible =
      VisibleSession(CallerOf(context), request->session_id());
  if (!visible.ok()) return new FailedWrite<v1::ExportModelChunk>(visible.status());
  absl::StatusOr<training::ExportFormat> format = training::ParseExportFormat(request->format());
  if (!format.ok()) return new FailedWrite<v1::ExportModelChunk>(format.status());
  return new ExportReactor(&engine_->sessions(), request->session_id(), *format, request->best());
}

grpc::ServerWriteReactor<v1::SessionEvent>* AnerdService::WatchSession(
    grpc::CallbackServerContext* context, const v1::WatchSessionRequest* request) {
  absl::StatusOr<sessions::SessionSnapshot> visible =
      VisibleSession(CallerOf(context), request->session_id());
  if (!visible.ok()) return new FailedWrite<v1::SessionEvent>(visible.status());
  sessions::SessionManager& sessions = engine_->sessions();
  absl::StatusOr<uint64_t> from =
      request->from_now() ? sessions.NextSeq(request->session_id())
                          : sessions.SeqForStep(request->session_id(), request->from_step());
  if (!from.ok()) return new FailedWrite<v1::SessionEvent>(from.status());
  return new WatchReactor(&sessions, request->session_id(), *from);
}

}  // namespace anerd::service
