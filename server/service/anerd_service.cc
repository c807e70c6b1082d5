#include "server/service/anerd_service.h"

#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/mil/weights.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/utf8_errors.h"
#include "server/service/convert.h"
#include "server/service/upload_spool.h"
#include "spdlog/spdlog.h"

namespace anerd::service {
namespace {

engine::RequestControl ControlFor(grpc::CallbackServerContext* context) {
  engine::RequestControl control;
  const auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    control.deadline = absl::FromChrono(deadline);
  }
  return control;
}

// A unary reactor that finishes when the engine calls back, and marks the request cancelled
// (so a queued task is skipped) if the client goes away first. Deletes itself when done.
class QueuedUnaryReactor : public grpc::ServerUnaryReactor {
 public:
  explicit QueuedUnaryReactor(grpc::CallbackServerContext* context)
      : control_(ControlFor(context)) {}
  const engine::RequestControl& control() const { return control_; }
  void Hold(std::unique_ptr<ClientQuotas::Slot> slot) { slot_ = std::move(slot); }
  void FinishWith(const absl::Status& status, const char* method) {
    if (!status.ok()) spdlog::debug("rpc {} failed: {}", method, status.ToString());
    slot_.reset();  // before the client can hear the answer and send its next request
    Finish(ToGrpcStatus(status));
  }
  void OnCancel() override { control_.cancelled->store(true); }
  void OnDone() override { delete this; }
  // Both reactions above are trivial (an atomic store; freeing this object), so gRPC may run them
  // inline on whichever thread finishes the call, as it does for its own DefaultReactor, instead
  // of handing each call's OnDone to its executor thread: one thread wake-up and cross-thread
  // frees less per call (issue 22's RPC row: that hand-off was ~10 % of the daemon's CPU per tiny
  // evaluation). Not gRPC API (grpcpp/support/server_callback.h); `override` makes its removal a
  // compile error, not a silent change.
  bool InternalInlineable() override { return true; }

 private:
  engine::RequestControl control_;
  std::unique_ptr<ClientQuotas::Slot> slot_;  // released when the call is done
};

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Parses one CompileKernel message. It arrives as raw bytes (the service takes this method raw) so
// that a message protobuf refuses — typically a string field that is not UTF-8 — is answered
// naming the field, parsed here on this thread (common/rpc/utf8_errors.h).
absl::Status ParseCompileMessage(grpc::ByteBuffer* raw, v1::CompileKernelRequest* message) {
  (void)TakeUtf8ParseError();  // forget anything older
  grpc::Status status =
      grpc::SerializationTraits<v1::CompileKernelRequest>::Deserialize(raw, message);
  if (status.ok()) return absl::OkStatus();
  if (std::optional<std::string> field = TakeUtf8ParseError()) return InvalidUtf8Error(*field);
  return absl::InvalidArgumentError(
      "CompileKernel: a message is not a valid anerd.v1.CompileKernelRequest");
}

// Receives a CompileKernel stream: the header, then weight chunks in order, then compiles.
class CompileReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // `slot` is the caller's queued-request slot (or the quota error to fail with); `owner` and
  // `max_owned` go into the compile request (kernel ownership and its quota).
  CompileReactor(grpc::CallbackServerContext* context, grpc::ByteBuffer* response,
                 engine::Engine* engine, UploadSpool* spool,
                 absl::StatusOr<std::unique_ptr<ClientQuotas::Slot>> slot, std::string owner,
                 int64_t max_owned)
      : control_(ControlFor(context)), response_(response), engine_(engine), spool_(spool) {
    if (!slot.ok()) {
      Fail(slot.status());
      return;
    }
    slot_ = *std::move(slot);
    request_.owner = std::move(owner);
    request_.max_owned = max_owned;
    StartRead(&raw_);
  }

  void OnReadDone(bool ok) override {
    if (finished_) return;
    if (!ok) return EndOfStream();
    if (absl::Status parsed = ParseCompileMessage(&raw_, &message_); !parsed.ok()) {
      return Fail(parsed);
    }
    absl::Status status = message_.has_header()  ? OnHeader(message_.header())
                          : message_.has_chunk() ? OnChunk(message_.chunk())
                                                 : absl::InvalidArgumentError(
                                                       "CompileKernel message has neither "
                                                       "header nor chunk");
    if (!status.ok()) return Fail(status);
    StartRead(&raw_);
  }
  void OnCancel() override { control_.cancelled->store(true); }
  void OnDone() override { delete this; }

