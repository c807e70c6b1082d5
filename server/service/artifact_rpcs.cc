// Artifact RPCs of the Anerd service (issue 19): UploadArtifact (a client stream: header, then the
// bytes, verified against the declared SHA-256 and committed by the artifact store only when
// whole), ListArtifacts, GetArtifact, DeleteArtifact and DownloadArtifact (a stream of chunks read
// from the stored blob at the client's pace). Ownership as for kernels (authz.h): a non-admin
// caller sees and deletes only what it owns; everything else is the missing-id NOT_FOUND.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/rpc/grpc_status.h"
#include "server/artifacts/upload_writer.h"
#include "server/service/anerd_service.h"
#include "server/service/convert.h"
#include "spdlog/spdlog.h"

namespace anerd::service {
namespace {

constexpr size_t kMaxArtifactChunkBytes = 4 << 20;
constexpr size_t kDownloadChunkBytes = 1 << 20;
constexpr size_t kMaxArtifactNameBytes = 256;
// Bytes an upload may have received but not yet written: 8 one-MiB chunks (the clients' size).
constexpr uint64_t kMaxQueuedUploadBytes = uint64_t{8} << 20;

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

absl::Status ValidateHeader(const v1::ArtifactHeader& h, uint64_t max_bytes) {
  if (absl::Status s = artifacts::ValidateKind(h.kind()); !s.ok()) return s;
  if (h.name().size() > kMaxArtifactNameBytes || absl::StrContains(h.name(), '\0')) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: longer than ", kMaxArtifactNameBytes, " bytes or holds a NUL"));
  }
  if (!IsSha256Hex(h.sha256())) {
    return absl::InvalidArgumentError(
        "sha256: must be the 64 lowercase hex digits of the bytes' SHA-256");
  }
  if (h.size() > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("size: ", h.size(), " bytes is more than the largest artifact, ", max_bytes,
                     " (raise it with anerd --max-artifact-bytes)"));
  }
  return absl::OkStatus();
}

