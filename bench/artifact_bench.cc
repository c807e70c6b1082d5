// Artifact upload benchmark (issue 19): UploadArtifact throughput against a raw gRPC client
// stream of the same bytes in the same chunks, in one run on one gRPC stack over a Unix socket.
//   push    client::PushFile of a fresh file (new bytes every round, so nothing deduplicates):
//           the client hashes the file, asks GetArtifact, streams it; the daemon hashes, writes,
//           fsyncs and renames it, and records the row.
//   stream  the upload alone (the client's hashing pass excluded).
//   raw     the same bytes streamed in 1 MiB messages to a sink that only counts them.
//   stored  the same stream written to a file with one fsync: what storing the bytes costs here
//           (the disk's bound), to separate it from what the daemon adds.
// Figures are medians of the rounds; ratio = raw time / push time (target >= 0.7). The process's
// CPU time of each phase (all threads) is shown too: on a busy machine it is the steadier figure.
// Usage: artifact_bench [--mb N] [--rounds N]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_server.h"
#include "client/lib/artifacts.h"

namespace anerd::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// CPU time of the whole process (every thread, user + system) in ms: what a run costs whatever
// else the machine is doing.
double CpuMs() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
          static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Streams `bytes` in 1 MiB messages to the reference sink, or with `store` to the reference that
// writes them to a file and fsyncs it.
bool StreamTo(BenchServer* server, const std::string& bytes, bool store) {
  constexpr size_t kChunk = size_t{1} << 20;
  grpc::ClientContext ctx;
  Blob out;
  auto w = store ? server->echo().Store(&ctx, &out) : server->echo().Sink(&ctx, &out);
  Blob chunk;
  for (size_t off = 0; off < bytes.size(); off += kChunk) {
    chunk.set_data(bytes.data() + off, std::min(kChunk, bytes.size() - off));
    w->Write(chunk);
  }
  w->WritesDone();
  const grpc::Status s = w->Finish();
  if (!s.ok()) std::fprintf(stderr, "reference stream failed: %s\n", s.error_message().c_str());
  return s.ok();
}

int Main(int argc, char** argv) {
  int64_t mb = 256, rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mb") == 0) mb = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoll(argv[i + 1]);
  }
  std::unique_ptr<BenchServer> server = BenchServer::Start("anerd-artifact-bench");
  if (server == nullptr) return 1;
  const std::string& dir = server->dir();

  std::string bytes(static_cast<size_t>(mb) << 20, '\0');
  std::mt19937_64 gen(1);
  for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    const uint64_t r = gen();
    std::memcpy(&bytes[i], &r, 8);
  }
  const std::string file = dir + "/data.bin";
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  std::vector<double> push_ms, stream_ms, raw_ms, stored_ms, hash_ms, push_cpu, raw_cpu;
  for (int64_t round = 0; round < rounds; ++round) {
    // New bytes every round (nothing deduplicates), changed in place: rewriting the whole file
    // would leave its dirty pages to be written back while the next round is timed.
    std::memcpy(&bytes[0], &round, sizeof(round));
    {
      std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
      f.write(bytes.data(), sizeof(round));
    }
    const auto t0 = Clock::now();
    absl::StatusOr<std::string> sha = client::HashFile(file);
    const auto t1 = Clock::now();
    const double c1 = CpuMs();
    absl::StatusOr<client::PushResult> pushed =
        client::PushFile(server->client(), file, "dataset", "");
    const auto t2 = Clock::now();
    const double c2 = CpuMs();
    if (!sha.ok() || !pushed.ok() || pushed->bytes_sent != bytes.size()) {
      std::fprintf(stderr, "push failed: %s\n", pushed.status().ToString().c_str());
      return 1;
    }
    if (!StreamTo(server.get(), bytes, /*store=*/false)) return 1;
    const auto t3 = Clock::now();
    if (!StreamTo(server.get(), bytes, /*store=*/true)) return 1;
    stored_ms.push_back(Ms(Clock::now() - t3));
    push_cpu.push_back(c2 - c1);
    raw_cpu.push_back(CpuMs() - c2);
    hash_ms.push_back(Ms(t1 - t0));
    push_ms.push_back(Ms(t2 - t1));
    stream_ms.push_back(Ms(t2 - t1) - Ms(t1 - t0));
    raw_ms.push_back(Ms(t3 - t2));
    (void)server->engine().artifacts().Delete(pushed->info.id());  // keep the disk use to one copy
  }
  const double size_mb = static_cast<double>(bytes.size()) / 1e6;
  std::printf("artifact upload of %.0f MB, median of %lld rounds:\n", size_mb,
              static_cast<long long>(rounds));
  std::printf("  push (hash + upload)   %7.0f ms  %6.0f MB/s\n", Median(push_ms),
              size_mb / Median(push_ms) * 1000);
  std::printf("  upload only            %7.0f ms  %6.0f MB/s  (client hashing %.0f ms)\n",
              Median(stream_ms), size_mb / Median(stream_ms) * 1000, Median(hash_ms));
  std::printf("  raw gRPC client stream %7.0f ms  %6.0f MB/s\n", Median(raw_ms),
              size_mb / Median(raw_ms) * 1000);
  std::printf("  raw stream to a file   %7.0f ms  %6.0f MB/s  (buffered writes + one fsync)\n",
              Median(stored_ms), size_mb / Median(stored_ms) * 1000);
  std::printf("  ratio raw/push %.2f, raw/upload-only %.2f (target >= 0.7)\n",
              Median(raw_ms) / Median(push_ms), Median(raw_ms) / Median(stream_ms));
  std::printf(
      "  ratio raw-to-file/upload-only %.2f (what the daemon adds over storing the bytes)\n",
      Median(stored_ms) / Median(stream_ms));
  std::printf("  process CPU time: push %.0f ms, raw %.0f ms (ratio %.2f)\n", Median(push_cpu),
              Median(raw_cpu), Median(raw_cpu) / Median(push_cpu));
  return 0;
}

}  // namespace
}  // namespace anerd::bench

int main(int argc, char** argv) { return anerd::bench::Main(argc, argv); }
