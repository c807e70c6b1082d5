#include "bench/bench_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <utility>
#include <vector>

#include "common/memory_trim.h"
#include "grpcpp/support/server_interceptor.h"

namespace anerd::bench {
namespace {

// The reference: the same RPC shapes with no work behind them.
class EchoImpl final : public Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx, const Blob* in,
                                 Blob* out) override {
    out->set_data(in->data());
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerReadReactor<Blob>* Sink(grpc::CallbackServerContext*, Blob* out) override {
    class Reader : public grpc::ServerReadReactor<Blob> {
     public:
      explicit Reader(Blob* out) : out_(out) { StartRead(&msg_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          out_->set_data(std::to_string(bytes_));
          Finish(grpc::Status::OK);
          return;
        }
        bytes_ += msg_.data().size();
        StartRead(&msg_);
      }
      void OnDone() override { delete this; }

     private:
      Blob* out_;
      Blob msg_;
      uint64_t bytes_ = 0;
    };
    return new Reader(out);
  }
  grpc::ServerReadReactor<Blob>* Store(grpc::CallbackServerContext*, Blob* out) override {
    class Writer : public grpc::ServerReadReactor<Blob> {
     public:
      Writer(Blob* out, std::string path)
          : out_(out),
            path_(std::move(path)),
            fd_(open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600)) {
        StartRead(&msg_);
      }
      void OnReadDone(bool ok) override {
        if (ok) {
          if (fd_ < 0 || !WriteAll(msg_.data())) failed_ = true;
          StartRead(&msg_);
          return;
        }
        if (fd_ < 0 || fsync(fd_) != 0) failed_ = true;
        if (fd_ >= 0) close(fd_);
        unlink(path_.c_str());
        Finish(failed_ ? grpc::Status(grpc::StatusCode::INTERNAL, "store failed")
                       : grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      bool WriteAll(const std::string& data) {
        for (size_t off = 0; off < data.size();) {
          const ssize_t n = write(fd_, data.data() + off, data.size() - off);
          if (n <= 0) return false;
          off += static_cast<size_t>(n);
        }
        return true;
      }
      Blob* out_;
      const std::string path_;
      const int fd_;
      bool failed_ = false;
      Blob msg_;
    };
    return new Writer(out, store_path_);
  }

 public:
  explicit EchoImpl(std::string store_path) : store_path_(std::move(store_path)) {}

 private:
  const std::string store_path_;
};

class NoopInterceptor : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }
};

class NoopInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new NoopInterceptor;
  }
};

// EvalKernel with the daemon's messages and none of its work (ServeShapedEvalForever).
class ShapedEval final : public v1::Anerd::CallbackService {
  grpc::ServerUnaryReactor* EvalKernel(grpc::CallbackServerContext* ctx,
                                       const v1::EvalKernelRequest* in,
                                       v1::EvalKernelResponse* out) override {
    for (const v1::Tensor& t : in->inputs()) *out->add_outputs() = t;
    v1::EvalTiming* timing = out->mutable_timing();
    timing->set_queued_us(0.5);
    timing->set_copy_in_us(2.5);
    timing->set_execute_us(3.5);
    timing->set_copy_out_us(0.5);
    timing->set_total_us(7.5);
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
};

// Serves `service` alone on `target` until killed (for a child process); with `noop_interceptor`,
// behind NoopInterceptorFactory's interceptor. Exits with status 1 when it cannot listen.
[[noreturn]] void ServeForever(const std::string& target, grpc::Service* service,
                               bool noop_interceptor = false) {
  grpc::ServerBuilder builder;
  if (noop_interceptor) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(std::make_unique<NoopInterceptorFactory>());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  builder.SetMaxReceiveMessageSize(INT32_MAX);
  builder.AddListeningPort(target, grpc::InsecureServerCredentials());
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "cannot listen on %s\n", target.c_str());
    std::_Exit(1);
  }
  server->Wait();
  std::_Exit(0);
}

}  // namespace

void ServeShapedEvalForever(const std::string& target) {
  TuneAllocatorForStreaming();
  ShapedEval service;
  ServeForever(target, &service);
}

std::unique_ptr<BenchServer> BenchServer::Start(const std::string& name) {
  TuneAllocatorForStreaming();  // as anerd and anectl do, so the bench measures their allocator
  std::unique_ptr<BenchServer> s(new BenchServer(std::filesystem::temp_directory_path() /
                                                 (name + "-" + std::to_string(getpid()))));
  std::filesystem::create_directories(s->dir_ + "/state");
  engine::EngineOptions eo;
  eo.state_dir = s->dir_ + "/state";
  eo.data_roots = {s->dir_};  // training benches write their data here
  absl::StatusOr<std::unique_ptr<engine::Engine>> engine = engine::Engine::Create(eo);
  if (!engine.ok()) {
    std::fprintf(stderr, "engine: %s\n", engine.status().ToString().c_str());
    return nullptr;
  }
  s->engine_ = *std::move(engine);
  s->anerd_service_ = std::make_unique<service::AnerdService>(s->engine_.get());
  s->echo_service_ = std::make_unique<EchoImpl>(s->dir_ + "/state/raw-store.bin");
  const std::string socket = "unix:" + s->dir_ + "/a.sock";
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(INT32_MAX);
  builder.AddListeningPort(socket, grpc::InsecureServerCredentials());
  builder.RegisterService(s->anerd_service_.get());
  builder.RegisterService(s->echo_service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr) {
    std::fprintf(stderr, "cannot listen on %s\n", socket.c_str());
    return nullptr;
  }
  client::ClientOptions co;
  co.endpoint.path = s->dir_ + "/a.sock";
  co.timeout = absl::Seconds(600);
  s->client_ = client::AnerdClient::Create(co);
  s->echo_ = Echo::NewStub(grpc::CreateChannel(socket, grpc::InsecureChannelCredentials()));
  return s;
}

void ServeEchoForever(const std::string& target, bool noop_interceptor) {
  TuneAllocatorForStreaming();
  EchoImpl echo(std::filesystem::temp_directory_path() /
                ("anerd-echo-store-" + std::to_string(getpid()) + ".bin"));
  ServeForever(target, &echo, noop_interceptor);
}

BenchServer::~BenchServer() {
  if (server_ != nullptr) server_->Shutdown();
  if (engine_ != nullptr) engine_->Shutdown();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace anerd::bench