// Receives one UploadArtifact stream. The reactor validates each message and hands the chunk's
// bytes (moved, not copied) to an UploadWriter, whose thread hashes and writes them to the artifact
// store's temporary file (on disk, never all in memory) and commits it when the stream ends, while
// the reactor reads the next chunk. When the writer's queue is full the reactor stops reading
// until the writer has room (gRPC's flow control then holds the client back). A stream that ends
// early or is cancelled destroys the writer, which joins its thread and unlinks the file, before
// the call finishes.
//
// Threads: gRPC reactions (OnReadDone, OnCancel) and the writer's callbacks (OnWriterRoom,
// OnWriterDone, on the writer thread) share the state under mu_. Whoever first sets finished_
// calls Finish; nobody reads or finishes after. The writer is destroyed (its thread joined)
// outside mu_, since its callbacks take mu_: by End on a reaction thread, or by OnDone, which gRPC
// runs after every reaction has returned.
class UploadReactor : public grpc::ServerReadReactor<v1::UploadArtifactRequest> {
 public:
  UploadReactor(v1::ArtifactInfo* response, artifacts::ArtifactStore* store, Caller caller,
                const QuotaLimits& quotas, uint64_t max_bytes)
      : response_(response), store_(store), caller_(std::move(caller)), max_bytes_(max_bytes) {
    meta_.owner = caller_.client;
    meta_.quota = {quotas.artifacts, quotas.artifact_bytes};
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    std::optional<absl::Status> end;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (!ok) {
        end = EndOfStreamLocked();
      } else {
        absl::Status status =
            message_.has_header() ? OnHeader(message_.header())
            : message_.has_chunk()
                ? OnChunkLocked(message_.mutable_chunk())
                : absl::InvalidArgumentError("UploadArtifact message has neither header nor chunk");
        if (!status.ok()) {
          end = status;
        } else if (!paused_) {
          StartRead(&message_);
        }
      }
    }
    if (end.has_value()) End(*end);
  }
  void OnCancel() override { End(absl::CancelledError("UploadArtifact: the client cancelled")); }
  void OnDone() override { delete this; }  // ~UploadReactor joins the writer's thread

 private:
  absl::Status OnHeader(const v1::ArtifactHeader& h) {
    if (have_header_) return absl::InvalidArgumentError("UploadArtifact: a second header arrived");
    have_header_ = true;
    if (absl::Status s = ValidateHeader(h, max_bytes_); !s.ok()) return s;
    declared_ = h.size();
    meta_.kind = h.kind();
    meta_.sha256 = h.sha256();
    meta_.name = h.name().empty() ? h.sha256().substr(0, 12) : h.name();
    absl::StatusOr<artifacts::ArtifactRecord> existing = store_->Get(h.sha256());
    // Only a caller who could already see these bytes may skip sending them: a digest alone is
    // no proof of holding another client's data.
    known_ = existing.ok() && (caller_.admin || existing->OwnedBy(caller_.client));
    return absl::OkStatus();
  }

  absl::Status OnChunkLocked(v1::ArtifactChunk* chunk) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!have_header_)
      return absl::InvalidArgumentError("UploadArtifact: a chunk came before the header");
    if (chunk->data().size() > kMaxArtifactChunkBytes) {
      return absl::InvalidArgumentError(absl::StrCat("chunk at offset ", chunk->offset(), ": ",
                                                     chunk->data().size(), " bytes; at most ",
                                                     kMaxArtifactChunkBytes, " per message"));
    }
    if (chunk->offset() != received_) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk at offset ", chunk->offset(), "; expected offset ", received_));
    }
    if (chunk->data().size() > declared_ - received_) {
      return absl::InvalidArgumentError(
          absl::StrCat("the artifact is longer than its declared ", declared_, " bytes"));
    }
    if (absl::Status s = StartWriterLocked(); !s.ok()) return s;
    received_ += chunk->data().size();
    paused_ = !writer_->Push(std::move(*chunk->mutable_data()));
    return absl::OkStatus();
  }

  absl::Status StartWriterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writer_ != nullptr) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<artifacts::UploadWriter>> w = artifacts::UploadWriter::Start(
        store_, kMaxQueuedUploadBytes, [this] { OnWriterRoom(); },
        [this](absl::StatusOr<artifacts::ArtifactRecord> r) { OnWriterDone(std::move(r)); });
    if (!w.ok()) return w.status();
    writer_ = *std::move(w);
    return absl::OkStatus();
  }

  // The stream ended: the final status, or nullopt when the writer will finish the call.
  std::optional<absl::Status> EndOfStreamLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!have_header_) return absl::InvalidArgumentError("UploadArtifact: no header was sent");
    if (received_ == 0 && known_) {
      absl::StatusOr<artifacts::ArtifactRecord> record =
          store_->AddOwner(meta_);  // refreshes the caller's name for it
      if (!record.ok()) return record.status();
      ToProto(*record, caller_.client, caller_.admin, response_);
      response_->set_deduplicated(true);
      return absl::OkStatus();
    }
    if (received_ != declared_) {
      return absl::InvalidArgumentError(absl::StrCat("UploadArtifact: received ", received_, " of ",
                                                     declared_, " declared bytes"));
    }
    if (absl::Status s = StartWriterLocked(); !s.ok()) return s;  // an empty artifact
    deduplicated_ = store_->Get(meta_.sha256).ok();
    writer_->Finish(meta_);
    return std::nullopt;
  }

  void OnWriterRoom() {  // writer thread
    absl::MutexLock lock(&mu_);
    if (finished_ || !paused_) return;
    paused_ = false;
    StartRead(&message_);
  }

  void OnWriterDone(absl::StatusOr<artifacts::ArtifactRecord> record) {  // writer thread
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    if (record.ok()) {
      ToProto(*record, caller_.client, caller_.admin, response_);
      response_->set_deduplicated(deduplicated_);
    } else {
      spdlog::debug("rpc UploadArtifact failed: {}", record.status().ToString());
    }
    // Under mu_ and on the writer thread: OnDone (another thread, after this call) joins this
    // thread before anything is deleted.
    Finish(ToGrpcStatus(record.status()));
  }

  // Finishes the call from a reaction, unless someone already has.
  void End(const absl::Status& status) {
    std::unique_ptr<artifacts::UploadWriter> writer;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      writer = std::move(writer_);
    }
    writer.reset();  // a cut or refused upload leaves no file by the time the client hears
    if (!status.ok()) spdlog::debug("rpc UploadArtifact failed: {}", status.ToString());
    Finish(ToGrpcStatus(status));
  }

  v1::ArtifactInfo* const response_;
  artifacts::ArtifactStore* const store_;
  const Caller caller_;
  const uint64_t max_bytes_;
  // Written by gRPC's reads; read by the reaction that one completes (one read at a time).
  v1::UploadArtifactRequest message_;
  absl::Mutex mu_;
  artifacts::ArtifactStore::NewArtifact meta_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<artifacts::UploadWriter> writer_ ABSL_GUARDED_BY(mu_);
  uint64_t declared_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  bool have_header_ ABSL_GUARDED_BY(mu_) = false;
  bool known_ ABSL_GUARDED_BY(mu_) = false;
  bool deduplicated_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;  // no read outstanding until the writer has room
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// Streams a stored blob from an offset in chunks, one write outstanding at a time.
class DownloadReactor : public grpc::ServerWriteReactor<v1::DownloadArtifactChunk> {
 public:
  DownloadReactor(absl::StatusOr<std::string> path, uint64_t size, uint64_t offset)
      : size_(size), offset_(offset) {
    Begin(std::move(path));
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return End(absl::CancelledError("client went away"));
    if (offset_ >= size_) return End(absl::OkStatus());
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Begin(absl::StatusOr<std::string> path) {
    if (!path.ok()) return End(path.status());
    if (offset_ > size_) {
      return End(absl::InvalidArgumentError(
          absl::StrCat("offset: ", offset_, " is past the artifact's end (", size_, " bytes)")));
    }
    fd_ = ScopedFd(::open(path->c_str(), O_RDONLY | O_CLOEXEC));
    if (fd_.get() < 0) return End(absl::ErrnoToStatus(errno, "cannot read the stored artifact"));
    Next();
  }
  void Next() {
    std::string buf(std::min<uint64_t>(kDownloadChunkBytes, size_ - offset_), '\0');
    size_t got = 0;
    while (got < buf.size()) {
      const ssize_t n =
          ::pread(fd_.get(), buf.data() + got, buf.size() - got, static_cast<off_t>(offset_ + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return End(absl::DataLossError("the stored artifact is shorter than recorded"));
      got += static_cast<size_t>(n);
    }
    chunk_.Clear();
    chunk_.set_data(std::move(buf));
    if (first_) chunk_.set_total_bytes(size_);
    first_ = false;
    offset_ += got;
    StartWrite(&chunk_);
  }
  void End(const absl::Status& status) { Finish(ToGrpcStatus(status)); }

  ScopedFd fd_;
  const uint64_t size_;
  uint64_t offset_;
  bool first_ = true;
  v1::DownloadArtifactChunk chunk_;
};

}  // namespace

absl::StatusOr<artifacts::ArtifactRecord> AnerdService::VisibleArtifact(const Caller& caller,
                                                                        const std::string& id) {
  absl::StatusOr<artifacts::ArtifactRecord> r = engine_->artifacts().Get(id);
  if (!r.ok()) return r.status();
  if (caller.admin || r->OwnedBy(caller.client)) return r;
  return artifacts::ArtifactNotFound(id);
}

grpc::ServerReadReactor<v1::UploadArtifactRequest>* AnerdService::UploadArtifact(
    grpc::CallbackServerContext* context, v1::ArtifactInfo* response) {
  return new UploadReactor(response, &engine_->artifacts(), CallerOf(context), quotas_.limits(),
                           options_.max_artifact_bytes);
}

grpc::ServerUnaryReactor* AnerdService::ListArtifacts(grpc::CallbackServerContext* context,
                                                      const v1::ListArtifactsRequest* request,
                                                      v1::ListArtifactsResponse* response) {
  const Caller caller = CallerOf(context);
  absl::StatusOr<std::vector<artifacts::ArtifactRecord>> all = engine_->artifacts().List();
  if (!all.ok()) return Done(context, all.status());
  for (const artifacts::ArtifactRecord& r : *all) {
    if (!request->kind().empty() && r.kind != request->kind()) continue;
    if (caller.admin || r.OwnedBy(caller.client)) {
      ToProto(r, caller.client, caller.admin, response->add_artifacts());
    }
  }
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AnerdService::GetArtifact(grpc::CallbackServerContext* context,
                                                    const v1::GetArtifactRequest* request,
                                                    v1::ArtifactInfo* response) {
  const Caller caller = CallerOf(context);
  absl::StatusOr<artifacts::ArtifactRecord> r = VisibleArtifact(caller, request->id());
  if (r.ok()) ToProto(*r, caller.client, caller.admin, response);
  return Done(context, r.status());
}

grpc::ServerUnaryReactor* AnerdService::DeleteArtifact(grpc::CallbackServerContext* context,
                                                       const v1::DeleteArtifactRequest* request,
                                                       v1::DeleteArtifactResponse* /*response*/) {
  const Caller caller = CallerOf(context);
  absl::StatusOr<artifacts::ArtifactRecord> r = VisibleArtifact(caller, request->id());
  if (!r.ok()) return Done(context, r.status());
  // The bytes go with the last owner (or an admin's delete): not while a session, which may still
  // run or be resumed, trains on them.
  const bool removes_bytes = !r->OwnedBy(caller.client) || r->owners.size() == 1;
  if (removes_bytes) {
    for (const sessions::SessionSnapshot& s : engine_->sessions().List()) {
      const training::TrainSpec& spec = s.spec;
      if (spec.data_artifact == r->id || spec.init_artifact == r->id ||
          spec.val_artifact == r->id) {
        const std::string session =
            caller.Sees(s.owner) ? absl::StrCat("training session ", s.id) : "a training session";
        return Done(context, absl::FailedPreconditionError(
                                 absl::StrCat("artifact ", r->id, " is used by ", session,
                                              "; delete the session first (anectl train rm)")));
      }
    }
  }
  // Releases the caller's ownership; admins may delete what only others own.
  absl::Status status = r->OwnedBy(caller.client)
                            ? engine_->artifacts().Release(request->id(), caller.client)
                            : engine_->artifacts().Delete(request->id());
  return Done(context, status);
}

grpc::ServerWriteReactor<v1::DownloadArtifactChunk>* AnerdService::DownloadArtifact(
    grpc::CallbackServerContext* context, const v1::DownloadArtifactRequest* request) {
  absl::StatusOr<artifacts::ArtifactRecord> r = VisibleArtifact(CallerOf(context), request->id());
  if (!r.ok()) return new DownloadReactor(r.status(), 0, 0);
  return new DownloadReactor(engine_->artifacts().BlobPath(r->id), r->size, request->offset());
}

absl::Status AnerdService::ResolveArtifacts(const Caller& caller, training::TrainSpec* spec) {
  struct Field {
    const char* name;
    std::string* id;
    std::string* path;
    std::string* format;  // nullptr: not data
    const char* kind;
  };
  const Field fields[] = {
      {"data_artifact", &spec->data_artifact, &spec->data_path, &spec->data_format, "dataset"},
      {"init_artifact", &spec->init_artifact, &spec->init_model_path, nullptr, "model"},
      {"val_artifact", &spec->val_artifact, &spec->val_data_path, &spec->val_data_format,
       "dataset"},
  };
  for (const Field& f : fields) {
    if (f.id->empty()) continue;
    absl::StatusOr<artifacts::ArtifactRecord> r = VisibleArtifact(caller, *f.id);
    if (!r.ok())
      return absl::Status(r.status().code(), absl::StrCat(f.name, ": ", r.status().message()));
    if (r->kind != f.kind) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.name, ": artifact ", *f.id, " is a ", r->kind, ", not a ", f.kind));
    }
    *f.path = engine_->artifacts().BlobPath(r->id);
    // A dataset's format follows its name: ".u32.bin" = uint32 tokens, other ".bin" = uint16
    // tokens, anything else UTF-8 text (training/data.h).
    if (f.format != nullptr) {
      const std::string name = r->NameFor(caller.client);
      *f.format = absl::EndsWith(name, ".u32.bin") ? "tokens32"
                  : absl::EndsWith(name, ".bin")   ? "tokens"
                                                   : "text";
    }
  }
  return absl::OkStatus();
}

}  // namespace anerd::service
