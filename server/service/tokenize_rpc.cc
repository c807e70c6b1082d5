// TokenizeDataset (issue 19 item 3): the reactor checks the request on the gRPC thread (caller
// may see both artifacts, kinds right), then runs artifacts::TokenizeDataset on a thread of its
// own — blocking file I/O, never on a gRPC thread or a device executor; at most
// kMaxTokenizeJobs at once — and streams progress coalesced to one write in flight: a progress
// message carries the latest (done, total) when the previous write completes; the last message
// carries the result. Cancelling the call makes the job's progress callback return false, so
// TokenizeFile stops within one read block and nothing is stored.
#include <atomic>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/grpc_status.h"
#include "server/artifacts/tokenize_dataset.h"
#include "server/service/anerd_service.h"
#include "server/service/convert.h"
#include "spdlog/spdlog.h"

namespace anerd::service {
namespace {

constexpr int kMaxTokenizeJobs = 2;

class TokenizeReactor : public grpc::ServerWriteReactor<v1::TokenizeDatasetProgress> {
 public:
  TokenizeReactor(artifacts::ArtifactStore* store, std::atomic<int>* jobs, Caller caller)
      : store_(store), jobs_(jobs), caller_(std::move(caller)) {}

  // Starts the job thread, or finishes with `status` when it is an error.
  void Start(absl::StatusOr<artifacts::TokenizeDatasetJob> job) {
    if (!job.ok()) return Finish(ToGrpcStatus(job.status()));
    if (jobs_->fetch_add(1) >= kMaxTokenizeJobs) {
      jobs_->fetch_sub(1);
      return Finish(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
          "the daemon is already tokenizing ", kMaxTokenizeJobs, " datasets; try again later"))));
    }
    std::thread([this, j = *std::move(job)] { Run(j); }).detach();
  }

  void OnCancel() override { cancelled_.store(true); }
  void OnWriteDone(bool ok) override {
    if (!ok) cancelled_.store(true);
    Next next;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      next = NextLocked();
    }
    Perform(next);
  }
  void OnDone() override { delete this; }

 private:
  enum class Next { kNothing, kWrite, kFinish };

  // The job thread. Its last act is Perform; after that it touches nothing of the reactor (which
  // may be deleted as soon as the stream is finished).
  void Run(const artifacts::TokenizeDatasetJob& job) {
    absl::StatusOr<artifacts::TokenizeDatasetOutcome> out = artifacts::TokenizeDataset(
        *store_, job, [this](int64_t done, int64_t total) { return Progress(done, total); });
    v1::TokenizeDatasetProgress last;
    absl::Status status = out.status();
    if (out.ok()) {
      v1::TokenizeDatasetResult* r = last.mutable_result();
      ToProto(out->artifact, caller_.client, caller_.admin, r->mutable_artifact());
      r->set_tokens(out->file.tokens);
      r->set_documents(out->file.documents);
      r->set_id_bytes(out->file.id_bytes);
      r->set_vocab_size(out->vocab_size);
      last.set_bytes_done(out->file.bytes_read);
      last.set_bytes_total(out->file.bytes_read);
    } else {
      spdlog::debug("rpc TokenizeDataset failed: {}", status.ToString());
    }
    jobs_->fetch_sub(1);
    Next next;
    {
      absl::MutexLock lock(&mu_);
      final_status_ = std::move(status);
      final_ = std::move(last);
      done_ = true;
      next = NextLocked();
    }
    Perform(next);
  }

  bool Progress(int64_t done, int64_t total) {
    Next next;
    {
      absl::MutexLock lock(&mu_);
      pending_.set_bytes_done(static_cast<uint64_t>(done));
      pending_.set_bytes_total(static_cast<uint64_t>(total));
      has_pending_ = true;
      next = NextLocked();
    }
    Perform(next);
    return !cancelled_.load();
  }

  // What to do when no write is in flight: send the latest progress, else finish once the job is
  // done. Marks the write or the finish as started.
  Next NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return Next::kNothing;
    if (done_) {
      finished_ = true;
      return Next::kFinish;
    }
    if (!has_pending_ || cancelled_.load()) return Next::kNothing;
    sent_ = pending_;
    has_pending_ = false;
    writing_ = true;
    return Next::kWrite;
  }

  // Outside the lock: Finish may let OnDone delete the reactor. final_status_ and final_ are not
  // written again once done_ is set.
  void Perform(Next next) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (next == Next::kWrite) return StartWrite(&sent_);
    if (next != Next::kFinish) return;
    if (!final_status_.ok()) return Finish(ToGrpcStatus(final_status_));
    if (cancelled_.load()) return Finish(ToGrpcStatus(absl::CancelledError("cancelled")));
    StartWriteAndFinish(&final_, grpc::WriteOptions(), grpc::Status::OK);
  }

  artifacts::ArtifactStore* store_;  // not owned
  std::atomic<int>* jobs_;           // not owned (the service's)
  const Caller caller_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  v1::TokenizeDatasetProgress pending_ ABSL_GUARDED_BY(mu_);
  v1::TokenizeDatasetProgress sent_;  // the write in flight
  v1::TokenizeDatasetProgress final_ ABSL_GUARDED_BY(mu_);
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<artifacts::TokenizeDatasetJob> AnerdService::TokenizeJobFor(
    const Caller& caller, const v1::TokenizeDatasetRequest& request) {
  artifacts::TokenizeDatasetJob job;
  auto visible = [&](const char* field, const std::string& id,
                     const char* kind) -> absl::StatusOr<artifacts::ArtifactRecord> {
    if (id.empty())
      return absl::InvalidArgumentError(absl::StrCat(field, ": an artifact id is required"));
    absl::StatusOr<artifacts::ArtifactRecord> r = VisibleArtifact(caller, id);
    if (!r.ok())
      return absl::Status(r.status().code(), absl::StrCat(field, ": ", r.status().message()));
    if (r->kind != kind) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": artifact ", id, " is a ", r->kind, ", not a ", kind));
    }
    return r;
  };
  absl::StatusOr<artifacts::ArtifactRecord> text =
      visible("text_artifact", request.text_artifact(), "dataset");
  if (!text.ok()) return text.status();
  job.text = *std::move(text);
  job.byte_tokenizer = request.tokenizer_artifact() == "byte";
  if (!job.byte_tokenizer) {
    absl::StatusOr<artifacts::ArtifactRecord> tok =
        visible("tokenizer_artifact", request.tokenizer_artifact(), "tokenizer");
    if (!tok.ok()) return tok.status();
    job.tokenizer = *std::move(tok);
  }
  if (request.name().size() > 256 || request.name().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("name: longer than 256 bytes or holds a NUL");
  }
  job.add_bos = request.add_bos();
  job.add_eos = request.add_eos();
  job.name = request.name();
  job.owner = caller.client;
  const QuotaLimits limits = quotas_.limits();
  job.quota = {limits.artifacts, limits.artifact_bytes};
  return job;
}

grpc::ServerWriteReactor<v1::TokenizeDatasetProgress>* AnerdService::TokenizeDataset(
    grpc::CallbackServerContext* context, const v1::TokenizeDatasetRequest* request) {
  const Caller caller = CallerOf(context);
  auto* reactor = new TokenizeReactor(&engine_->artifacts(), &tokenize_jobs_, caller);
  reactor->Start(TokenizeJobFor(caller, *request));
  return reactor;
}

}  // namespace anerd::service