 private:
  // One weight file being received: its bytes go to its region of the upload's spooled file on
  // disk, its hash is updated chunk by chunk.
  struct Pending {
    uint64_t declared = 0;
    uint64_t base = 0;  // where its region starts in file_
    uint64_t received = 0;
    std::unique_ptr<Sha256> hash;
  };

  absl::Status OnHeader(const v1::CompileKernelHeader& header) {
    if (have_header_) return absl::InvalidArgumentError("CompileKernel: a second header arrived");
    have_header_ = true;
    const engine::KernelLimits& limits = engine_->kernels().limits();
    if (header.weight_files_size() > static_cast<int>(limits.max_weight_files)) {
      return absl::InvalidArgumentError(absl::StrCat("header declares ", header.weight_files_size(),
                                                     " weight files; the limit is ",
                                                     limits.max_weight_files));
    }
    uint64_t total = 0;
    for (const v1::WeightFileHeader& f : header.weight_files()) {
      absl::StatusOr<std::string> path = mil::CanonicalWeightPath(f.path());
      if (!path.ok()) return path.status();
      if (f.size() > limits.max_weight_bytes || total + f.size() > limits.max_weight_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("weight files total more than ", limits.max_weight_bytes,
                         " bytes (raise the limit with anerd --max-weight-bytes)"));
      }
      total += f.size();
      if (!files_.emplace(*path, Pending{f.size(), total - f.size(), 0, std::make_unique<Sha256>()})
               .second) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight file ", *path, " is declared twice"));
      }
    }
    // Every declared byte counts against the daemon-wide bound until the compile has read it.
    absl::StatusOr<std::unique_ptr<UploadSpool::Upload>> upload = spool_->Reserve(total);
    if (!upload.ok()) return upload.status();
    upload_ = *std::move(upload);
    if (!files_.empty()) {
      absl::StatusOr<std::unique_ptr<SpooledFile>> file = upload_->NewFile();
      if (!file.ok()) return file.status();
      file_ = *std::move(file);
    }
    absl::StatusOr<backend::CompileOptions> options = FromProto(header.options());
    if (!options.ok()) return options.status();
    request_.name = header.name();
    // owner and max_owned were set by the constructor
    request_.mil_text = header.mil_text();
    request_.backend = header.options().backend();
    request_.options = *options;
    request_.dump_passes = header.options().dump_passes();
    return absl::OkStatus();
  }

  absl::Status OnChunk(const v1::WeightChunk& chunk) {
    if (!have_header_)
      return absl::InvalidArgumentError("CompileKernel: a chunk came before the header");
    absl::StatusOr<std::string> path = mil::CanonicalWeightPath(chunk.path());
    if (!path.ok()) return path.status();
    auto it = files_.find(*path);
    if (it == files_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk for weight file ", *path, ", which the header did not declare"));
    }
    Pending& p = it->second;
    if (chunk.offset() != p.received) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk for ", *path, " at offset ", chunk.offset(), "; expected offset ", p.received));
    }
    if (p.received + chunk.data().size() > p.declared) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight file ", *path, " is longer than its declared ", p.declared, " bytes"));
    }
    if (absl::Status s = file_->WriteAt(p.base + p.received, chunk.data()); !s.ok()) return s;
    p.received += chunk.data().size();
    p.hash->Update(chunk.data());
    return absl::OkStatus();
  }

  void EndOfStream() {
    if (!have_header_) return Fail(absl::InvalidArgumentError("CompileKernel: no header was sent"));
    std::shared_ptr<UploadSpool::Upload> upload(std::move(upload_));
    std::shared_ptr<SpooledFile> file(std::move(file_));
    for (auto& [path, p] : files_) {
      if (p.received != p.declared) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "weight file ", path, ": received ", p.received, " of ", p.declared, " bytes")));
      }
      request_.weight_sha256[path] = p.hash->HexDigest();
      // The bytes stay on disk until the compile runs; the reservation lasts as long.
      request_.deferred_weight_files.push_back(
          {path, p.declared,
           [file, upload, base = p.base, size = p.declared] { return file->ReadAt(base, size); }});
    }
    files_.clear();
    engine_->kernels().Compile(
        std::move(request_), control_, [this](absl::StatusOr<engine::KernelCompileResult> result) {
          if (!result.ok()) return Fail(result.status());
          v1::CompileKernelResponse response;
          ToProto(result->info, response.mutable_kernel());
          response.set_cache_hit(result->cache_hit);
          response.set_compile_ms(result->compile_ms);
          for (const std::string& w : result->warnings) response.add_warnings(w);
          for (const backend::PassDump& d : result->pass_dumps) {
            v1::PassDump* out = response.add_pass_dumps();
            out->set_name(d.name);
            out->set_text(d.text);
          }
          bool own_buffer = false;
          grpc::Status serialized = grpc::SerializationTraits<v1::CompileKernelResponse>::Serialize(
              response, response_, &own_buffer);
          if (!serialized.ok()) return Fail(FromGrpcStatus(serialized));
          finished_ = true;
          slot_.reset();
          Finish(grpc::Status::OK);
        });
  }

  void Fail(const absl::Status& status) {
    spdlog::debug("rpc CompileKernel failed: {}", status.ToString());
    finished_ = true;
    slot_.reset();
    Finish(ToGrpcStatus(status));
  }

  engine::RequestControl control_;
  grpc::ByteBuffer* response_;  // the serialized v1::CompileKernelResponse
  engine::Engine* engine_;
  grpc::ByteBuffer raw_;
  v1::CompileKernelRequest message_;
  engine::KernelCompileRequest request_;
  UploadSpool* spool_;
  std::unique_ptr<UploadSpool::Upload> upload_;  // declared bytes, reserved once the header is read
  std::unique_ptr<SpooledFile> file_;  // every weight file's bytes, each in its own region
  std::map<std::string, Pending> files_;
  std::unique_ptr<ClientQuotas::Slot> slot_;
  bool have_header_ = false;
  bool finished_ = false;
};

