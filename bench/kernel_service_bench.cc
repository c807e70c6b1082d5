// Kernel-service benchmark (issue 5): every figure is a ratio against a reference measured in the
// same run on the same gRPC stack over a Unix socket.
//   (a) EvalKernel round trip of a tiny kernel vs a bare unary echo of the same payload sizes.
//   (b) A cache-hit CompileKernel with 100 MB of weights vs streaming the same bytes to a sink.
//   (c) Weight-upload throughput of CompileKernel vs raw streaming throughput of the same chunks.
// Usage: kernel_service_bench [--weights_mb N] [--evals N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/bench_server.h"
#include "bench/tiny_kernel.h"
#include "common/mil/blob_writer.h"

namespace anerd::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A program whose one constant is a `[n]` fp16 vector stored in a weight file of n*2 bytes.
std::string BigWeightMil(int64_t n) {
  return absl::StrFormat(R"(program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 1, 1, 8]> x) {
        tensor<fp16, [%d]> w = const()[name = string("w"), val = tensor<fp16, [%d]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
        tensor<int32, [4]> b = const()[name = string("b"), val = tensor<int32, [4]>([0, 0, 0, 0])];
        tensor<int32, [4]> z = const()[name = string("z"), val = tensor<int32, [4]>([1, 1, 1, 8])];
        tensor<int32, [1]> fb = const()[name = string("fb"), val = tensor<int32, [1]>([0])];
        tensor<int32, [1]> fz = const()[name = string("fz"), val = tensor<int32, [1]>([8])];
        tensor<fp16, [8]> w8 = slice_by_size(begin = fb, size = fz, x = w)[name = string("w8")];
        tensor<fp16, [1, 1, 1, 8]> y = add(x = x, y = w8)[name = string("y")];
    } -> (y);
}
)",
                         n, n);
}

int Main(int argc, char** argv) {
  int64_t weights_mb = 100, evals = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--weights_mb") == 0) weights_mb = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--evals") == 0) evals = std::atoll(argv[i + 1]);
  }
  std::unique_ptr<BenchServer> server = BenchServer::Start("anerd-bench");
  if (server == nullptr) return 1;
  client::AnerdClient* client = &server->client();
  Echo::Stub* echo_stub = &server->echo();

  // (a) tiny evaluation vs echo of the same sizes (request tensor 2 KiB, response 2 KiB).
  v1::CompileKernelHeader header;
  header.set_mil_text(kTinyMil);
  auto compiled = client->CompileKernel(header, {});
  if (!compiled.ok()) {
    std::fprintf(stderr, "compile failed: %s\n", compiled.status().ToString().c_str());
    return 1;
  }
  const v1::EvalKernelRequest req = TinyEvalRequest(compiled->kernel().id());
  Blob blob;
  blob.set_data(std::string(req.ByteSizeLong(), 'e'));
  std::vector<double> eval_us, echo_us, exec_us, server_us, queued_us, queued_eval_us;
  engine::KernelManager& kernels = server->engine().kernels();
  for (int64_t i = 0; i < evals; ++i) {
    auto s0 = Clock::now();
    auto r = client->EvalKernel(req);
    auto s1 = Clock::now();
    grpc::ClientContext ctx;
    Blob out;
    grpc::Status es = echo_stub->Echo(&ctx, blob, &out);
    auto s2 = Clock::now();
    kernels.set_lend_idle_device(false);  // the queued path: two thread hand-offs
    auto q = client->EvalKernel(req);
    auto s3 = Clock::now();
    kernels.set_lend_idle_device(true);
    if (!r.ok() || !es.ok() || !q.ok()) return 1;
    if (i >= evals / 10) {  // warm-up excluded
      eval_us.push_back(Us(s1 - s0));
      echo_us.push_back(Us(s2 - s1));
      queued_eval_us.push_back(Us(s3 - s2));
      exec_us.push_back(r->timing().execute_us());
      server_us.push_back(r->timing().total_us());  // handler entry to the reply's hand-off
      queued_us.push_back(r->timing().queued_us());
    }
  }
  std::printf(
      "(a) tiny eval round trip p50 %.1f us (server: handler %.1f, queued %.1f, execute %.1f "
      "us) vs echo p50 %.1f us: ratio %.2f (target <= 1.3)\n",
      Median(eval_us), Median(server_us), Median(queued_us), Median(exec_us), Median(echo_us),
      Median(eval_us) / Median(echo_us));
  std::printf("    always queued (no lent device): p50 %.1f us, ratio %.2f to echo\n",
              Median(queued_eval_us), Median(queued_eval_us) / Median(echo_us));

  // (b)/(c) 100 MB of weights.
  const int64_t n = weights_mb * (1 << 20) / 2;
  mil::BlobWriter writer;
  std::vector<uint16_t> halves(n, 0x3c00);
  (void)writer.AddFp16Bits(halves);
  const std::string weight_file = std::move(writer).Release();
  v1::CompileKernelHeader big;
  big.set_mil_text(BigWeightMil(n));
  std::vector<client::AnerdClient::WeightFile> files = {{"w.bin", weight_file}};
  auto sink = [&] {
    grpc::ClientContext ctx;
    Blob out;
    auto w = echo_stub->Sink(&ctx, &out);
    for (size_t off = 0; off < weight_file.size(); off += 1 << 20) {
      Blob chunk;
      chunk.set_data(weight_file.substr(off, 1 << 20));
      w->Write(chunk);
    }
    w->WritesDone();
    return w->Finish().ok();
  };
  auto first = client->CompileKernel(big, files);
  if (!first.ok()) {
    std::fprintf(stderr, "big compile failed: %s\n", first.status().ToString().c_str());
    return 1;
  }
  v1::CompileKernelHeader invalid = big;
  invalid.set_mil_text("program(1.3) { this is not MIL");
  std::vector<double> hit_ms, sink_ms, upload_ms;
  for (int i = 0; i < 5; ++i) {
    auto s0 = Clock::now();
    auto hit = client->CompileKernel(big, files);
    auto s1 = Clock::now();
    if (!sink()) return 1;
    auto s2 = Clock::now();
    (void)client->CompileKernel(invalid, files);  // upload, then an immediate parse error
    auto s3 = Clock::now();
    if (!hit.ok() || !hit->cache_hit()) return 1;
    hit_ms.push_back(Us(s1 - s0) / 1000);
    sink_ms.push_back(Us(s2 - s1) / 1000);
    upload_ms.push_back(Us(s3 - s2) / 1000);
  }
  const double mb = weight_file.size() / 1e6;
  std::printf(
      "(b) cache-hit compile with %.0f MB of weights %.0f ms vs raw upload %.0f ms: ratio "
      "%.2f (target <= 1.2)\n",
      mb, Median(hit_ms), Median(sink_ms), Median(hit_ms) / Median(sink_ms));
  std::printf(
      "(c) weight upload %.0f MB/s vs raw streaming %.0f MB/s: ratio %.2f (target >= 0.7)\n",
      mb / Median(upload_ms) * 1000, mb / Median(sink_ms) * 1000,
      Median(sink_ms) / Median(upload_ms));
  return 0;
}

}  // namespace
}  // namespace anerd::bench

int main(int argc, char** argv) { return anerd::bench::Main(argc, argv); }