std::string SpoolDir(const ServiceOptions& options, engine::Engine* engine) {
  return options.upload_dir.empty() ? engine->Info().state_dir + "/uploads" : options.upload_dir;
}

}  // namespace

AnerdService::AnerdService(engine::Engine* engine, ServiceOptions options)
    : engine_(engine),
      options_(std::move(options)),
      quotas_(options_.quotas),
      spool_(std::make_shared<UploadSpool>(SpoolDir(options_, engine),
                                           options_.upload_bytes_in_flight)) {}

grpc::ServerUnaryReactor* AnerdService::GetInfo(grpc::CallbackServerContext* context,
                                                const v1::GetInfoRequest* /*request*/,
                                                v1::GetInfoResponse* response) {
  ToProto(engine_->Info(), response);
  for (const auto& [name, value] : options_.effective_config) {
    v1::ConfigEntry* entry = response->add_config();
    entry->set_name(name);
    entry->set_value(value);
  }
  const Caller caller = CallerOf(context);
  if (caller.remote && !caller.admin) {  // daemon-side paths are none of a remote client's business
    response->clear_state_dir();
    response->clear_socket();
    response->clear_state_findings();  // they name files in the state dir
    response->clear_cache();           // daemon-wide counters tell of other clients' kernels
    response->clear_config();          // paths, limits and token files of the daemon
    response->clear_queues();          // other clients' work
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerReadReactor<grpc::ByteBuffer>* AnerdService::CompileKernel(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  const std::string client = CallerOf(context).client;
  return new CompileReactor(context, response, engine_, spool_.get(), quotas_.AcquireQueued(client),
                            client, quotas_.limits().kernels);
}

grpc::ServerUnaryReactor* AnerdService::EvalKernel(grpc::CallbackServerContext* context,
                                                   const v1::EvalKernelRequest* request,
                                                   v1::EvalKernelResponse* response) {
  const absl::Time received = absl::Now();
  auto* reactor = new QueuedUnaryReactor(context);
  const Caller caller = CallerOf(context);
  absl::StatusOr<std::unique_ptr<ClientQuotas::Slot>> slot = quotas_.AcquireQueued(caller.client);
  if (!slot.ok()) {
    reactor->FinishWith(slot.status(), "EvalKernel");
    return reactor;
  }
  if (absl::Status visible = CheckKernelVisible(caller, request->kernel_id()); !visible.ok()) {
    reactor->FinishWith(visible, "EvalKernel");
    return reactor;
  }
  reactor->Hold(*std::move(slot));
  int64_t budget = static_cast<int64_t>(engine_->kernels().limits().max_tensor_bytes);
  std::vector<backend::NamedTensor> inputs;
  for (const v1::Tensor& t : request->inputs()) {
    absl::StatusOr<backend::NamedTensor> tensor = FromProto(t, &budget);
    if (!tensor.ok()) {
      reactor->FinishWith(tensor.status(), "EvalKernel");
      return reactor;
    }
    inputs.push_back(*std::move(tensor));
  }
  const double copy_in_us = absl::ToDoubleMicroseconds(absl::Now() - received);
  engine_->kernels().Eval(
      request->kernel_id(), std::move(inputs), reactor->control(),
      [reactor, response, received, copy_in_us](absl::StatusOr<engine::KernelEvalResult> result) {
        if (!result.ok()) return reactor->FinishWith(result.status(), "EvalKernel");
        const absl::Time out_start = absl::Now();
        for (const backend::NamedTensor& t : result->outputs) ToProto(t, response->add_outputs());
        v1::EvalTiming* timing = response->mutable_timing();
        timing->set_queued_us(result->timing.queued_us);
        timing->set_copy_in_us(copy_in_us);
        timing->set_execute_us(result->timing.execute_us);
        timing->set_copy_out_us(absl::ToDoubleMicroseconds(absl::Now() - out_start));
        timing->set_recompiled(result->timing.recompiled);
        if (result->timing.hardware_us.has_value()) {
          timing->set_hw_execution_us(*result->timing.hardware_us);
          timing->set_hw_time_source(result->timing.hardware_simulated ? "simulated" : "hardware");
        }
        timing->set_total_us(absl::ToDoubleMicroseconds(absl::Now() - received));
        reactor->FinishWith(absl::OkStatus(), "EvalKernel");
      });
  return reactor;
}

grpc::ServerUnaryReactor* AnerdService::ListKernels(grpc::CallbackServerContext* context,
                                                    const v1::ListKernelsRequest* /*request*/,
                                                    v1::ListKernelsResponse* response) {
  const Caller caller = CallerOf(context);
  std::set<std::string> owned;
  if (!caller.admin) {
    absl::StatusOr<std::vector<std::string>> ids = engine_->kernels().OwnedIds(caller.client);
    if (!ids.ok()) return FinishNow(context, ids.status());
    owned.insert(ids->begin(), ids->end());
  }
  absl::StatusOr<std::vector<engine::KernelInfo>> kernels = engine_->kernels().List();
  if (kernels.ok()) {
    for (const engine::KernelInfo& k : *kernels) {
      if (caller.admin || owned.count(k.record.id) > 0) ToProto(k, response->add_kernels());
    }
  }
  return FinishNow(context, kernels.status());
}

absl::Status AnerdService::CheckKernelVisible(const Caller& caller, const std::string& id) {
  if (caller.admin) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> owners = engine_->kernels().Owners(id);
  if (!owners.ok()) return owners.status();
  return caller.SeesAny(*owners) ? absl::OkStatus() : cache::KernelNotFound(id);
}

grpc::ServerUnaryReactor* AnerdService::GetKernel(grpc::CallbackServerContext* context,
                                                  const v1::GetKernelRequest* request,
                                                  v1::KernelInfo* response) {
  if (absl::Status visible = CheckKernelVisible(CallerOf(context), request->kernel_id());
      !visible.ok()) {
    return FinishNow(context, visible);
  }
  absl::StatusOr<engine::KernelInfo> kernel = engine_->kernels().Get(request->kernel_id());
  if (kernel.ok()) ToProto(*kernel, response);
  return FinishNow(context, kernel.status());
}

grpc::ServerUnaryReactor* AnerdService::DeleteKernel(grpc::CallbackServerContext* context,
                                                     const v1::DeleteKernelRequest* request,
                                                     v1::DeleteKernelResponse* /*response*/) {
  const Caller caller = CallerOf(context);
  if (absl::Status visible = CheckKernelVisible(caller, request->kernel_id()); !visible.ok()) {
    return FinishNow(context, visible);
  }
  // Releases the caller's ownership; the kernel goes when no owner is left.
  absl::Status status = engine_->kernels().Release(request->kernel_id(), caller.client);
  // Admins (and the daemon's own user on the Unix socket) may delete what other clients own.
  if (status.code() == absl::StatusCode::kPermissionDenied && caller.admin) {
    status = engine_->kernels().Delete(request->kernel_id());
  }
  return FinishNow(context, status);
}

}  // namespace anerd::service
